"""Optimizers, learning-rate schedules and weight averaging (EMA), by name.

Schedules are pure functions of the optimizer step: ``lr_factor(kind, step, total, warmup, cycles)``
is the multiplier of the base learning rate, stepped once per optimizer step through a ``LambdaLR``
(whose state, a step count and the schedule's length, goes into every checkpoint; ``train.time_limit``
moves the length between epochs). ``cyclic`` restarts a cosine ``cycles``
times; the end of each cycle is a low point whose weights are a snapshot worth keeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from core.registry import Registry

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], float, float, float], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
OPTIMIZERS.register("adamw")(lambda params, lr, wd, momentum: torch.optim.AdamW(params, lr=lr, weight_decay=wd))
OPTIMIZERS.register("radam")(
    lambda params, lr, wd, momentum: torch.optim.RAdam(params, lr=lr, weight_decay=wd, decoupled_weight_decay=True)
)
OPTIMIZERS.register("sgd")(
    lambda params, lr, wd, momentum: torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=momentum, nesterov=momentum > 0)
)

FLOOR = 1e-3  # schedules end at FLOOR x the base rate, not at zero: the last steps still move


def _cosine(progress: float) -> float:
    """1 at progress 0, FLOOR at progress 1."""
    return FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def cosine(step: int, total: int, warmup: int, cycles: int) -> float:
    """Linear warm-up over ``warmup`` steps from 1/warm-up to 1, then one cosine down to FLOOR."""
    if step < warmup:
        return (step + 1) / warmup
    return _cosine((step - warmup) / max(total - warmup, 1))


def one_cycle(step: int, total: int, warmup: int, cycles: int) -> float:
    """Smith's one-cycle: a cosine up from 1/25 over the first 30% (or the warm-up), then down to FLOOR."""
    rise = warmup or max(1, int(0.3 * total))
    if step < rise:
        return 1 / 25 + (1 - 1 / 25) * (1 - _cosine(step / rise)) / (1 - FLOOR)
    return _cosine((step - rise) / max(total - rise, 1))


def cyclic(step: int, total: int, warmup: int, cycles: int) -> float:
    """Cosine with ``cycles`` equal restarts (snapshot ensembling); each cycle ends at FLOOR."""
    length = max(total // cycles, 1)
    if step < warmup:
        return (step + 1) / warmup
    start = warmup if step < length else step // length * length  # the first cycle starts after the warm-up
    return _cosine((step - start + 1) / max(length - (start % length if step < length else 0), 1))


def constant(step: int, total: int, warmup: int, cycles: int) -> float:
    return (step + 1) / warmup if step < warmup else 1.0


SCHEDULES: Registry[Callable[[int, int, int, int], float]] = Registry("schedule")
SCHEDULES.register("cosine")(cosine)
SCHEDULES.register("one_cycle")(one_cycle)
SCHEDULES.register("cyclic")(cyclic)
SCHEDULES.register("constant")(constant)


def make_optimizer(name: str, model: torch.nn.Module, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(name)(model.parameters(), lr, weight_decay, momentum)


class StepFactor:
    """The multiplier of a named schedule at a step, over ``total`` steps that a time limit may move.

    An object, not a lambda, so ``LambdaLR.state_dict`` keeps its fields (a name and three integers: they
    load with ``weights_only=True``) and a resumed trial goes on with the length it had re-planned to."""

    def __init__(self, name: str, total: int, warmup: int, cycles: int) -> None:
        SCHEDULES.get(name)  # an unknown name fails here, with the registry's list
        self.name, self.total, self.warmup, self.cycles = name, int(total), int(warmup), int(cycles)

    def __call__(self, step: int) -> float:
        return SCHEDULES.get(self.name)(step, self.total, self.warmup, self.cycles)


def make_schedule(
    name: str, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, cycles: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR over ``total_steps`` optimizer steps (``set_total_steps`` moves its end)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, StepFactor(name, total_steps, warmup_steps, cycles))


def set_total_steps(scheduler: torch.optim.lr_scheduler.LambdaLR, total_steps: int) -> None:
    """Stretch or shorten the schedule to end at ``total_steps``; the steps taken keep their rates and the
    next one follows the new curve (the cosine's value moves little when the end moves a few epochs)."""
    for group, factor in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        factor.total = int(total_steps)
        group["lr"] = group["initial_lr"] * factor(scheduler.last_epoch)  # the next step's rate, on the new curve
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def total_steps(scheduler: torch.optim.lr_scheduler.LambdaLR) -> int:
    return int(scheduler.lr_lambdas[0].total)


def cycle_ends(epochs: int, cycles: int) -> list[int]:
    """The 1-based epochs that end a cycle of the cyclic schedule (its low points)."""
    if cycles < 1 or epochs % cycles:
        raise ValueError(f"train.cycles must divide train.epochs, got cycles={cycles}, epochs={epochs}; e.g. epochs={cycles * max(1, epochs // cycles)}")
    return [epochs // cycles * (k + 1) for k in range(cycles)]


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the weights and the BatchNorm statistics (``use_buffers``)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def list_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def list_schedules() -> list[str]:
    return SCHEDULES.names()
