"""Ray Tune wiring: Optuna proposes, ASHA stops the weak early, MLflow records every trial."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from search.config import Plan
from search.optuna_pruned import PrunedAwareOptunaSearch
from search.placement import demand
from search.spaces import domain_values, to_tune
from search.stages import StageRun, tune_location
from trainables.config import ModelConfig, TrainConfig
from trainables.tune_edge import tune_trainable

METRIC, MODE = "score", "max"


def start_ray(plan: Plan) -> None:
    """Join the cluster named by ray.address, or start a local Ray."""
    # Checkpointing every epoch is the point of a per-epoch report; keep Tune from warning about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return
    args: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if plan.config.ray.address:
        args["address"] = plan.config.ray.address
    if plan.config.ray.node_ip:
        args["_node_ip_address"] = plan.config.ray.node_ip
    ray.init(**args)


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
    """What a trial is called in Tune's table and in MLflow: its id, decoder and encoder."""
    config = trial.config
    arch = config.get("model.arch", ModelConfig.arch)
    encoder = config.get("model.encoder", ModelConfig.encoder)
    return f"{trial.trial_id} {arch}/{encoder}"


def make_tuner(
    plan: Plan, study_dir: Path, mlflow_uri: str, experiment: str, parent_run_id: str, stage: StageRun | None = None, where: Any = None
) -> tune.Tuner:
    stage = stage or StageRun("full", plan)  # search/stages.py: the stage's plan, promoted points, node kind
    plan = stage.plan
    epochs = _max_epochs(plan)
    param_space = {**plan.fixed, **{key: to_tune(spec) for key, spec in plan.search.items()}}
    param_space.setdefault("seed", plan.config.seed)
    resources = stage.resources or demand(_resources(plan), stage.kind)
    trainable = tune.with_resources(tune.with_parameters(tune_trainable, study_dir=str(study_dir)), resources)
    searcher = PrunedAwareOptunaSearch(metric=METRIC, mode=MODE, seed=plan.config.seed) if plan.search else None
    if stage.from_screen:
        searcher = BasicVariantGenerator(points_to_evaluate=stage.points)
    scheduler = FIFOScheduler() if not stage.asha else ASHAScheduler(
        max_t=epochs,
        grace_period=min(plan.config.scheduler.grace_period, epochs),
        reduction_factor=plan.config.scheduler.reduction_factor,
    )
    callback = MLflowLoggerCallback(
        tracking_uri=mlflow_uri,
        experiment_name=experiment,
        tags={"mlflow.parentRunId": parent_run_id, "study": str(study_dir), "stage": stage.name},
        save_artifact=False,
    )
    if where is not None:  # search/progress.py: the live table of nodes, which tags these runs
        where.begin_stage(stage.name, callback)
    storage_path, name = tune_location(plan, study_dir, stage.name)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=stage.num_samples,
            max_concurrent_trials=plan.config.ray.max_concurrent or None,
            trial_name_creator=trial_name,
            trial_dirname_creator=lambda trial: f"ray-{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=[callback] if where is None else [callback, where],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=2),  # a lost node: retry from the last checkpoint
            verbose=1,
        ),
    )
