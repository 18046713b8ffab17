"""Run a search: ``python -m search.run space=quick key=value ...``.

It prepares the study (data, fixed folds, OOF truth), starts or joins Ray, runs the trials that
Optuna proposes and ASHA prunes, records each in MLflow under one parent run, and ends with a short
summary: the best trials, the study folder, and the commands to look and to go on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mlflow

from ensembling.store import TrialRecord, read_trials
from ensembling.tracking import clean_params, numeric, resolve_uri, ui_command, use_experiment
from search.cluster import describe, run_stages, runs_link
from search.config import Plan, load_plan, resolved
from search.tuner import start_ray
from trainables.atomic import write_yaml
from trainables.config import to_flat
from trainables.errors import exit_status
from trainables.study import StudyConfig, prepare_study

SYNTHETIC_FOLDER = "_data"


def prepare(plan: Plan) -> Path:
    """Resolve the data folder, write study.yaml, and fix the split; returns the study folder."""
    cfg = plan.config
    if cfg.data.format == "synthetic" and cfg.data.root is None:
        storage = Path(cfg.storage).expanduser().resolve()
        cfg.data.root = str(storage / SYNTHETIC_FOLDER / f"synthetic-{cfg.data.images}")
    elif cfg.data.root is not None:
        cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
    cfg.mlflow.uri = resolve_uri(cfg.mlflow.uri)
    cfg.mlflow.experiment = cfg.mlflow.experiment or cfg.study_name
    study_dir = cfg.study_dir
    study_config = StudyConfig(data=cfg.data, folds=cfg.folds, seed=cfg.seed, oof_scale=cfg.oof_scale)
    prepare_study(study_dir, study_config)
    write_yaml(study_dir / "study.yaml", resolved(plan))
    return study_dir


def run(plan: Plan) -> list[TrialRecord]:
    study_dir = prepare(plan)
    uri, experiment = str(plan.config.mlflow.uri), str(plan.config.mlflow.experiment)
    use_experiment(uri, experiment)
    with mlflow.start_run(run_name=f"search {plan.config.study_name}") as parent:
        mlflow.set_tags({"study": str(study_dir), "space": plan.config.space, "kind": "search"})
        mlflow.log_params(clean_params({**to_flat(plan.config), **plan.fixed, **{f"search.{k}": v for k, v in plan.search.items()}}))
        start_ray(plan)
        where = run_stages(plan, study_dir, uri, experiment, parent.info.run_id)
        trials = read_trials(study_dir)
        if trials:  # screening trials (one fold) count only when no trial trained every fold
            best = max([t for t in trials if t.complete] or trials, key=lambda t: t.score)
            mlflow.log_metrics(numeric({"best_oof_score": best.score, "finished_trials": len(trials)}))
        mlflow.set_tag("mlflow.note.content", describe(plan, where, sum(t.complete for t in trials)))
    print_summary(plan, study_dir, trials, uri)
    print(f"\nWhat ran where:\n{where.summary() or 'no trial ran'}\nRuns table: {runs_link(uri, experiment)}")
    return trials


def print_summary(plan: Plan, study_dir: Path, trials: list[TrialRecord], uri: str) -> None:
    print(f"\nStudy {plan.config.study_name}: {len(trials)} finished trial(s) in {study_dir}")
    if not trials:
        print("No trial finished: look at the errors above, or in the trial folders under the study.")
    ranked = sorted(trials, key=lambda t: -t.score)
    print(f"  {'trial':<18} {'oof score':>9} {'ms/img':>8}  config")
    for trial in ranked[:5]:
        varied = {k.split(".")[-1]: _short(trial.config.get(k)) for k in plan.search}
        print(f"  {trial.trial_id:<18} {trial.score:>9.4f} {trial.ms_per_image:>8.1f}  {varied}")
    print(f"\nMLflow: {ui_command(uri)}")
    print(f"Next:   python -m ensembling.select study={study_dir}")


def _short(value: Any) -> Any:
    return f"{value:.3g}" if isinstance(value, float) else value


def main(argv: list[str]) -> int:
    # exit status 1: the search ran but no trial finished (their errors are printed above)
    return exit_status(lambda: 0 if run(load_plan(argv)) else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
