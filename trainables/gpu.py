"""How much GPU memory a trial needs, so a search can refuse or shrink a packing that would not fit.

Ray's fractional GPUs (``ray.gpus_per_trial=0.25``: four trials per GPU) are bookkeeping only: nothing
stops four trials that each need 30 GB from sharing an 80 GB card until one dies out of memory. A
short probe (two training steps at the trial's model, batch, size and precision, on random tensors)
measures the peak; :func:`packing_fraction` then keeps the requested fraction when that many trials
fit, shrinks it to the most that do (with a message), or refuses when one trial alone does not fit.
"""

from __future__ import annotations

import gc
import math
import sys
from pathlib import Path
from typing import Any

import torch

HEADROOM = 0.9  # of a card's memory that trials may plan to use (the CUDA context and allocator keep the rest)
# Keys whose value changes a trial's memory: other searched keys (lr, loss ...) are not probed.
MEMORY_KEYS = ("model.", "train.batch_size", "train.scale", "train.precision", "train.optimizer", "train.ema", "train.channels_last")


def peak_memory(config: dict[str, Any], classes: int, shape: tuple[int, int], device: torch.device) -> int:
    """Peak bytes allocated by two training steps of ``config`` (the second holds the optimizer state)."""
    from core.models import MASKS, build_model, output_kind
    from core.preprocess import MULTIPLE, scaled_size
    from trainables.loop import autocast, autocast_dtype
    from trainables.losses import get_loss, label_loss
    from trainables.optim import make_ema, make_optimizer
    from trainables.validate import parse_config

    cfg = parse_config(config)
    size = scaled_size(shape, cfg.train.scale, MULTIPLE)
    dtype = autocast_dtype(cfg.train.precision, device)
    free_memory(device)
    torch.cuda.reset_peak_memory_stats(device)
    model = build_model(cfg.model, classes, load_weights=False).to(device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = make_optimizer(cfg.train.optimizer, model, cfg.train.lr, cfg.train.weight_decay, cfg.train.momentum)
    ema = make_ema(model, cfg.train.ema) if cfg.train.ema > 0 else None
    images = torch.randn(cfg.train.batch_size, 3, *size, device=device).contiguous(memory_format=memory_format)
    if output_kind(cfg.model) == MASKS:
        loss_fn = get_loss(cfg.train.loss)
        masks = (torch.rand(cfg.train.batch_size, classes, *size, device=device) > 0.9).float()
    else:  # a classifier: (N, K) soft targets, BCE (the multi-label loss costs what cross-entropy does)
        loss_fn = label_loss(multi_label=True)
        masks = (torch.rand(cfg.train.batch_size, classes, device=device) > 0.5).float()
    for _ in range(2):
        with autocast(device, dtype):
            loss = loss_fn(model(images), masks)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update_parameters(model)
    torch.cuda.synchronize(device)
    peak = int(torch.cuda.max_memory_allocated(device))
    del model, optimizer, ema, images, masks, loss
    free_memory(device)
    return peak


def free_memory(device: torch.device | None = None) -> None:
    """Hand cached GPU memory back (between trials, and around a probe)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def packing_fraction(requested: float, peak_bytes: int, total_bytes: int, headroom: float = HEADROOM) -> tuple[float, str]:
    """The GPU fraction per trial to use, and a message when it differs from ``requested``.

    ``requested`` 0.25 packs 4 trials per card; if only 2 fit (peak x 4 > headroom x card), 0.5 is
    returned. A trial that alone needs more than the card is a ValueError naming the fix.
    """
    gib = 1024**3
    fits = math.floor(total_bytes * headroom / max(peak_bytes, 1))
    if fits < 1:
        raise ValueError(
            f"a trial needs {peak_bytes / gib:.1f} GiB of GPU memory at its batch and size, more than "
            f"{headroom:.0%} of this card's {total_bytes / gib:.1f} GiB; lower train.batch_size or train.scale "
            "(train.accumulate keeps the effective batch)"
        )
    if requested <= 0 or requested >= 1:
        return requested, ""
    wanted = math.floor(1 / requested + 1e-9)
    if fits >= wanted:
        return requested, ""
    fraction = 1.0 / fits
    return fraction, (
        f"ray.gpus_per_trial={requested} packs {wanted} trials per GPU, but a trial needs "
        f"{peak_bytes / gib:.1f} GiB of the card's {total_bytes / gib:.1f} GiB: packing {fits} per GPU "
        f"(gpus_per_trial={fraction:.3g}) instead"
    )


def probe_configs(fixed: dict[str, Any], variants: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The fixed config, and one config per value of each searched key that changes memory."""
    configs = [dict(fixed)]
    for key, values in variants.items():
        if key.startswith(MEMORY_KEYS):
            configs += [{**fixed, key: value} for value in values]
    return configs


def fit_packing(resources: dict[str, float], fixed: dict[str, Any], variants: dict[str, list[Any]], study_dir: Path) -> dict[str, float]:
    """``resources`` with its GPU fraction checked against the largest probed trial; unchanged without
    a local GPU (the driver of a multi-node cluster may have none) or with whole GPUs per trial."""
    fraction = resources.get("gpu", 0.0)
    if not 0 < fraction < 1 or not torch.cuda.is_available():
        return resources
    from core.data.study import open_study

    study = open_study(study_dir)
    device = torch.device("cuda")
    peak = max(peak_memory(c, study.data.num_classes, study.data.shape, device) for c in probe_configs(fixed, variants))
    new, message = packing_fraction(fraction, peak, torch.cuda.get_device_properties(device).total_memory)
    if message:
        print(f"warning: {message}", file=sys.stderr, flush=True)
    return {**resources, "gpu": new}
