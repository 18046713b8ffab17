"""One fold's epoch: gradient accumulation, mixed precision on the CPU, per-step schedule and EMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.loop import FoldRun, autocast_dtype, train_epoch
from trainables.losses import get_loss
from trainables.optim import make_ema, make_optimizer, make_schedule


def _run(batches: int, accumulate: int, ema: bool = False) -> FoldRun:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    optimizer = make_optimizer("adamw", model, 1e-2, 0.0, 0.9)
    generator = torch.Generator().manual_seed(0)
    loader = [(torch.randn(2, 3, 8, 8, generator=generator), (torch.rand(2, 2, 8, 8, generator=generator) > 0.5).float()) for _ in range(batches)]
    steps = -(-batches // accumulate)
    return FoldRun(
        fold=0, seed=0, model=model, forward=model, optimizer=optimizer,
        scheduler=make_schedule("cosine", optimizer, steps, 0, 1), scaler=None,
        ema=make_ema(model, 0.5) if ema else None, augment=None, generator=generator,  # type: ignore[arg-type]
        train_loader=loader, val_loader=[], val_rows=np.zeros(0, int),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("batches", "accumulate", "steps"), [(5, 1, 5), (5, 2, 3), (4, 4, 1)])
def test_accumulation_steps_the_optimizer_every_n_batches(batches: int, accumulate: int, steps: int) -> None:
    run = _run(batches, accumulate, ema=True)
    out = train_epoch(run, get_loss("bce_dice"), torch.device("cpu"), None, accumulate)
    assert out["images"] == 2 * batches and np.isfinite(out["loss"])
    assert run.scheduler.last_epoch == steps  # one schedule step per optimizer step
    assert int(run.ema.n_averaged) == steps  # type: ignore[union-attr]


def test_bf16_autocast_trains_on_the_cpu() -> None:
    dtype = autocast_dtype("bf16", torch.device("cpu"))
    assert dtype == torch.bfloat16
    run = _run(2, 1)
    before = run.model[0].weight.detach().clone()
    out = train_epoch(run, get_loss("focal+dice"), torch.device("cpu"), dtype)
    assert np.isfinite(out["loss"]) and not torch.equal(before, run.model[0].weight)
    assert run.model[0].weight.dtype == torch.float32  # autocast keeps fp32 master weights


def test_auto_precision_is_fp32_on_the_cpu() -> None:
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("fp32", torch.device("cpu")) is None


def test_a_small_fold_trains_with_smaller_batches_to_reach_its_minimum_steps() -> None:
    from trainables.loop import fitted_batch

    assert fitted_batch(16, 447, 12) == 16  # NEU-Seg's folds: the space's batch already gives 27 steps
    assert fitted_batch(16, 48, 12) == 4  # 96 images in 2 folds: 12 steps of 4
    assert fitted_batch(16, 10, 12) == 2  # never below 2 (batch norm)
    assert fitted_batch(16, 48, 0) == 16 and fitted_batch(1, 48, 12) == 1  # off; a batch of 1 kept
