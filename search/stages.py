"""Two stages in one study: screen many configurations cheaply, then train the best k on every fold.

``stage=screen``: Optuna proposes ``trials`` configurations, each trains ``screen.folds`` (one fold)
at ``screen.scale`` times its image size for ``screen.epochs`` (0: its own), ASHA stops the weak,
on the ``proto`` node(s). A screened trial's folder says ``complete: false`` (it predicted one fold
only), so the selector never reads it.

``stage=full``: every fold at full scale on the ``heavy`` node(s). When the study already holds
finished screening trials, the best ``promote.k`` distinct configurations among them are trained
(configurations already trained in full are skipped); otherwise Optuna proposes ``trials`` of them.

``stage=both``: screen, then full, in one command.

Only full trials (``complete: true``, every fold predicted) feed the selector (ensembling/select.py).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.config import TrainConfig
from core.store import TrialRecord

STAGES = ("screen", "full", "both")
URI_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "az://", "hdfs://", "file://")


@dataclass
class StageRun:
    """One Tuner's worth of trials: which stage, what it fixes and samples, where it may run."""

    name: str  # screen | full
    plan: Any  # the search.config.Plan this stage runs (fixed keys with the stage's overrides)
    points: list[dict[str, Any]] = field(default_factory=list)  # promoted configurations, tried as given
    from_screen: bool = False  # trains the promoted points, not fresh samples
    why: str = ""  # what the stage trains, in words (the budget planner's finalists say it themselves)
    kind: str | None = None  # the node resource its trials ask for (search/placement.py)
    resources: dict[str, float] | None = None  # each trial's request, once placed (cpu, gpu, kind)

    @property
    def asha(self) -> bool:
        """Screening prunes; promoted configurations already earned their full run."""
        return not self.from_screen

    @property
    def num_samples(self) -> int:
        return len(self.points) if self.from_screen else self.plan.config.trials


def check_stage_config(config: Any) -> None:
    """The stage keys of a SearchConfig, checked at the boundary (search/config.py calls this)."""
    if config.stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    if config.promote.k < 1:
        raise ValueError(f"promote.k must be >= 1, got {config.promote.k}")
    if not config.screen.folds or any(not 0 <= k < config.folds for k in config.screen.folds):
        raise ValueError(f"screen.folds must be a non-empty list of folds in 0..{config.folds - 1}, got {config.screen.folds}")
    # (a holdout has one fold: its screen is that fold at the screen's lower scale and epochs)
    if config.folds > 1 and len(set(config.screen.folds)) >= config.folds:
        raise ValueError(f"screen.folds must leave out at least one of the {config.folds} folds (a screen is not a full run), got {config.screen.folds}")
    if not 0 < config.screen.scale <= 1:
        raise ValueError(f"screen.scale multiplies train.scale and must be in (0, 1], got {config.screen.scale}")
    if config.screen.epochs < 0:
        raise ValueError(f"screen.epochs must be >= 0 (0: the trial's own), got {config.screen.epochs}")
    if config.storage.startswith(URI_SCHEMES) or "://" in config.storage:
        raise ValueError(
            f"storage must be a folder that every node reads and writes (a local path or a shared file system), got "
            f"{config.storage!r}; to keep Ray's checkpoints in a bucket give ray.storage={config.storage}"
        )


def screen_plan(plan: Any) -> Any:
    """The plan of the screening stage: the screen's folds, scale and epochs fixed, unless searched."""
    screen = plan.config.screen
    fixed = dict(plan.fixed)
    if "train.folds" not in plan.search:
        fixed["train.folds"] = list(screen.folds)
    if "train.scale" not in plan.search:
        fixed["train.scale"] = float(fixed.get("train.scale", TrainConfig.scale)) * screen.scale
    if screen.epochs and "train.epochs" not in plan.search:
        fixed["train.epochs"] = screen.epochs
    return dataclasses.replace(plan, fixed=fixed)


def _key(config: dict[str, Any], keys: list[str]) -> tuple:
    return tuple(repr(config.get(k)) for k in keys)


def promoted(plan: Any, trials: list[TrialRecord]) -> list[dict[str, Any]]:
    """The best ``promote.k`` distinct screened configurations not yet trained in full, best first.

    A configuration is its values of the searched keys; a promoted point gives exactly those (the
    fixed keys come from the full plan).
    """
    keys = sorted(plan.search)
    done = {_key(t.config, keys) for t in trials if t.complete}
    points: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for trial in sorted((t for t in trials if not t.complete), key=lambda t: -t.score):
        key = _key(trial.config, keys)
        if key in seen or key in done:
            continue
        seen.add(key)
        points.append({k: copy.deepcopy(trial.config[k]) for k in keys})
        if len(points) == plan.config.promote.k:
            break
    return points


def stage_runs(plan: Any, trials: list[TrialRecord]) -> list[StageRun]:
    """The stages a search runs, in order; the full stage of ``both`` is built after the screen."""
    stage = plan.config.stage
    if stage == "screen":
        return [StageRun("screen", screen_plan(plan))]
    if stage == "both":
        return [StageRun("screen", screen_plan(plan))]  # the full stage follows: see full_run
    return [full_run(plan, trials)]


def full_run(plan: Any, trials: list[TrialRecord]) -> StageRun:
    """The full stage: the promoted screening configurations if the study has any, else fresh samples."""
    if not (plan.search and any(not t.complete for t in trials)):
        return StageRun("full", plan)
    return StageRun("full", plan, points=promoted(plan, trials), from_screen=True)


def tune_location(plan: Any, study_dir: Any, stage: str) -> tuple[str, str]:
    """Where Tune keeps a stage's experiment (checkpoints, state): ``(storage_path, name)``.

    The full stage keeps the study's own folder (``<storage>/<study>``); screening goes under it.
    With ``ray.storage`` (a shared folder or a URI such as ``s3://bucket/path``) both go there.
    """
    name = plan.config.study_name
    if plan.config.ray.storage:
        return plan.config.ray.storage.rstrip("/"), name if stage == "full" else f"{name}-screen"
    if stage == "full":
        return str(study_dir.parent), study_dir.name
    return str(study_dir), "tune-screen"
