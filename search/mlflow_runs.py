"""The study's MLflow runs, kept across resumes: one parent run per study, one child run per trial.

Ray's ``MLflowLoggerCallback`` keeps no state, so a restored search opened new runs beside the old
ones and left a dead driver's runs RUNNING forever. Here the run ids live in
``<study>/mlflow_runs.json`` (written atomically whenever a run is opened): a resumed search reopens
the same parent, and a trial that continues logs into the run it began. Runs a dead driver left
RUNNING are closed as KILLED when the study is next opened (under the study's lock, so no live search
owns them); a trial that then continues reopens its run and ends it FINISHED.

A child run gets the trial's config as params (never as metrics), each result's own metrics at
``step=epoch``, the trial folder's pictures as artifacts when it completes, and FINISHED or FAILED.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from core.atomic import write_json
from core.contract import StudyFolder, read_json_file
from core.tracking import clean_params, numeric

RUNNING, KILLED = RunStatus.to_string(RunStatus.RUNNING), RunStatus.to_string(RunStatus.KILLED)
FINISHED, FAILED = RunStatus.to_string(RunStatus.FINISHED), RunStatus.to_string(RunStatus.FAILED)
NOT_METRICS = {*AUTO_RESULT_KEYS, "done", "trial_id", "experiment_tag", "should_checkpoint", "epoch"}


class RunBook:
    """``mlflow_runs.json``: the store, experiment, parent run id and trial_id -> run id of one study.

    The driver writes the store and parent before the search; the Tune callback reads them from here
    (not from its pickled copy in ``tuner.pkl``), so a resume with another ``mlflow.uri`` is honoured.
    """

    def __init__(self, study_dir: Path) -> None:
        self.path = StudyFolder(Path(study_dir)).mlflow_runs
        data = read_json_file(self.path) if self.path.is_file() else {}
        if not isinstance(data, dict) or not isinstance(data.get("trials", {}), dict):
            raise ValueError(f"{self.path}: expected {{'parent': run id, 'trials': {{trial id: run id}}}}; delete it to start new runs")
        self.uri: str | None = data.get("uri")
        self.experiment_id: str | None = data.get("experiment_id")
        self.parent: str | None = data.get("parent")
        self.trials: dict[str, str] = dict(data.get("trials", {}))

    def use_store(self, uri: str, experiment_id: str) -> None:
        """Point the book at a store; run ids of another store mean nothing there, so they are dropped."""
        if (uri, experiment_id) != (self.uri, self.experiment_id):
            self.parent, self.trials = None, {}
        self.uri, self.experiment_id = uri, experiment_id
        self.save()

    def save(self) -> None:
        data = {"uri": self.uri, "experiment_id": self.experiment_id, "parent": self.parent, "trials": self.trials}
        write_json(self.path, data)


def _exists(client: MlflowClient, run_id: str | None) -> bool:
    if not run_id:
        return False
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def close_left_running(client: MlflowClient, experiment_id: str, study_dir: Path, book: RunBook, reason: str = "a later search of the study found its driver gone") -> list[str]:
    """Mark the study's runs that are still RUNNING as KILLED: their driver is gone, or this one stops (we hold the lock)."""
    ids = {book.parent, *book.trials.values()} - {None}
    study = str(study_dir).replace("'", "\\'")
    tagged = client.search_runs([experiment_id], f"tags.study = '{study}' and attributes.status = 'RUNNING'", max_results=1000)
    ids |= {run.info.run_id for run in tagged}
    closed = []
    for run_id in sorted(i for i in ids if i):
        if _exists(client, run_id) and client.get_run(run_id).info.status == RUNNING:
            client.set_tag(run_id, "closed_by", reason)
            client.set_terminated(run_id, KILLED)
            closed.append(run_id)
    return closed


def open_parent(client: MlflowClient, experiment_id: str, book: RunBook, name: str, tags: dict[str, str]) -> tuple[str, bool]:
    """The study's parent run: reopened if the book names a live one, else new. Returns (id, is_new)."""
    if _exists(client, book.parent):
        client.update_run(str(book.parent), status=RUNNING)
        return str(book.parent), False
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    book.parent = run.info.run_id
    book.save()
    return run.info.run_id, True


def end_parent(client: MlflowClient, run_id: str, status: str) -> None:
    client.set_terminated(run_id, status)


def _tolerant(hook: Callable[..., None]) -> Callable[..., None]:
    """A tracking store that fails (a server gone, a full disk) costs a warning line, never the search."""

    @functools.wraps(hook)
    def wrapped(self: TrialRuns, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except (MlflowException, OSError) as error:
            trial = kwargs.get("trial")
            print(f"warning: MLflow could not record {hook.__name__} of trial {getattr(trial, 'trial_id', '?')}: {error}", file=sys.stderr)

    return wrapped


class TrialRuns(Callback):
    """A Tune callback (runs in the driver) that keeps one MLflow child run per trial, across resumes."""

    def __init__(self, study_dir: str, tags: dict[str, str]) -> None:
        self.study_dir = str(study_dir)
        self.tags = dict(tags)
        self._client: MlflowClient | None = None
        self._book: RunBook | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: no client, no book
        return {**self.__dict__, "_client": None, "_book": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.book.uri)
        return self._client

    @property
    def book(self) -> RunBook:
        if self._book is None:
            self._book = RunBook(Path(self.study_dir))
        return self._book

    def run_id(self, trial: Any) -> str:
        """The trial's run: the one it began (reopened if a dead driver left it closed), or a new one."""
        known = self.book.trials.get(trial.trial_id)
        if _exists(self.client, known):
            if self.client.get_run(str(known)).info.status != RUNNING:
                self.client.update_run(str(known), status=RUNNING)
            return str(known)
        tags = {**self.tags, "trial_id": trial.trial_id, "kind": "trial"}
        if self.book.parent:
            tags["mlflow.parentRunId"] = self.book.parent
        run = self.client.create_run(str(self.book.experiment_id), run_name=str(trial), tags=tags)
        self.book.trials[trial.trial_id] = run.info.run_id
        self.book.save()
        params = [Param(k, v) for k, v in clean_params(trial.config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run.info.run_id, params=params[start : start + 100])
        return run.info.run_id

    @_tolerant
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.run_id(trial)

    @_tolerant
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        now = int(time.time() * 1000)
        values = numeric({k: v for k, v in result.items() if k not in NOT_METRICS})
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id(trial), metrics=metrics[start : start + 1000])

    @_tolerant
    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_tag(self.run_id(trial), "retries", str(trial.num_failures))

    @_tolerant
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        folder = StudyFolder(Path(self.study_dir)).trial(trial.trial_id)
        if folder.pictures_dir.is_dir():
            for picture in sorted(folder.pictures_dir.glob("*.png")):
                self.client.log_artifact(run_id, str(picture), artifact_path="pictures")
        self.client.set_tag(run_id, "outcome", "finished" if folder.complete else "stopped early (ASHA)")
        self.client.set_terminated(run_id, FINISHED)

    @_tolerant
    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        tags = {"outcome": "failed", "error_file": str(Path(trial.path) / "error.txt")}
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, FAILED)
