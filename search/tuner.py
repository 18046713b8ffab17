"""Ray Tune wiring: Optuna proposes, ASHA stops the weak early, MLflow records every trial."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from core.config import ModelConfig, TrainConfig
from core.contract import StudyFolder
from search.config import Plan
from search.mlflow_runs import TrialRuns
from search.optuna_pruned import PrunedAwareOptunaSearch
from search.placement import demand
from search.resume import RAY_TRIAL_PREFIX
from search.rungs import ResumableASHA
from search.session import Interrupts, ray_started
from search.spaces import domain_values, to_tune
from search.stages import StageRun, tune_location
from search.time_budget import TimeBudgetSearcher
from trainables.gpu import fit_packing
from trainables.tune_edge import tune_trainable

METRIC, MODE = "score", "max"


@contextmanager
def ray_for(plan: Plan, interrupts: Interrupts | None = None) -> Iterator[None]:
    """Ray for the search's block: the cluster named by ray.address, or a local one on loopback (search/session.py)."""
    # Checkpointing every epoch is the point of a per-epoch report; keep Tune from warning about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # An epoch without validation (train.val_every) reports no score; ASHA and Optuna skip such reports.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    with ray_started(plan.config.ray.address, plan.config.ray.node_ip, interrupts):
        yield


def _max_epochs(plan: Plan) -> int:
    if "train.epochs" in plan.search:
        return int(max(domain_values(plan.search["train.epochs"])))
    return int(plan.fixed.get("train.epochs", TrainConfig.epochs))


def _resources(plan: Plan) -> dict[str, float]:
    gpus = plan.config.ray.gpus_per_trial
    if gpus < 0:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    cpus = plan.config.ray.cpus_per_trial
    if cpus <= 0:  # share the cluster's CPUs among the trials that can run at once
        total = int(ray.cluster_resources().get("CPU", 1))
        cpus = float(max(1, total // max(1, min(plan.config.trials, total))))
    return {"cpu": cpus, "gpu": gpus}


def trial_name(trial: Any) -> str:
    """What a trial is called in Tune's table and in MLflow: its id, decoder and encoder (timm/<model> for a classifier)."""
    config = trial.config
    family = config.get("model.family", ModelConfig.family)
    arch = config.get("model.arch", ModelConfig.arch) if family == "smp" else family  # a classifier: timm/<model>
    encoder = config.get("model.encoder", ModelConfig.encoder)
    return f"{trial.trial_id} {arch}/{encoder}"


def _trainable(plan: Plan, study_dir: Path, stage: StageRun | None = None) -> Any:
    stage = stage or StageRun("full", plan)  # search/stages.py: the stage's plan, promoted points, node kind
    resources = stage.resources or demand(_resources(stage.plan), stage.kind)
    # Fractional GPUs are bookkeeping only: probe a trial's peak memory and shrink a packing that would not fit.
    resources = fit_packing(resources, stage.plan.fixed, {k: domain_values(s) for k, s in stage.plan.search.items()}, study_dir)
    return tune.with_resources(tune.with_parameters(tune_trainable, study_dir=str(study_dir)), resources)


def restore_tuner(plan: Plan, study_dir: Path, stage: StageRun | None = None) -> tune.Tuner:
    """The study's interrupted search: finished trials kept, unfinished and errored ones go on from
    their last checkpoint, the searcher as Tune saved it, the ASHA rungs from scheduler.json."""
    storage_path, name = tune_location(plan, study_dir, (stage or StageRun("full", plan)).name)
    path = f"{storage_path.rstrip('/')}/{name}"
    return tune.Tuner.restore(path, trainable=_trainable(plan, study_dir, stage), resume_unfinished=True, resume_errored=True)


def make_tuner(plan: Plan, study_dir: Path, tags: dict[str, str], stage: StageRun | None = None, where: Any = None) -> tune.Tuner:
    stage = stage or StageRun("full", plan)
    full_plan, plan = plan, stage.plan
    epochs = _max_epochs(plan)
    param_space = {**plan.fixed, **{key: to_tune(spec) for key, spec in plan.search.items()}}
    param_space.setdefault("seed", plan.config.seed)
    searcher: Any = PrunedAwareOptunaSearch(metric=METRIC, mode=MODE, seed=plan.config.seed) if plan.search else None
    if stage.from_screen:
        searcher = BasicVariantGenerator(points_to_evaluate=stage.points)
    elif plan.config.time_budget:
        searcher = TimeBudgetSearcher(searcher, plan.config.time_budget, epochs)
    # ASHA compares trials at the epoch they report (it survives a resume, unlike Tune's iteration count).
    # Tune itself gets no metric: its "current best trial" would name a trial that died after a good epoch.
    scheduler = FIFOScheduler() if not stage.asha else ResumableASHA(
        StudyFolder(study_dir).scheduler_state if stage.name == "full" else StudyFolder(study_dir).root / f"scheduler-{stage.name}.json",
        time_attr="epoch",
        metric=METRIC,
        mode=MODE,
        max_t=epochs,
        grace_period=min(plan.config.scheduler.grace_period, epochs),
        reduction_factor=plan.config.scheduler.reduction_factor,
    )
    runs = TrialRuns(str(study_dir), {**tags, "stage": stage.name})
    if where is not None:  # search/progress.py: the live table of nodes, which tags these runs
        where.begin_stage(stage.name, runs)
    storage_path, name = tune_location(full_plan, study_dir, stage.name)
    return tune.Tuner(
        _trainable(full_plan, study_dir, stage),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=stage.num_samples,
            max_concurrent_trials=plan.config.ray.max_concurrent or None,
            trial_name_creator=trial_name,
            trial_dirname_creator=lambda trial: f"{RAY_TRIAL_PREFIX}{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=[runs] if where is None else [runs, where],
            failure_config=tune.FailureConfig(max_failures=plan.config.ray.retries),  # a lost node: retry from the last checkpoint
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=1,
        ),
    )
