"""Training losses for multi-label masks (one sigmoid channel per class), by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from trainables.registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[Loss] = Registry("loss")


@LOSSES.register("bce")
def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


@LOSSES.register("dice")
def soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image-class pair, averaged; empty pairs predicted empty cost nothing."""
    probs = torch.sigmoid(logits).flatten(2)
    target = target.flatten(2)
    inter = (probs * target).sum(-1)
    total = probs.sum(-1) + target.sum(-1)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


@LOSSES.register("bce_dice")
def bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return bce(logits, target) + soft_dice(logits, target)


def get_loss(name: str) -> Loss:
    return LOSSES.get(name)
