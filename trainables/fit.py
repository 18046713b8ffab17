"""One trial: a sampled config trained on the study's folds, reported every epoch, its folder written.

The config is validated once (``trainables/validate.py``), the model family's output picks the task (masks or
image labels, ``trainables/tasks``) and ``trainables/epochs.py`` trains every fold side by side in the one
loop both tasks share. Each report carries train and validation loss, the tuned score and each class's,
the learning rate and images per second, and a checkpoint with every fold's full training state; a
resumed trial goes on from the checkpoint it is handed. Runs as a plain function; Ray is only at
``tune_edge``.

    python -m trainables.fit study=studies/quick model.encoder=resnet18 train.epochs=1
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from core.config import TrialConfig, from_flat, key_help, read_yaml, split_words
from core.help import answer_early, default_text, format_keys, show_help, wants_help

USAGE = "usage: python -m trainables.fit study=STUDY_DIR [trial_id=NAME] [key=value ...]"


def fit_help() -> str:
    rows = [("study", "(required)", "the study folder search.run prepared"), ("trial_id", "null", "the trial's folder name (null: a new one)")]
    rows += [(key, default_text(default), meaning) for key, default, meaning in key_help(TrialConfig)]
    return f"{USAGE}\n\nRun one trial without Ray on the study's folds, with the trial keys given (the rest at their defaults).\n\n{format_keys(rows)}\n"


def parse_words(argv: list[str]) -> tuple[str, str | None, dict[str, Any]]:
    """(study, trial_id, the trial keys read as YAML); -h/--help prints the keys, an unknown key or a bad type is an error."""
    if wants_help(argv):
        show_help(fit_help())
    args = dict(split_words(argv, f"; {USAGE}"))
    if "study" not in args:
        raise ValueError(USAGE)
    study_dir, trial_id = args.pop("study"), args.pop("trial_id", None)
    config = {key: read_yaml(value, f"{key}={value}") for key, value in args.items()}
    from_flat(TrialConfig, config, where="command line: ")  # names a typo before torch is imported
    return study_dir, trial_id, config


if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    answer_early(sys.argv[1:], parse_words)

import torch

from core.config import to_flat
from core.data.extra import open_extra
from core.data.study import open_study
from core.errors import exit_status
from core.models import MASKS, check_output_size, output_kind
from core.preprocess import MULTIPLE, scaled_size
from trainables.checkpoint import resume
from trainables.epochs import Reporter, train_folds
from trainables.gpu import free_memory
from trainables.loop import FoldRun, autocast_dtype, make_fold_run
from trainables.losses import check_loss
from trainables.tasks import task_for
from trainables.validate import parse_config


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _free(runs: list[FoldRun]) -> None:
    """Drop the trial's models and optimizer state, and hand cached GPU memory back for the next trial."""
    runs.clear()
    free_memory()


def run_trial(
    config: dict[str, Any],
    study_dir: str | Path,
    trial_id: str | None = None,
    report: Reporter | None = None,
    resume_from: Path | None = None,
) -> dict[str, Any]:
    """Train one sampled config on the study's folds; returns the final metrics."""
    cfg = parse_config(config)
    study = open_study(study_dir)
    task = task_for(cfg.model, study)  # masks or image labels: trainables/tasks, one loop for both
    check_loss(cfg.train.loss, cfg.train.class_weights, study.data.num_classes)
    extra = open_extra(study, cfg.train.extra) if cfg.train.extra else None  # extra training targets (core/data/extra.py)
    trial_id = trial_id or time.strftime("local-%Y%m%d-%H%M%S")
    trial = study.folder.trial(trial_id)
    trial.root.mkdir(parents=True, exist_ok=True)
    trial.write_config(to_flat(cfg))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    dtype = autocast_dtype(cfg.train.precision, device)
    size = scaled_size(study.data.shape, cfg.train.scale, MULTIPLE)
    folds = cfg.train.folds if cfg.train.folds is not None else list(range(study.n_folds))
    bad = [k for k in folds if not 0 <= k < study.n_folds]
    if bad:
        raise ValueError(f"train.folds must be in 0..{study.n_folds - 1} for this study, got {bad}")
    cache = task.cache(size)  # data layer: decoded once on disk, shared by every trial and fold
    runs = [make_fold_run(study, cfg, k, size, device, cache, dtype, dataset=task.dataset, extra=extra) for k in folds]
    try:
        if output_kind(cfg.model) == MASKS:
            check_output_size(runs[0].model, cfg.model, size)
        start = resume(runs, resume_from) if resume_from else 0
        return train_folds(task, cfg, trial, runs, start, size, device, dtype, report)
    finally:
        _free(runs)


def main(argv: list[str]) -> int:
    """Run one trial without Ray: ``study=DIR`` plus ``key=value`` trial settings."""

    def show(metrics: dict[str, Any], _: Path) -> None:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, flush=True)

    def body() -> None:
        study_dir, trial_id, config = parse_words(argv)
        run_trial(config, study_dir, trial_id, report=show)

    return exit_status(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
