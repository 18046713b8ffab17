"""Run a search: ``python -m search.run space=quick key=value ...``.

It prepares the study (data, fixed folds, OOF truth), starts or joins Ray, runs the trials that
Optuna proposes and ASHA prunes, records each in MLflow under one parent run, and ends with a short
summary: the best trials, the study folder, and the commands to look and to go on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from core.help import answer_early
from search.cli import parse_command

if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch, Ray, MLflow: seconds)
    answer_early(sys.argv[1:], parse_command)

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from core.config import to_flat
from core.contract import StudyFolder
from core.data.inspect import write_data_picture
from core.data.study import StudyConfig, check_study_data, prepare_study, resolve_root, study_record
from core.errors import exit_status
from core.tracking import check_store, clean_params, numeric, resolve_uri, ui_command, use_experiment
from search.budget_run import Budgeted, finish_budgeted, run_budgeted
from search.cluster import describe, node_kinds, run_stages, runs_link
from search.config import Plan, load_plan, resolved
from search.lock import StudyLock
from search.mlflow_runs import FAILED, FINISHED, KILLED, RunBook, close_left_running, open_parent
from search.outcome import Outcome, error_files, outcome
from search.planner import BudgetPlan
from search.progress import WhereTable
from search.resume import begun, check_same_search, check_study_place, fresh_name, make_study_folder
from search.session import Interrupts
from search.stages import tune_location
from search.tuner import ray_for


def choose_study(plan: Plan) -> Path:
    """The study folder this search runs in: the named one, or with resume=false a new one beside it.

    What a bad input fails on (the data, the split, the MLflow store) is checked before the folder is
    made, so a refused search leaves no study behind."""
    cfg = plan.config
    check_study_place(cfg.study_dir)
    _resolve_places(plan)
    check_store(str(cfg.mlflow.uri))  # a local store writable, a server answering
    plan.checked = check_study_data(_study_config(plan))  # read once: prepare() writes the study from it
    if not cfg.resume and cfg.study_dir.exists():
        name = fresh_name(cfg.study_dir.parent, cfg.study_name)
        print(f"Study {cfg.study_name} exists and resume=false: this search is a new study, {name}")
        cfg.study = name
    make_study_folder(cfg.study_dir)
    return cfg.study_dir


def _resolve_places(plan: Plan) -> None:
    """data.root (or the format's default folder) and the MLflow store, made absolute."""
    cfg = plan.config
    cfg.data.root = resolve_root(cfg.data, cfg.storage)
    cfg.mlflow.uri = resolve_uri(cfg.mlflow.uri)


def _study_config(plan: Plan) -> StudyConfig:
    cfg = plan.config
    return StudyConfig(data=cfg.data, folds=cfg.folds, seed=cfg.seed, oof_scale=cfg.oof_scale, metric=cfg.metric, oof_share=cfg.oof_share)


def prepare(plan: Plan) -> Path:
    """Resolve the data folder, write study.yaml, and fix the split; returns the study folder.

    A study whose search has begun is continued only with the settings it began with."""
    cfg = plan.config
    _resolve_places(plan)
    cfg.mlflow.experiment = cfg.mlflow.experiment or cfg.study_name  # the study's name once choose_study named it
    study_dir = cfg.study_dir
    folder = StudyFolder(study_dir)
    if begun(study_dir):
        check_same_search(folder.read_config(), resolved(plan), folder.study_yaml)
    study = prepare_study(study_dir, _study_config(plan), plan.checked)
    folder.write_config({**resolved(plan), **study_record(study)})  # + kind and multi_label (core/contract.py)
    return study_dir


def run(plan: Plan) -> int:
    """Search (or continue searching) the study; returns the exit status (see Outcome.status)."""
    started = time.time()  # a time budget counts from the command's start
    study_dir = choose_study(plan)
    budgeted: Budgeted | None = None
    finished_plan = None
    # search/session.py: the first Ctrl-C/SIGTERM/SIGHUP stops Tune gracefully; the lock, runs and Ray end cleanly
    with StudyLock(StudyFolder(study_dir).lock), Interrupts() as interrupts:
        resuming = _begun(plan, study_dir)
        prepare(plan)
        client, parent = _open_runs(plan, study_dir, resuming)
        status = FAILED  # what the parent run says if the search ends by an exception
        try:
            with ray_for(plan, interrupts):
                if resuming:
                    print(f"Resuming study {plan.config.study_name}: finished trials are kept, unfinished ones go on from their last checkpoint")
                if plan.config.time_budget:  # search/budget_run.py: measured, planned, screened, finalists trained
                    where = WhereTable(kinds=node_kinds())
                    budgeted, grids = run_budgeted(plan, study_dir, {"study": str(study_dir)}, where, resuming, interrupts, started)
                else:  # search/cluster.py: each stage placed on its nodes, restored where it had begun, run
                    where, grids = run_stages(plan, study_dir, {"study": str(study_dir)}, resuming, interrupts)
                result = _outcome(study_dir, grids, interrupts.name)
            if budgeted is not None and result.finished and not result.interrupted:
                finished_plan = finish_budgeted(plan, study_dir, budgeted)  # select, refit: after Ray, in this process
                client.log_artifact(parent, str(StudyFolder(study_dir).plan_json))
            if result.finished:
                # screening trials (one fold) count only when no trial trained every fold
                best = max([t for t in result.finished if t.complete] or result.finished, key=lambda t: t.score)
                metrics = {"best_oof_score": best.score, "finished_trials": len(result.finished), "failed_trials": len(result.failed)}
                client.log_batch(parent, metrics=_metrics(metrics))
            client.set_tag(parent, "mlflow.note.content", describe(plan, where, sum(t.complete for t in result.finished)))
            status = KILLED if result.status == 130 else FINISHED
        except KeyboardInterrupt:
            status = KILLED
            raise
        finally:
            if status != FINISHED:  # the trials Tune stopped, or an error stopped, end with the search
                book = RunBook(study_dir)
                close_left_running(client, str(book.experiment_id), study_dir, book, reason=f"the search ended {status}")
            client.set_terminated(parent, status)
    print_summary(plan, study_dir, result, str(plan.config.mlflow.uri), finished_plan)
    print(f"\nWhat ran where (every trial of the study, earlier runs' too):\n{where.summary() or 'no trial ran'}")
    print(f"Runs table: {runs_link(str(plan.config.mlflow.uri), str(plan.config.mlflow.experiment))}")
    return result.status


def _begun(plan: Plan, study_dir: Path) -> bool:
    """Whether a stage of this study's search (the full one, or its screen) saved a state to resume from."""
    places = (tune_location(plan, study_dir, stage) for stage in ("full", "screen"))
    return any(begun(Path(storage) / name) for storage, name in places if "://" not in storage)


def _open_runs(plan: Plan, study_dir: Path, resuming: bool) -> tuple[MlflowClient, str]:
    """The store and the study's parent run: reopened on resume, after closing a dead driver's runs."""
    uri, experiment = str(plan.config.mlflow.uri), str(plan.config.mlflow.experiment)
    experiment_id = use_experiment(uri, experiment)
    client = MlflowClient(tracking_uri=uri)
    book = RunBook(study_dir)
    book.use_store(uri, experiment_id)
    if resuming:
        closed = close_left_running(client, experiment_id, study_dir, book)
        if closed:
            print(f"Closed {len(closed)} MLflow run(s) a stopped search left RUNNING as KILLED; the trials that go on reopen theirs")
    tags = {"study": str(study_dir), "space": plan.config.space, "kind": "search"}
    parent, new = open_parent(client, experiment_id, book, f"search {plan.config.study_name}", tags)
    if new:
        params = clean_params({**to_flat(plan.config), **plan.fixed, **{f"search.{k}": v for k, v in plan.search.items()}})
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            client.log_batch(parent, params=items[start : start + 100])
        # the study's images with their decoded masks drawn over them, to check the data by eye
        client.log_artifact(parent, str(write_data_picture(study_dir)))
    return client, parent


def _metrics(values: dict[str, Any]) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(k, v, now, 0) for k, v in numeric(values).items()]


def _outcome(study_dir: Path, grids: list[Any], interrupted: str = "") -> Outcome:
    """What every stage's result grid and the study folder say: finished, failed and unfinished trials."""
    parts = [outcome(study_dir, grid, bool(interrupted)) for grid in grids]
    finished = parts[-1].finished if parts else outcome(study_dir, []).finished
    failed = [f for o in parts for f in o.failed]
    return Outcome(finished=finished, failed=failed, unfinished=[u for o in parts for u in o.unfinished], interrupted=interrupted)


def print_summary(plan: Plan, study_dir: Path, result: Outcome, uri: str, budget_plan: BudgetPlan | None = None) -> None:
    trials = result.finished
    print(f"\nStudy {plan.config.study_name}: {len(trials)} finished trial(s) in {study_dir}")
    if trials:
        print(f"  {'trial':<18} {_score_name(plan.config.metric):>9} {'ms/img':>8}  config")
    for trial in sorted(trials, key=lambda t: -t.score)[:5]:
        varied = {k.split(".")[-1]: _short(trial.config.get(k)) for k in plan.search}
        print(f"  {trial.trial_id:<18} {trial.score:>9.4f} {trial.ms_per_image:>8.1f}  {varied}")
    if result.failed:
        print(f"{len(result.failed)} failed trial(s):")
    for failed in result.failed:
        print(f"  {failed.trial_id:<18} {failed.error}\n  {'':<18} error file: {failed.error_file}")
    print(f"\nMLflow: {ui_command(uri)}")
    if result.interrupted:
        unfinished = f" with {len(result.unfinished)} trial(s) unfinished" if result.unfinished else ""
        print(f"Interrupted ({result.interrupted}){unfinished}: run the same command to go on (from the newest checkpoints).")
    elif result.unfinished:
        print(f"Interrupted with {len(result.unfinished)} trial(s) unfinished: run the same command to go on.")
    elif budget_plan is not None:  # the planner selected (and refit): export is next
        print(f"Next:   python -m ensembling.export study={study_dir} out=DIR models={budget_plan.export_models}")
    elif trials:
        print(f"Next:   python -m ensembling.select study={study_dir}")
    else:
        print(f"No trial finished: the errors are in {error_files(study_dir, result)}")


def _score_name(metric: str | None) -> str:
    """The summary's score column: the OOF metric, negated where lower is better (trials report it so)."""
    from core.class_metrics import get_class_metric, is_class_metric

    if is_class_metric(metric) and not get_class_metric(metric).higher_is_better:
        return f"-{metric}"
    return "oof score"


def _short(value: Any) -> Any:
    return f"{value:.3g}" if isinstance(value, float) else value


def _search(argv: list[str]) -> int:
    parse_command(argv)  # -h/--help prints the keys with the space's defaults and ends here
    return run(load_plan(argv))


def main(argv: list[str]) -> int:
    # exit status 1: the search ran but no trial finished; 130: interrupted (the same command goes on)
    try:
        return exit_status(lambda: _search(argv))
    except KeyboardInterrupt:
        print("\nInterrupted: the search stopped at once; run the same command to go on from the trials' last checkpoints.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
