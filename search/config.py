"""The search's configuration: a space file from ``spaces/`` plus ``key=value`` overrides.

A space file says what is fixed (``settings``) and what varies (``search``) in dotted keys; a key is
either a run setting (data, study, storage, Ray, MLflow ...) or a trial setting (model, train, TTA).
Every key is checked against both, and a typo names the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import TrialConfig, flat_keys, from_flat, read_yaml, split_words, unknown_key_error
from core.data.config import DataConfig, check_data_config, fold_data_options, is_data_option
from search.spaces import check_domain, domain_values, space_path

ALIASES = {"data": "data.format"}  # `data=severstal` reads as `data.format=severstal`


@dataclass
class RayConfig:
    address: str | None = None  # None starts a local Ray; "auto" or host:port joins a cluster
    node_ip: str | None = None  # the address this node registers with (tests keep it on loopback)
    cpus_per_trial: float = 0.0  # 0: the cluster's CPUs shared among the trials (at least 1 each)
    gpus_per_trial: float = -1.0  # -1: one GPU per trial when the cluster has GPUs, else none
    max_concurrent: int = 0  # 0: as many as the resources allow
    retries: int = 2  # a trial whose worker dies is retried this often from its last checkpoint
    storage: str | None = None  # where Tune keeps checkpoints: None, the study folder; or a URI (s3://...)
    wait_for_nodes: bool = False  # a cluster that autoscales: warn, not fail, when no node has a resource


@dataclass
class MlflowConfig:
    uri: str | None = None  # None: sqlite:///<cwd>/mlflow.db, the store `mlflow ui` opens by default
    experiment: str | None = None  # None: the study's name


@dataclass
class SchedulerConfig:
    grace_period: int = 1  # epochs every trial gets before ASHA may stop it
    reduction_factor: int = 2  # ASHA keeps 1/factor of the trials at each rung


@dataclass
class ScreenConfig:
    """Screening trials: one fold, a smaller image, maybe fewer epochs (see search/stages.py)."""

    folds: list[int] = field(default_factory=lambda: [0])  # the folds a screening trial trains
    scale: float = 0.5  # times the trial's train.scale
    epochs: int = 0  # 0: the trial's own train.epochs


@dataclass
class PromoteConfig:
    k: int = 2  # the best k screened configurations train every fold at full scale


@dataclass
class PlaceConfig:
    """The node resource each stage's trials ask for: auto (proto/heavy when the cluster has them), none, a name."""

    screen: str = "auto"  # the node resource screening trials ask for
    full: str = "auto"  # the node resource full trials ask for


@dataclass
class SearchConfig:
    space: str = "quick"  # a space of spaces/ by name, or a path to a .yaml file of the same form
    description: str = ""
    study: str | None = None  # None: the space's name
    storage: str = "studies"  # the folder that holds the studies
    resume: bool = True  # continue the study's interrupted search; false: start a new study <study>-2
    trials: int = 4  # configurations to try (Optuna proposes them, ASHA may stop them early)
    seed: int = 0  # the search's seed: Optuna's sampler, the split and each trial's seed
    folds: int = 5  # K of the study's K-fold split, fixed once per study
    # the share of the images split into the K folds, the rest trained on by every fold model (folds=1 oof_share=0.1:
    # a holdout); unset: every image, or, with time_budget, a holdout where K folds and a refit do not fit (search/planner.py)
    oof_share: float | None = None
    oof_scale: float = 0.25  # OOF predictions and truth are stored at this fraction of each side
    # None: the data's default (dice_pairs for masks; accuracy, or macro_f1 multi-label, for image labels);
    # dice_pairs (Severstal), dice_image (Carvana), iou_dataset; accuracy, macro_f1, log_loss, roc_auc: fixed per study
    metric: str | None = None
    time_budget: Any = 0  # seconds, or 90s / 6m / 1.5h: planned into a screen, finalists, select and refit (search/planner.py); 0: the space as written
    data: DataConfig = field(default_factory=DataConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    stage: str = "full"  # screen | full | both (see search/stages.py)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    promote: PromoteConfig = field(default_factory=PromoteConfig)
    place: PlaceConfig = field(default_factory=PlaceConfig)

    @property
    def study_name(self) -> str:
        return self.study or Path(self.space).stem

    @property
    def study_dir(self) -> Path:
        return Path(self.storage).expanduser().resolve() / self.study_name


@dataclass
class Plan:
    """What a search runs: its settings, the trial keys it fixes and the ones it samples."""

    config: SearchConfig
    fixed: dict[str, Any]
    search: dict[str, dict[str, Any]]
    checked: Any = field(default=None, repr=False)  # the data as search.run read and checked it (CheckedData)


def parse_overrides(argv: list[str], types: dict[str, Any] | None = None) -> dict[str, Any]:
    """``key=value`` words into a dict, values read as YAML (so 3 is an int and null is None).

    A key that ``types`` marks as text keeps its words: ``study=2024-06-01`` names a study, not a date.
    """
    out: dict[str, Any] = {}
    for given, value in split_words(argv, " (e.g. space=quick trials=8)"):
        key = ALIASES.get(given, given)
        parsed = read_yaml(value, f"{given}={value}")  # "" reads as None
        text = (types or {}).get(key) in (str, str | None)
        out[key] = value if text and parsed is not None and not isinstance(parsed, str) else parsed
    return out


def _read_space(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: a space file is YAML text, this one is not UTF-8 text") from None
    raw = read_yaml(text, str(path)) or {}
    sections = ["description", "settings", "search"]
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a space is a mapping with the keys {', '.join(sections)}, got {type(raw).__name__}")
    unknown = set(raw) - set(sections)
    if unknown:
        raise unknown_key_error(sorted(unknown)[0], sections, f"{path}: ")
    for section in ("settings", "search"):
        if not isinstance(raw.get(section) or {}, dict):
            raise ValueError(f"{path}: {section} must map dotted keys to values, got {raw[section]!r}")
    return raw


def load_plan(argv: list[str]) -> Plan:
    """Resolve the space file and overrides into a validated plan; errors name the file and key."""
    plan = read_plan(argv)
    config, path = plan.config, Path(plan.config.space)
    _check(config)
    _check_trials(plan.fixed, plan.search, f"{path}: ")
    _check_family(config, plan.fixed, plan.search, path)
    return plan


def read_plan(argv: list[str]) -> Plan:
    """The space file and overrides as a plan, every key and type checked, but not the values against
    the data, the models or Ray (:func:`load_plan` does that): fast, for ``--help`` and a typo."""
    run_keys, trial_keys = flat_keys(SearchConfig), flat_keys(TrialConfig)
    overrides = parse_overrides(argv, {**run_keys, **trial_keys})
    path = space_path(str(overrides.get("space", SearchConfig.space)))
    raw = _read_space(path)
    search = {ALIASES.get(k, k): v for k, v in (raw.get("search") or {}).items()}
    for key, spec in search.items():
        if key not in trial_keys:
            raise unknown_key_error(key, list(trial_keys), f"{path}: search: ")
        check_domain(key, spec, f"{path}: search: ")
    settings = {ALIASES.get(k, k): v for k, v in (raw.get("settings") or {}).items()}
    run: dict[str, Any] = {"space": str(path), "description": raw.get("description") or ""}
    fixed: dict[str, Any] = {}
    for where, values in ((f"{path}: settings: ", settings), ("command line: ", overrides)):
        run_part, fixed_part = _split(values, where)
        run.update(run_part)
        fixed.update(fixed_part)
        for key in fixed_part:
            search.pop(key, None)  # a fixed value wins over a searched one
    config = from_flat(SearchConfig, fold_data_options(run))
    config.space = str(path)
    return Plan(config=config, fixed=fixed, search=search)


def _check_family(config: SearchConfig, fixed: dict[str, Any], search: dict[str, dict[str, Any]], path: Path) -> None:
    """Masks models for mask data, classifiers for image labels: a mismatch fails before any trial runs."""
    from core.data.config import data_kind
    from core.models import MASKS, get_family

    kind, _ = data_kind(config.data)
    key = "model.family"
    families = domain_values(search[key]) if key in search else [fixed.get(key, TrialConfig().model.family)]
    for family in families:
        masks = get_family(family).output == MASKS
        if kind == "classification" and masks:
            raise ValueError(
                f"{path.name} trains segmentation masks (model.family={family}), but data.format={config.data.format} "
                f"{'with data.task=presence ' if config.data.task == 'presence' else ''}holds image labels; "
                "use space=classes_quick, or model.family=timm model.encoder=resnet18"
            )
        if kind != "classification" and not masks:
            raise ValueError(
                f"model.family={family} trains image labels, but data.format={config.data.format} holds masks; "
                "add data.task=presence to classify which classes each image has, or use a masks model (model.family=smp)"
            )


def _split(values: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One source's run settings and fixed trial keys, type-checked here so an error names the source."""
    run_keys, trial_keys = flat_keys(SearchConfig), flat_keys(TrialConfig)
    for key in values:
        if key not in run_keys and key not in trial_keys and not is_data_option(key):  # data.<key>: the format's
            raise unknown_key_error(key, sorted(set(run_keys) | set(trial_keys) | set(ALIASES)), where)
    run = {k: v for k, v in values.items() if k in run_keys or is_data_option(k)}  # `seed` is both: the search's seed
    fixed = {k: v for k, v in values.items() if k not in run}
    from_flat(SearchConfig, fold_data_options(run), where=where)
    from_flat(TrialConfig, fixed, where=where)
    return run, fixed


def _check(config: SearchConfig) -> None:
    check_values(config)
    from search.time_budget import parse_budget  # imports Ray Tune

    config.time_budget = parse_budget(config.time_budget)


def check_values(config: SearchConfig) -> None:
    """The run settings' values, checked with no heavy import (search.cli answers them before torch and Ray);
    :func:`load_plan` adds time_budget, whose rule lives beside Ray Tune."""
    from search.session import node_ip  # the rule the driver applies when it starts Ray (no Ray import)

    node_ip(config.ray.address, config.ray.node_ip)
    if config.trials < 1:
        raise ValueError(f"trials must be >= 1, got {config.trials}")
    if config.seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {config.seed}")
    if config.oof_share is not None and not 0 < config.oof_share <= 1:
        raise ValueError(f"oof_share must be in (0, 1] (the share of the images validated out of fold), got {config.oof_share}")
    holdout = config.oof_share is not None and config.oof_share < 1
    if config.folds < (1 if holdout else 2):
        raise ValueError(f"folds must be >= 2 for out-of-fold predictions (or 1 with oof_share below 1: a holdout), got {config.folds}")
    _check_ray(config.ray)
    if config.scheduler.grace_period < 1:
        raise ValueError(f"scheduler.grace_period must be >= 1 epoch, got {config.scheduler.grace_period}")
    if config.scheduler.reduction_factor < 2:
        raise ValueError(f"scheduler.reduction_factor must be >= 2 (ASHA keeps 1/factor of the trials at each rung), got {config.scheduler.reduction_factor}")
    if not 0 < config.oof_scale <= 1:
        raise ValueError(f"oof_scale must be in (0, 1], got {config.oof_scale}")
    check_data_config(config.data)  # the format, its own data.<key> options, and whether it needs data.root
    from core.data.config import study_metric
    from search.stages import check_stage_config

    config.metric = study_metric(config.data, config.metric)  # the data's default, or the named one if it fits the data
    check_stage_config(config)


def _check_ray(ray: RayConfig) -> None:
    """Ray's numbers and address, checked before a study or an MLflow run is written (Ray would find them only at start)."""
    if ray.address is not None and not re.fullmatch(r"auto|local|(ray://)?[\w.\-\[\]:]+:\d+", ray.address):
        raise ValueError(f"ray.address must be auto or HOST:PORT (e.g. 10.0.0.5:6379) of a running cluster, got {ray.address!r}; leave it out to start a local Ray")
    if ray.cpus_per_trial < 0:
        raise ValueError(f"ray.cpus_per_trial must be >= 0 (0: the cluster's CPUs shared among the trials), got {ray.cpus_per_trial:g}")
    if ray.gpus_per_trial < 0 and ray.gpus_per_trial != -1:
        raise ValueError(f"ray.gpus_per_trial must be >= 0, or -1 for one GPU per trial where the cluster has GPUs, got {ray.gpus_per_trial:g}")
    if ray.max_concurrent < 0:
        raise ValueError(f"ray.max_concurrent must be >= 0 (0: as many as the resources allow), got {ray.max_concurrent}")
    if ray.retries < 0:
        raise ValueError(f"ray.retries must be >= 0 (0: a trial whose worker dies fails), got {ray.retries}")


def _check_trials(fixed: dict[str, Any], search: dict[str, dict[str, Any]], where: str) -> None:
    """Build a trial config for each value a space names, so a bad name fails now, not in a trial."""
    from trainables.validate import parse_config

    parse_config(fixed)
    for key, spec in search.items():
        for value in domain_values(spec):
            try:
                parse_config({**fixed, key: value})
            except ValueError as error:
                raise ValueError(f"{where}search: {key}: {error}") from None


def resolved(plan: Plan) -> dict[str, Any]:
    """The plan as study.yaml records it: every run setting, the fixed trial keys, the space."""
    out = dataclasses.asdict(plan.config)
    out["study"] = plan.config.study_name
    out["trial"] = plan.fixed
    out["search"] = plan.search
    return out
