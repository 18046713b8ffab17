"""How fast a configuration trains and validates here: the measurement a time budget is planned from.

:func:`measure_pace` builds fold 0's run of a trial configuration at a scale, times a few real
optimizer steps on the study's cached images (after a warm-up step) and a few validation batches, and
returns seconds per image for each. It uses the trial's own code path (task, cache, loader, loss), so
what it measures is what a trial will spend, up to the load of trials running side by side (the
planner corrects that with the screen's own measured pace). No Ray; the caches it builds are the
ones the trials read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.data.study import open_study
from core.preprocess import MULTIPLE, scaled_size
from trainables.cost import _sync
from trainables.fit import pick_device
from trainables.loop import _step, autocast, autocast_dtype, make_fold_run
from trainables.tasks import task_for
from trainables.validate import parse_config


@dataclass(frozen=True)
class Pace:
    """Seconds per image: one training step's share, and one validation pass's (no TTA)."""

    train_s: float
    eval_s: float
    size: tuple[int, int]
    threads: int


def measure_pace(config: dict[str, Any], study_dir: str | Path, scale: float, threads: int, steps: int = 3) -> Pace:
    """Train ``steps`` batches (after one warm-up) and validate ``steps`` batches of fold 0 at ``scale``."""
    cfg = parse_config({**config, "train.scale": scale})
    study = open_study(study_dir)
    task = task_for(cfg.model, study)
    device = pick_device()
    dtype = autocast_dtype(cfg.train.precision, device)
    size = scaled_size(study.data.shape, cfg.train.scale, MULTIPLE)
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        run = make_fold_run(study, cfg, 0, size, device, task.cache(size), dtype, dataset=task.dataset)
        loss_fn = task.loss(cfg)
        prepare = task.prepare(cfg, 0, 0)
        train_s = _train_seconds(run, loss_fn, prepare, device, dtype, steps)
        eval_s = _eval_seconds(run, device, dtype, steps)
    finally:
        torch.set_num_threads(before)
    return Pace(train_s=train_s, eval_s=eval_s, size=size, threads=max(1, threads))


def _seconds_per_image(batches: Any, step: Any, device: torch.device, steps: int) -> float:
    """Seconds per image of ``step(images, targets)`` over ``steps`` batches after one warm-up batch; a
    loader of one batch is timed again, warm now."""
    images_done, seconds, first = 0, 0.0, None
    for i, batch in enumerate(batches):
        if i > steps:
            break
        first = first or batch
        began = time.perf_counter()
        step(*batch)
        _sync(device)
        if i > 0:  # the first step warms up (allocations, kernel choice)
            images_done += len(batch[0])
            seconds += time.perf_counter() - began
    if not images_done and first is not None:
        began = time.perf_counter()
        step(*first)
        _sync(device)
        return (time.perf_counter() - began) / len(first[0])
    return seconds / max(images_done, 1)


def _train_seconds(run: Any, loss_fn: Any, prepare: Any, device: torch.device, dtype: Any, steps: int) -> float:
    run.model.train()

    def step(images: torch.Tensor, targets: torch.Tensor) -> None:
        images, targets = images.to(device), targets.to(device)
        if prepare is not None:
            images, targets = prepare(images, targets)
        with autocast(device, dtype):
            loss = loss_fn(run.forward(images), targets)
        loss.backward()
        _step(run)

    return _seconds_per_image(run.train_loader, step, device, steps)


@torch.no_grad()
def _eval_seconds(run: Any, device: torch.device, dtype: Any, steps: int) -> float:
    run.model.eval()

    def step(images: torch.Tensor, _: torch.Tensor) -> None:
        with autocast(device, dtype):
            run.model(images.to(device))

    return _seconds_per_image(run.val_loader, step, device, steps)
