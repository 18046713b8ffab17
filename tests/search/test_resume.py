"""A search killed and run again goes on; a trial whose worker dies is retried; one search per study.

Real subprocesses of ``python -m search.run`` on the synthetic data (16 images, 2 folds, 2 epochs at
1/8 scale), real Ray kept on loopback in its own temp folder, a real SQLite MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import mlflow
import pytest
from searching import Search, cmdline, kill_when, wait_for

pytestmark = pytest.mark.slow


def trial_runs(search: Search) -> tuple[list, list]:
    client = mlflow.MlflowClient(tracking_uri=search.uri)
    experiment = client.get_experiment_by_name(search.study)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("kind") == "search"], [r for r in runs if r.data.tags.get("kind") == "trial"]


def last_result(search: Search, trial_id: str) -> dict:
    lines = (search.study_dir / f"ray-{trial_id}" / "result.json").read_text().splitlines()
    return json.loads(lines[-1])


def gone(search: Search, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while search.our_pids() and time.time() < deadline:
        time.sleep(1)
    return not search.our_pids()


def test_a_killed_search_run_again_goes_on_without_rerunning_or_duplicating(tmp_path: Path) -> None:
    search = Search(tmp_path)
    try:
        first = search.start()
        wait_for(lambda: (search.study_dir / "search.lock").exists(), first)
        second = search.start()  # the same command while the first runs
        kill_when(search, first, lambda: bool(search.finished() and search.saved_with_checkpoint()), spare=(second,))

        # the second search was refused with one line, and touched nothing
        assert second.wait(timeout=300) == 2, search.log(1)
        errors = [line for line in search.log(1).splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "is being searched by pid" in errors[0] and str(search.study_dir / "search.lock") in errors[0]
        assert gone(search), [cmdline(pid) for pid in search.our_pids()]  # no Ray process outlived the killed driver
        finished = {t: (search.study_dir / "trials" / t / "metrics.json").stat().st_mtime_ns for t in search.finished()}
        going_on = search.saved_with_checkpoint()
        assert finished and going_on

        rc, log = search.run()
        assert rc == 0, log
        assert len(search.procs) == 3
        assert "Took over the lock of a search that is gone" in log and "Resuming study" in log
        assert "Closed" in log and "RUNNING as KILLED" in log

        # trials= in all, none trained again, and a checkpointed one went on from its checkpoint
        assert len(search.finished()) == 3, log
        assert {p.name.removeprefix("ray-") for p in search.study_dir.glob("ray-*")} == set(search.finished())
        for trial_id, mtime in finished.items():
            assert (search.study_dir / "trials" / trial_id / "metrics.json").stat().st_mtime_ns == mtime, f"{trial_id} was rerun"
        resumed = [t for t in going_on if t in search.finished()]
        assert resumed, going_on
        for trial_id in resumed:
            result = last_result(search, trial_id)
            assert result["epoch"] == 2 and result["iterations_since_restore"] < 2, result

        # one parent, one run per trial, nothing left RUNNING
        parents, children = trial_runs(search)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert sorted(r.data.tags["trial_id"] for r in children) == search.finished()
        assert all(r.info.status == "FINISHED" for r in children)
        assert all(r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id for r in children)
        assert all(not k.startswith("config/") for r in children for k in r.data.metrics)
        assert not (search.study_dir / "search.lock").exists()
        assert "Next:   python -m ensembling.select" in log
    finally:
        search.close()


def test_a_trial_whose_worker_dies_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    search = Search(tmp_path, extra=("trials=1",))
    try:
        proc = search.start()
        wait_for(lambda: bool(search.reported()), proc)
        workers = [pid for pid in search.our_pids() if cmdline(pid).startswith("ray::ImplicitFunc")]
        assert workers, [cmdline(p) for p in search.our_pids()]
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=400) == 0, search.log(0)
        log = search.log(0)
        (trial_id,) = search.finished()
        result = last_result(search, trial_id)
        assert result["epoch"] == 2 and result["iterations_since_restore"] < 2, result
        _, children = trial_runs(search)
        assert len(children) == 1 and children[0].info.status == "FINISHED"
        assert children[0].data.tags.get("retries") == "1"
        assert "1 finished trial(s)" in log and "failed trial" not in log
        assert search.our_pids() == []  # the driver stopped the Ray it started
    finally:
        search.close()
