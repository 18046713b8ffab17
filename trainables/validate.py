"""A sampled trial config validated once, at the boundary, before any data is read.

Every name a config gives (model, loss, augmentation, schedule, optimizer, precision, TTA) is looked up
in its registry and every number checked against its range, so a bad key is one line naming it and the
rule, whether it comes from a space file, the command line, the search or a refit.
"""

from __future__ import annotations

from typing import Any

import torch

from core.config import TrialConfig, from_flat
from core.models import check_model_config
from core.tta import views
from trainables.augment import get_augment
from trainables.loop import autocast_dtype
from trainables.losses import check_loss
from trainables.optim import SCHEDULES, cycle_ends, make_optimizer


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
        ("train.time_limit", t.time_limit, t.time_limit >= 0, ">= 0 seconds (0: train.epochs as written)"),
        ("train.num_workers", t.num_workers, t.num_workers >= 0, ">= 0"),
        ("train.threads", t.threads, t.threads >= 0, ">= 0"),
        ("train.label_smoothing", t.label_smoothing, 0 <= t.label_smoothing < 1, "in [0, 1) (0.1 is usual)"),
        ("train.mixup", t.mixup, t.mixup >= 0, ">= 0 (a Beta alpha such as 0.2; 0 for none)"),
        ("train.cutmix", t.cutmix, t.cutmix >= 0, ">= 0 (a Beta alpha such as 1.0; 0 for none)"),
    ]
    for key, value, ok, rule in rules:
        if not ok:
            raise ValueError(f"trial config: {key} must be {rule}, got {value}")
