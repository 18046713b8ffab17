"""One fold's training run: model, optimizer, per-step schedule, EMA, mixed precision and loaders.

Everything random in a fold is seeded from (trial seed, fold, epoch): weights from (seed, fold), the
shuffling and the augmentation of epoch e from (seed, fold, e), so a trial resumed at epoch e
continues exactly as if it had never stopped, and a rerun of a config gives the same OOF.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, get_worker_info

from core.config import TrialConfig
from core.data.cache import DiskCache
from core.data.dataset import SegmentationDataset
from core.data.extra import ExtraTargets
from core.data.study import Study
from core.metrics import quantize
from core.models import build_model
from core.preprocess import resize_probs
from core.tta import predict_tta
from trainables.augment import get_augment
from trainables.optim import make_ema, make_optimizer, make_schedule

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32: auto is bf16 on a GPU that has it, fp16 on one that does not,
    fp32 on a CPU (CPU autocast is slower than fp32 for convolutions on most machines)."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def epoch_seed(seed: int, fold: int, epoch: int) -> int:
    return (seed * 1000 + fold) * 1000 + epoch


@dataclass
class FoldRun:
    fold: int
    seed: int
    model: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its torch.compile'd forward
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler  # stepped once per optimizer step
    scaler: torch.amp.GradScaler | None  # fp16 only
    ema: AveragedModel | None
    augment: A.Compose
    generator: torch.Generator
    train_loader: DataLoader
    val_loader: DataLoader
    val_rows: np.ndarray  # positions of the validation images in folds.csv order

    def start_epoch(self, epoch: int) -> None:
        """Reseed shuffling and augmentation for ``epoch``: a resumed run draws what an unbroken one would."""
        self.generator.manual_seed(epoch_seed(self.seed, self.fold, epoch))
        self.augment.set_random_seed(epoch_seed(self.seed, self.fold, epoch))


def _seed_worker(_: int) -> None:
    """Each loader worker augments with its own stream, derived from the loader's seeded generator."""
    info = get_worker_info()
    if info is not None and getattr(info.dataset, "augment", None) is not None:
        info.dataset.augment.set_random_seed(torch.initial_seed() % 2**32)


def steps_per_epoch(n_batches: int, accumulate: int) -> int:
    return math.ceil(n_batches / accumulate)


def fitted_batch(batch_size: int, images: int, min_steps: int) -> int:
    """``train.batch_size``, made smaller (never below 2) so an epoch of ``images`` takes ``min_steps`` steps."""
    if min_steps <= 0 or batch_size <= 2:
        return batch_size
    return max(2, min(batch_size, images // min_steps))


def make_fold_run(
    study: Study,
    cfg: TrialConfig,
    fold: int,
    size: tuple[int, int],
    device: torch.device,
    cache: dict | DiskCache | None,
    dtype: torch.dtype | None,
    dataset: type = SegmentationDataset,  # ClassificationDataset for image labels: the same signature
    extra: ExtraTargets | None = None,  # train.extra: extra images and soft targets join the TRAINING set only
) -> FoldRun:
    is_val = (study.folds["fold"] == fold).to_numpy()
    ids = np.array(study.image_ids)
    torch.manual_seed(cfg.seed * 1000 + fold)
    model = build_model(cfg.model, study.data.num_classes).to(device)
    if cfg.train.channels_last:  # faster on a GPU, and on a CPU too (BENCHMARKS.md: +43-59 % images a second, resnet18 Unet at 96 px)
        model = model.to(memory_format=torch.channels_last)
    t = cfg.train
    optimizer = make_optimizer(t.optimizer, model, t.lr, t.weight_decay, t.momentum)
    augment = get_augment(t.augment, seed=epoch_seed(cfg.seed, fold, 0), ops=t.augment_ops)
    train_set = dataset(study.data, ids[~is_val].tolist() + study.train_only, size, augment, cache)  # + a holdout's TRAIN_ONLY images
    if extra is not None:
        train_set = extra.dataset(train_set, fold, np.flatnonzero(~is_val), augment)
    val_set = dataset(study.data, ids[is_val].tolist(), size, cache=cache)
    loader_args = {
        "num_workers": t.num_workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": False,  # workers are re-made each epoch, so each epoch's seed reaches them
    }
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, fold, 0))
    batch = fitted_batch(t.batch_size, len(train_set), t.min_steps)
    drop_last = len(train_set) > batch
    train_loader = DataLoader(
        train_set, batch_size=batch, shuffle=True, drop_last=drop_last, generator=generator, worker_init_fn=_seed_worker, **loader_args
    )
    total = t.epochs * steps_per_epoch(len(train_loader), t.accumulate)
    # A warm-up is at most half the training, so a space's warm-up still fits a 1-epoch smoke run.
    warmup = round(min(t.warmup_epochs, t.epochs / 2) * steps_per_epoch(len(train_loader), t.accumulate))
    return FoldRun(
        fold=fold,
        seed=cfg.seed,
        model=model,
        forward=torch.compile(model) if t.compile else model,
        optimizer=optimizer,
        scheduler=make_schedule(t.schedule, optimizer, total, warmup, t.cycles),
        scaler=torch.amp.GradScaler(device.type) if dtype == torch.float16 else None,
        ema=make_ema(model, t.ema) if t.ema > 0 else None,
        augment=augment,
        generator=generator,
        train_loader=train_loader,
        val_loader=DataLoader(val_set, batch_size=t.batch_size, shuffle=False, **loader_args),
        val_rows=np.flatnonzero(is_val),
    )


def _to(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    batch = batch.to(device, non_blocking=True)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def all_images_run(
    study: Study,
    cfg: TrialConfig,
    size: tuple[int, int],
    device: torch.device,
    cache: dict | DiskCache | None,
    dtype: torch.dtype | None,
    dataset: type = SegmentationDataset,
    extra: ExtraTargets | None = None,
) -> FoldRun:
    """A refit's run: fold K (past the last fold 0..K-1) holds out nothing, so every training image is
    trained on, seeded as fold K."""
    run = make_fold_run(study, cfg, study.n_folds, size, device, cache, dtype, dataset=dataset, extra=extra)
    if len(run.val_rows):
        raise ValueError(f"{study.folder.folds_csv}: fold {study.n_folds} holds images; refit needs every image in training")
    return run


def train_epoch(
    run: FoldRun,
    loss_fn: Callable,
    device: torch.device,
    dtype: torch.dtype | None,
    accumulate: int = 1,
    prepare: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """One pass over the fold's training images; the mean loss, the images trained and the seconds taken.

    ``prepare`` turns each batch's (images, targets) on the device into what the model trains on
    (classification: smoothed targets, mixup or cutmix)."""
    run.model.train()
    channels_last = next(run.model.parameters()).is_contiguous(memory_format=torch.channels_last)
    total, count, began = torch.zeros((), device=device), 0, time.perf_counter()
    n_batches = len(run.train_loader)
    run.optimizer.zero_grad(set_to_none=True)
    for i, (images, masks) in enumerate(run.train_loader):
        images, masks = _to(images, device, channels_last), masks.to(device, non_blocking=True)
        if prepare is not None:
            images, masks = prepare(images, masks)
        with autocast(device, dtype):
            loss = loss_fn(run.forward(images), masks)
        scaled = loss / accumulate
        (run.scaler.scale(scaled) if run.scaler else scaled).backward()
        if (i + 1) % accumulate == 0 or i + 1 == n_batches:
            _step(run)
        total += loss.detach() * len(images)  # summed on the device: no sync per step
        count += len(images)
    mean = float(total) / max(count, 1)  # one sync, at the end of the epoch
    return {"loss": mean, "images": count, "seconds": time.perf_counter() - began}


def _step(run: FoldRun) -> None:
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, run: FoldRun, loss_fn: Callable, tta: str, out_size: tuple[int, int], device: torch.device, dtype: torch.dtype | None
) -> tuple[np.ndarray, float]:
    """Validation probabilities of one fold at the OOF size, uint8 (n_val, C, h, w), and the mean loss."""
    model.eval()
    parts, total, count = [], 0.0, 0
    for images, masks in run.val_loader:
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(images)
            total += loss_fn(logits, masks).item() * len(images)
            probs = predict_tta(model, images, tta, plain_logits=logits).float()  # the plain view reuses the loss's pass
        count += len(images)
        parts.append(quantize(resize_probs(probs, out_size).cpu().numpy()))
    return np.concatenate(parts), total / max(count, 1)


def current_lr(run: FoldRun) -> float:
    return float(run.optimizer.param_groups[0]["lr"])
