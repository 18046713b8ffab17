"""One trial: train the study's folds side by side, report every epoch, write the trial folder.

All folds advance one epoch at a time and the report is their pooled validation score, so a
scheduler comparing trials at epoch e compares like with like. Each report carries train and
validation loss, the tuned score and each class's, the learning rate and images per second, and a
checkpoint with every fold's full training state. A cyclic schedule writes each cycle's low point,
and an EMA its average, as snapshot candidates of the trial. On the last epoch the trial predicts its
validation images with TTA, writes ``cost.json``, the worst/best picture, the weights and ``oof.npy``,
then ``metrics.json`` last and atomically, and only then makes its final report (a scheduler may stop
the trial the moment that report lands). Runs as a plain function; Ray is only at ``tune_edge``.

    python -m trainables.fit study=studies/quick model.encoder=resnet18 train.epochs=1

A model family that outputs image labels (``model.family=timm``) trains in ``trainables/classify.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainables.config import TrialConfig, from_flat, key_help, read_yaml, split_words
from trainables.help import answer_early, default_text, format_keys, show_help, wants_help

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

import numpy as np
import torch

from trainables.atomic import atomic_path
from trainables.augment import get_augment
from trainables.checkpoint import checkpoint_dir, resume
from trainables.config import to_flat
from trainables.contract import WORST_BEST_PNG, TrialFolder
from trainables.cost import measure_cost
from trainables.data.dataset import study_cache
from trainables.data.study import Study, open_study
from trainables.errors import exit_status
from trainables.gpu import free_memory
from trainables.loop import FoldRun, autocast_dtype, current_lr, evaluate, make_fold_run, train_epoch
from trainables.losses import check_loss, get_loss
from trainables.metrics import PostProcessing, tuned_score
from trainables.models import MASKS, check_model_config, check_output_size, output_kind, save_weights
from trainables.optim import SCHEDULES, cycle_ends, make_optimizer
from trainables.pictures import MAX_WIDTH, image_scores, pick, post_process, worst_best_picture, write_png
from trainables.preprocess import MULTIPLE, resize_image, scaled_size
from trainables.tta import views

# A report: the epoch's metrics and, when given, a folder holding a checkpoint of every fold.
Reporter = Callable[[dict[str, Any], Path], None]
PICTURE_IMAGES = 4  # worst and best validation images drawn at the end of a trial


def parse_config(config: dict[str, Any]) -> TrialConfig:
    """Validate a sampled config once, before any data is read."""
    cfg = from_flat(TrialConfig, config, where="trial config: ")
    _check_ranges(cfg)
    check_model_config(cfg.model)
    check_loss(cfg.train.loss, cfg.train.class_weights)
    get_augment(cfg.train.augment, ops=cfg.train.augment_ops)
    SCHEDULES.get(cfg.train.schedule)
    make_optimizer(cfg.train.optimizer, torch.nn.Linear(1, 1), 1e-3, 0.0, cfg.train.momentum)
    autocast_dtype(cfg.train.precision, torch.device("cpu"))
    if cfg.train.schedule == "cyclic":
        cycle_ends(cfg.train.epochs, cfg.train.cycles)
    views(cfg.tta)
    return cfg


def _check_ranges(cfg: TrialConfig) -> None:
    t = cfg.train
    rules = [
        ("train.epochs", t.epochs, t.epochs >= 1, ">= 1"),
        ("train.batch_size", t.batch_size, t.batch_size >= 1, ">= 1"),
        ("train.min_steps", t.min_steps, t.min_steps >= 0, ">= 0 (0: train.batch_size whatever the data size)"),
        ("train.lr", t.lr, t.lr > 0, "> 0"),
        ("train.weight_decay", t.weight_decay, t.weight_decay >= 0, ">= 0"),
        ("train.momentum", t.momentum, 0 <= t.momentum < 1, "in [0, 1)"),
        ("train.scale", t.scale, 0 < t.scale <= 4, "in (0, 4]"),
        ("train.warmup_epochs", t.warmup_epochs, t.warmup_epochs >= 0, ">= 0"),
        ("train.cycles", t.cycles, t.cycles >= 1, ">= 1"),
        ("train.ema", t.ema, 0 <= t.ema < 1, "in [0, 1) (a decay such as 0.99; 0 for none)"),
        ("train.accumulate", t.accumulate, t.accumulate >= 1, ">= 1"),
        ("train.val_every", t.val_every, t.val_every >= 1, ">= 1"),
        ("train.num_workers", t.num_workers, t.num_workers >= 0, ">= 0"),
        ("train.threads", t.threads, t.threads >= 0, ">= 0"),
        ("train.label_smoothing", t.label_smoothing, 0 <= t.label_smoothing < 1, "in [0, 1) (0.1 is usual)"),
        ("train.mixup", t.mixup, t.mixup >= 0, ">= 0 (a Beta alpha such as 0.2; 0 for none)"),
        ("train.cutmix", t.cutmix, t.cutmix >= 0, ">= 0 (a Beta alpha such as 1.0; 0 for none)"),
    ]
    for key, value, ok, rule in rules:
        if not ok:
            raise ValueError(f"trial config: {key} must be {rule}, got {value}")


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _write_oof(study: Study, path: Path, runs: list[FoldRun], probs: list[np.ndarray]) -> None:
    """oof.npy: uint8 (N, C, h, w) in folds.csv order, written through a memory map then renamed."""
    shape = (len(study.image_ids), study.data.num_classes, *study.oof_size)
    with atomic_path(path) as tmp:
        oof = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for run, fold_probs in zip(runs, probs, strict=True):
            oof[run.val_rows] = fold_probs
        oof.flush()
        del oof


def _candidate_metrics(study: Study, runs: list[FoldRun], summary: dict, ms_per_image: float) -> dict:
    return {
        **summary,
        "oof_score": summary["score"],
        "ms_per_image": ms_per_image,
        "folds": [run.fold for run in runs],
        "complete": len(runs) == study.n_folds,
        "folds_hash": study.folds_hash,
    }


def write_candidate(study: Study, folder: TrialFolder, runs: list[FoldRun], models: list[torch.nn.Module], probs: list[np.ndarray], metrics: dict) -> None:
    """Weights of every fold, oof.npy, then metrics.json last: the folder is a complete candidate."""
    for run, model in zip(runs, models, strict=True):
        save_weights(model, folder.weights(run.fold))
    _write_oof(study, folder.oof, runs, probs)
    folder.write_metrics(metrics)


def _score(study: Study, runs: list[FoldRun], probs: list[np.ndarray], truth: np.ndarray) -> tuple[PostProcessing, dict]:
    rows = np.concatenate([run.val_rows for run in runs])
    post = tuned_score(np.concatenate(probs), truth[rows], study.config.metric)
    scores = {"score": post.score, **{f"score_class{c + 1}": s for c, s in enumerate(post.class_scores)}}
    return post, scores


def _picture(study: Study, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], truth: np.ndarray, post: PostProcessing) -> None:
    """The worst and best validation images of the trial, into its pictures folder."""
    rows = np.concatenate([run.val_rows for run in runs])
    pred = post_process(np.concatenate(probs), post)
    scores = image_scores(pred, truth[rows])
    ids = [study.image_ids[r] for r in rows]
    worst, best = pick(scores, truth[rows].reshape(len(rows), -1).any(axis=1), PICTURE_IMAGES)
    wanted = set(worst.tolist()) | set(best.tolist())
    full = study.data.shape
    display = full if full[1] <= MAX_WIDTH else scaled_size(full, MAX_WIDTH / full[1])
    blank = np.zeros((1, 1, 3), np.uint8)  # images not drawn are never read
    images = [resize_image(study.data.read_image(ids[i]), display) if i in wanted else blank for i in range(len(ids))]
    picture = worst_best_picture(images, pred, truth[rows], scores, ids, PICTURE_IMAGES)
    write_png(trial.pictures_dir / WORST_BEST_PNG, picture)


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
    if output_kind(cfg.model) == MASKS and study.kind != "segmentation":
        raise ValueError(
            f"study {study.root} is {study.kind} (image labels); model.family={cfg.model.family} outputs masks: "
            "use model.family=timm with a timm classifier (model.encoder=resnet18)"
        )
    if output_kind(cfg.model) != MASKS:
        from trainables.classify import check_class_study

        check_class_study(study)
    check_loss(cfg.train.loss, cfg.train.class_weights, study.data.num_classes)
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
    if output_kind(cfg.model) != MASKS:  # image labels: trainables/classify.py, the same flow for classifiers
        from trainables.classify import train_labels

        return train_labels(study, cfg, trial, folds, size, device, dtype, report, resume_from)
    cache = study_cache(study, size)  # data layer: decoded once on disk, shared by every trial and fold
    runs = [make_fold_run(study, cfg, k, size, device, cache, dtype) for k in folds]
    try:
        check_output_size(runs[0].model, cfg.model, size)
        start = resume(runs, resume_from) if resume_from else 0
        return _train(study, cfg, trial, runs, start, size, device, dtype, report)
    finally:
        _free(runs)


def _train(study: Study, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], start: int, size: tuple[int, int], device: torch.device, dtype: torch.dtype | None, report: Reporter | None) -> dict[str, Any]:
    loss_fn = get_loss(cfg.train.loss, cfg.train.class_weights)
    truth = study.truth()
    snapshot_epochs = cycle_ends(cfg.train.epochs, cfg.train.cycles)[:-1] if cfg.train.schedule == "cyclic" else []
    cost: dict[str, Any] = {}
    began = time.perf_counter()
    metrics: dict[str, Any] = {}
    for epoch in range(start, cfg.train.epochs):
        last = epoch == cfg.train.epochs - 1
        lr = current_lr(runs[0])
        trained = []
        for run in runs:
            run.start_epoch(epoch)
            trained.append(train_epoch(run, loss_fn, device, dtype, cfg.train.accumulate))
        metrics = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean([t["loss"] for t in trained])),
            "lr": lr,
            "images_per_second": sum(t["images"] for t in trained) / max(sum(t["seconds"] for t in trained), 1e-9),
        }
        if not (last or epoch + 1 in snapshot_epochs or (epoch + 1) % cfg.train.val_every == 0):
            # no validation this epoch (train.val_every): a report without a score, which schedulers skip
            if report is not None:
                with checkpoint_dir(runs, epoch) as folder:
                    report({**metrics, "seconds": time.perf_counter() - began}, folder)
            continue
        tta = cfg.tta if last or epoch + 1 in snapshot_epochs else "none"
        evaluated = [evaluate(run.model, run, loss_fn, tta, study.oof_size, device, dtype) for run in runs]
        probs = [p for p, _ in evaluated]
        post, scores = _score(study, runs, probs, truth)
        metrics = {
            **metrics,
            "val_loss": float(np.mean([v for _, v in evaluated])),
            **scores,
            "seconds": time.perf_counter() - began,
        }
        if epoch + 1 in snapshot_epochs:
            name = f"cycle{snapshot_epochs.index(epoch + 1) + 1}"
            cost = cost or _measure(cfg, runs, size, device)
            summary = _candidate_metrics(study, runs, {**metrics, "snapshot": name}, cost["ms_per_image_all_folds"])
            write_candidate(study, trial.snapshot(name), runs, [r.model for r in runs], probs, summary)
        if last:
            cost = cost or _measure(cfg, runs, size, device)
            metrics = _finish(study, cfg, trial, runs, probs, metrics, post, truth, cost, device, dtype, loss_fn)
        if report is not None:
            with checkpoint_dir(runs, epoch) as folder:
                report(metrics, folder)
    return metrics


def _measure(cfg: TrialConfig, runs: list[FoldRun], size: tuple[int, int], device: torch.device) -> dict[str, Any]:
    cost = measure_cost(runs[0].model, size, cfg.tta, device, batch_size=min(cfg.train.batch_size, 8))
    cost["folds"] = len(runs)
    cost["ms_per_image_all_folds"] = cost["ms_per_image"] * len(runs)
    return cost


def _finish(study: Study, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], summary: dict, post: PostProcessing, truth: np.ndarray, cost: dict, device: torch.device, dtype: torch.dtype | None, loss_fn: Callable) -> dict:
    trial.write_cost(cost)
    _picture(study, trial, runs, probs, truth, post)
    ms = cost["ms_per_image_all_folds"]
    if cfg.train.ema > 0:
        ema_probs = [evaluate(run.ema.module, run, loss_fn, cfg.tta, study.oof_size, device, dtype)[0] for run in runs]
        _, ema_scores = _score(study, runs, ema_probs, truth)
        ema_metrics = _candidate_metrics(study, runs, {**summary, **ema_scores, "snapshot": "ema"}, ms)
        write_candidate(study, trial.snapshot("ema"), runs, [run.ema.module for run in runs], ema_probs, ema_metrics)
        summary = {**summary, "ema_score": ema_scores["score"]}
    metrics = _candidate_metrics(study, runs, summary, ms)
    write_candidate(study, trial, runs, [run.model for run in runs], probs, metrics)  # metrics.json last
    return metrics


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
