"""The stages of a search on the cluster it joined: place them, check a node can take them, run them.

For each stage (search/stages.py) the trial's request (CPUs, GPUs, the stage's node kind) is checked
against the live nodes before Tune starts, so a missing ``heavy`` node is one clear error instead of
trials PENDING forever. A :class:`~search.progress.WhereTable` follows every trial's node; its
summary is printed at the end and becomes the MLflow parent run's description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import ray

from core.store import read_trials
from search.outcome import trial_statuses
from search.placement import auto_cpus, check_fits, demand, nodes_of, stage_kind
from search.progress import WhereTable
from search.resume import begun, remove_unrecorded, trial_id_of
from search.session import Interrupts
from search.stages import StageRun, full_run, stage_runs, tune_location
from search.tuner import _resources, make_tuner, restore_tuner


def node_kinds() -> dict[str, str]:
    """Node address -> kind, for the nodes that declare one."""
    out = {}
    for node in nodes_of(ray.nodes()):
        kinds = [k for k in ("proto", "heavy") if k in node.resources]
        if kinds:
            out[node.address] = "+".join(kinds)
    return out


def place(stage: StageRun) -> StageRun:
    """Pick the stage's node kind and check that a live node can hold one of its trials."""
    config = stage.plan.config
    nodes = nodes_of(ray.nodes())
    stage.kind = stage_kind(stage.name, getattr(config.place, stage.name), nodes)
    resources = _resources(stage.plan)
    if config.ray.cpus_per_trial <= 0:  # shared among the trials on the stage's own nodes
        resources["cpu"] = auto_cpus(nodes, stage.kind, stage.num_samples)
    stage.resources = demand(resources, stage.kind)
    warning = check_fits(stage.name, stage.resources, nodes, config.ray.wait_for_nodes)
    if warning:
        print(warning, flush=True)
    where = f"on nodes with {stage.kind!r}" if stage.kind else "on any node"
    asks = ", ".join(f"{k} {v:g}" for k, v in stage.resources.items())
    print(f"Stage {stage.name}: {stage.num_samples} trial(s) {where}, each with {asks}", flush=True)
    return stage


def run_stages(plan: Any, study_dir: Path, tags: dict[str, str], resuming: bool = False, interrupts: Interrupts | None = None) -> tuple[WhereTable, list[Any]]:
    """Run the search's stages in order; returns the table of what ran where and each stage's result grid.

    A stage whose Tune experiment had begun (a search stopped midway) is restored, not started again.
    After an interrupt no further stage starts."""
    interrupts = interrupts or Interrupts()
    where = WhereTable(kinds=node_kinds())
    grids = []
    for stage in stage_runs(plan, read_trials(study_dir)):
        grids.append(run_stage(place(stage), plan, study_dir, tags, where, resuming, interrupts))
    if plan.config.stage == "both" and not interrupts.received:
        full = full_run(plan, read_trials(study_dir))
        grids.append(run_stage(place(full), plan, study_dir, tags, where, resuming, interrupts))
    return where, [grid for grid in grids if grid is not None]


def run_stage(stage: StageRun, plan: Any, study_dir: Path, tags: dict[str, str], where: WhereTable, resuming: bool, interrupts: Interrupts) -> Any:
    if stage.num_samples == 0:
        print(f"Stage {stage.name}: nothing to run (every promoted configuration is already trained in full)")
        return None
    storage_path, name = tune_location(plan, study_dir, stage.name)
    if resuming and "://" not in storage_path and begun(Path(storage_path) / name):
        tuner = restore_tuner(plan, study_dir, stage)
        if stage.name == "full":
            known = _known_trials(tuner)
            if known is not None:
                remove_unrecorded(study_dir, known)
    else:
        if stage.why:
            print(f"Stage {stage.name}: {stage.why}", flush=True)
        elif stage.from_screen:
            print(f"Stage full: promoting the best {len(stage.points)} screened configuration(s): {stage.points}", flush=True)
        tuner = make_tuner(plan, study_dir, tags, stage=stage, where=where)
    with interrupts.fitting():
        grid = tuner.fit()
    # every trial of the stage, those a restored search finished before too (its callbacks are not this table)
    where.absorb(stage.name, grid, {t.trial_id for t in read_trials(study_dir)}, trial_statuses(grid, bool(interrupts.received)))
    return grid


def _known_trials(tuner: Any) -> list[str] | None:
    """The trial ids the restored search knows, or None if Tune could not tell (then nothing is removed)."""
    try:
        return [trial_id_of(r.path) for r in tuner.get_results()]
    except RuntimeError:
        return None


def runs_link(uri: str, experiment: str) -> str:
    """The experiment's runs table in the MLflow UI.

    MLflow 3.17's UI opens on the GenAI overview unless told ``workflowType=machine_learning``
    (its GenAI / Model training switch wins over the experiment's ``mlflow.experimentKind`` tag).
    """
    found = mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    where = f"#/experiments/{found.experiment_id}" if found else "#/experiments"
    return f"{base}/{where}?workflowType=machine_learning"


def describe(plan: Any, where: WhereTable, finished: int) -> str:
    """The MLflow parent run's description (markdown): the stages, what ran where, the outcome."""
    lines = [f"**Search {plan.config.study_name}**: stage={plan.config.stage}, space `{Path(plan.config.space).name}`."]
    if plan.config.description:
        lines.append(plan.config.description)
    lines.append("")
    lines.append("What ran where (stage: node (kind): trials):")
    lines.append("")
    lines += [f"- {line}" for line in where.summary().splitlines()] or ["- no trial ran"]
    lines.append("")
    lines.append(f"{finished} trial(s) finished every fold and feed the selector.")
    return "\n".join(lines)
