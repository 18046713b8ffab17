"""One trial: train the study's folds side by side, report every epoch, write the trial folder.

All folds advance one epoch at a time and the report is their pooled validation score, so a
scheduler comparing trials at epoch e compares like with like. On the last epoch the trial predicts
its validation images with TTA, writes ``oof.npy``, ``cost.json`` and the weights, then
``metrics.json`` last and atomically, and only then makes its final report (a scheduler may stop
the trial the moment that report lands). Runs as a plain function; Ray is only at ``tune_edge``.

    python -m trainables.fit study=studies/quick model.encoder=resnet18 train.epochs=1
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from trainables.atomic import atomic_path, write_json
from trainables.augment import get_augment
from trainables.config import TrialConfig, from_flat, read_yaml, split_words, to_flat
from trainables.contract import CHECKPOINT_STATE, TrialFolder, fold_weights
from trainables.cost import measure_cost
from trainables.data.dataset import SegmentationDataset, study_cache
from trainables.data.study import Study, open_study
from trainables.errors import exit_status
from trainables.losses import get_loss
from trainables.metrics import quantize, tuned_score
from trainables.models import build_model, check_model_config, check_output_size, load_weights, save_weights
from trainables.preprocess import MULTIPLE, resize_probs, scaled_size
from trainables.tta import predict_tta, views

# A report: the epoch's metrics and, when given, a folder holding a checkpoint of every fold.
Reporter = Callable[[dict[str, Any], Path], None]


@dataclass
class FoldRun:
    fold: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    val_loader: DataLoader
    val_rows: np.ndarray  # positions of the validation images in folds.csv order


def parse_config(config: dict[str, Any]) -> TrialConfig:
    """Validate a sampled config once, before any data is read."""
    cfg = from_flat(TrialConfig, config, where="trial config: ")
    _check_ranges(cfg)
    check_model_config(cfg.model)
    get_loss(cfg.train.loss)
    get_augment(cfg.train.augment)
    views(cfg.tta)
    return cfg


def _check_ranges(cfg: TrialConfig) -> None:
    rules = [
        ("train.epochs", cfg.train.epochs, cfg.train.epochs >= 1, ">= 1"),
        ("train.batch_size", cfg.train.batch_size, cfg.train.batch_size >= 1, ">= 1"),
        ("train.lr", cfg.train.lr, cfg.train.lr > 0, "> 0"),
        ("train.weight_decay", cfg.train.weight_decay, cfg.train.weight_decay >= 0, ">= 0"),
        ("train.scale", cfg.train.scale, 0 < cfg.train.scale <= 4, "in (0, 4]"),
        ("train.num_workers", cfg.train.num_workers, cfg.train.num_workers >= 0, ">= 0"),
        ("train.threads", cfg.train.threads, cfg.train.threads >= 0, ">= 0"),
    ]
    for key, value, ok, rule in rules:
        if not ok:
            raise ValueError(f"trial config: {key} must be {rule}, got {value}")


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _fold_run(study: Study, cfg: TrialConfig, fold: int, size: tuple[int, int], device: torch.device, cache: dict | None) -> FoldRun:
    is_val = (study.folds["fold"] == fold).to_numpy()
    ids = np.array(study.image_ids)
    torch.manual_seed(cfg.seed * 1000 + fold)
    model = build_model(cfg.model, study.data.num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.train.epochs, 1))
    augment = get_augment(cfg.train.augment, seed=cfg.seed * 1000 + fold)
    train_set = SegmentationDataset(study.data, ids[~is_val].tolist(), size, augment, cache)
    val_set = SegmentationDataset(study.data, ids[is_val].tolist(), size, cache=cache)
    loader_args = {"batch_size": cfg.train.batch_size, "num_workers": cfg.train.num_workers}
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + fold)
    return FoldRun(
        fold=fold,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=DataLoader(train_set, shuffle=True, drop_last=len(train_set) > cfg.train.batch_size, generator=generator, **loader_args),
        val_loader=DataLoader(val_set, shuffle=False, **loader_args),
        val_rows=np.flatnonzero(is_val),
    )


def train_epoch(run: FoldRun, loss_fn: Callable, device: torch.device) -> float:
    run.model.train()
    total, count = 0.0, 0
    for images, masks in run.train_loader:
        images, masks = images.to(device), masks.to(device)
        run.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(run.model(images), masks)
        loss.backward()
        run.optimizer.step()
        total, count = total + loss.item() * len(images), count + len(images)
    run.scheduler.step()
    return total / max(count, 1)


@torch.no_grad()
def predict_fold(run: FoldRun, tta: str, out_size: tuple[int, int], device: torch.device) -> np.ndarray:
    """Validation probabilities of one fold at the OOF size, uint8 (n_val, C, h, w)."""
    run.model.eval()
    parts = [quantize(resize_probs(predict_tta(run.model, images.to(device), tta), out_size).cpu().numpy()) for images, _ in run.val_loader]
    return np.concatenate(parts)


@contextmanager
def checkpoint_dir(runs: list[FoldRun], epoch: int) -> Iterator[Path]:
    """A temp folder with ``fold<k>/model.safetensors`` per fold and ``state.json``; removed after use."""
    folder = Path(tempfile.mkdtemp(prefix="ckpt-"))
    try:
        for run in runs:
            save_weights(run.model, fold_weights(folder, run.fold))
        write_json(folder / CHECKPOINT_STATE, {"epoch": epoch})
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _resume(runs: list[FoldRun], folder: Path) -> int:
    """Load every fold's weights from a checkpoint; returns the next epoch to train."""
    for run in runs:
        load_weights(run.model, fold_weights(folder, run.fold))
    epoch = int(json.loads((folder / CHECKPOINT_STATE).read_text())["epoch"]) + 1
    with warnings.catch_warnings():  # fast-forwarding the schedule before any optimizer step is the point
        warnings.simplefilter("ignore", UserWarning)
        for run in runs:
            for _ in range(epoch):
                run.scheduler.step()
    return epoch


def _write_oof(study: Study, path: Path, runs: list[FoldRun], probs: list[np.ndarray]) -> None:
    """oof.npy: uint8 (N, C, h, w) in folds.csv order, written through a memory map then renamed."""
    shape = (len(study.image_ids), study.data.num_classes, *study.oof_size)
    with atomic_path(path) as tmp:
        oof = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for run, fold_probs in zip(runs, probs, strict=True):
            oof[run.val_rows] = fold_probs
        oof.flush()
        del oof


def _finish(study: Study, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], summary: dict, size: tuple[int, int], device: torch.device) -> dict:
    for run in runs:
        save_weights(run.model, trial.weights(run.fold))
    _write_oof(study, trial.oof, runs, probs)
    cost = measure_cost(runs[0].model, size, cfg.tta, device, batch_size=min(cfg.train.batch_size, 8))
    cost["folds"] = len(runs)
    cost["ms_per_image_all_folds"] = cost["ms_per_image"] * len(runs)
    trial.write_cost(cost)
    metrics = {
        **summary,
        "oof_score": summary["score"],
        "ms_per_image": cost["ms_per_image_all_folds"],
        "folds": [run.fold for run in runs],
        "complete": len(runs) == study.n_folds,
        "folds_hash": study.folds_hash,
    }
    trial.write_metrics(metrics)  # last: the folder is complete from here on
    return metrics


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
    trial_id = trial_id or time.strftime("local-%Y%m%d-%H%M%S")
    trial = study.folder.trial(trial_id)
    trial.root.mkdir(parents=True, exist_ok=True)
    trial.write_config(to_flat(cfg))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device()
    size = scaled_size(study.data.shape, cfg.train.scale, MULTIPLE)
    folds = cfg.train.folds if cfg.train.folds is not None else list(range(study.n_folds))
    bad = [k for k in folds if not 0 <= k < study.n_folds]
    if bad:
        raise ValueError(f"train.folds must be in 0..{study.n_folds - 1} for this study, got {bad}")
    cache = study_cache(study, size)  # data layer: decoded once on disk, shared by every trial and fold
    runs = [_fold_run(study, cfg, k, size, device, cache) for k in folds]
    check_output_size(runs[0].model, cfg.model, size)
    start = _resume(runs, resume_from) if resume_from else 0
    loss_fn = get_loss(cfg.train.loss)
    truth = study.truth()
    began = time.perf_counter()
    metrics: dict[str, Any] = {}
    for epoch in range(start, cfg.train.epochs):
        losses = [train_epoch(run, loss_fn, device) for run in runs]
        last = epoch == cfg.train.epochs - 1
        probs = [predict_fold(run, cfg.tta if last else "none", study.oof_size, device) for run in runs]
        rows = np.concatenate([run.val_rows for run in runs])
        post = tuned_score(np.concatenate(probs), truth[rows])
        metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "score": post.score, "seconds": time.perf_counter() - began}
        metrics.update({f"score_class{c + 1}": s for c, s in enumerate(post.class_scores)})
        if last:
            metrics = _finish(study, cfg, trial, runs, probs, metrics, size, device)
        if report is not None:
            with checkpoint_dir(runs, epoch) as folder:
                report(metrics, folder)
    return metrics


USAGE = "usage: python -m trainables.fit study=STUDY_DIR [trial_id=NAME] [key=value ...]"


def main(argv: list[str]) -> int:
    """Run one trial without Ray: ``study=DIR`` plus ``key=value`` trial settings."""

    def show(metrics: dict[str, Any], _: Path) -> None:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, flush=True)

    def body() -> None:
        args = dict(split_words(argv, f"; {USAGE}"))
        if "study" not in args:
            raise ValueError(USAGE)
        study_dir, trial_id = args.pop("study"), args.pop("trial_id", None)
        run_trial({key: read_yaml(value) for key, value in args.items()}, study_dir, trial_id, report=show)

    return exit_status(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
