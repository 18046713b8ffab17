"""Training losses for multi-label masks (one sigmoid channel per class), by name, with class weights.

Every registered loss returns one value per class, so per-class weights (``train.class_weights``) apply
the same way to all of them: the weighted mean of the class losses. Names combine with ``+``
(``focal+dice`` is the sum of the two); ``bce_dice`` is kept as the name of ``bce+dice``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.registry import Registry

# (logits, target) -> per-class loss (C,)
ClassLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[ClassLoss] = Registry("loss")


@LOSSES.register("bce")
def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(0, 2, 3))


@LOSSES.register("dice")
def soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image-class pair, averaged over images; empty pairs predicted empty cost nothing."""
    probs = torch.sigmoid(logits).flatten(2)
    target = target.flatten(2)
    inter = (probs * target).sum(-1)
    total = probs.sum(-1) + target.sum(-1)
    return (1 - (2 * inter + eps) / (total + eps)).mean(0)


@LOSSES.register("focal")
def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """BCE scaled by (1 - p_t)^gamma: easy background pixels, most of a steel image, count little."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-ce)
    return ((1 - p_t) ** gamma * ce).mean(dim=(0, 2, 3))


@LOSSES.register("tversky")
def tversky(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.3, beta: float = 0.7, eps: float = 1.0) -> torch.Tensor:
    """1 - Tversky index per pair: beta > alpha weighs missed defect pixels above false alarms."""
    probs = torch.sigmoid(logits).flatten(2)
    target = target.flatten(2)
    tp = (probs * target).sum(-1)
    fp = (probs * (1 - target)).sum(-1)
    fn = ((1 - probs) * target).sum(-1)
    return (1 - (tp + eps) / (tp + alpha * fp + beta * fn + eps)).mean(0)


def _lovasz_grad(sorted_truth: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al. 2018)."""
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1 - sorted_truth).cumsum(0)
    jaccard = 1 - intersection / union
    if len(sorted_truth) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


@LOSSES.register("lovasz")
def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge per image-class pair (a surrogate of IoU), averaged over images."""
    n, c = logits.shape[:2]
    flat_logits, flat_target = logits.float().reshape(n * c, -1), target.float().reshape(n * c, -1)
    losses = []
    for pair_logits, pair_target in zip(flat_logits, flat_target, strict=True):
        errors = 1 - pair_logits * (2 * pair_target - 1)
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(F.relu(errors_sorted), _lovasz_grad(pair_target[order])))
    return torch.stack(losses).reshape(n, c).mean(0)


ALIASES = {"bce_dice": "bce+dice"}


def check_loss(name: str, class_weights: list[float] | None = None, classes: int | None = None) -> list[str]:
    """The registered parts of a loss name such as ``focal+dice``; unknown parts and bad weights are errors."""
    parts = [p.strip() for p in ALIASES.get(name, name).split("+")]
    for part in parts:
        LOSSES.get(part)
    if class_weights is not None:
        if any(w < 0 for w in class_weights) or sum(class_weights) <= 0:
            raise ValueError(f"train.class_weights must be >= 0 with a positive sum, got {class_weights}")
        if classes is not None and len(class_weights) != classes:
            raise ValueError(f"train.class_weights needs one weight per class ({classes}), got {len(class_weights)}: {class_weights}")
    return parts


def get_loss(name: str, class_weights: list[float] | None = None) -> Loss:
    """A scalar loss: the sum of the named parts, each the (weighted) mean of its class losses."""
    parts = [LOSSES.get(p) for p in check_loss(name, class_weights)]

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_class = sum(part(logits.float(), target) for part in parts)
        if class_weights is None:
            return per_class.mean()
        weights = torch.as_tensor(class_weights, dtype=per_class.dtype, device=per_class.device)
        return (per_class * weights).sum() / weights.sum()

    return loss


def list_losses() -> list[str]:
    return LOSSES.names()


# --- image labels (classification) ------------------------------------------------------------------


def smooth_targets(targets: torch.Tensor, smoothing: float, multi_label: bool) -> torch.Tensor:
    """One-hot targets to (1 - s) + s / K on the true class (s / K elsewhere); multi-hot to (1 - s/2) and s/2."""
    if smoothing <= 0:
        return targets
    spread = 0.5 if multi_label else 1.0 / targets.shape[1]
    return targets * (1 - smoothing) + smoothing * spread


def label_loss(multi_label: bool, class_weights: list[float] | None = None) -> Loss:
    """(logits (N, K), soft targets (N, K)) -> mean loss: cross-entropy over the softmax, or per-class BCE.

    Class weights scale each class's term (cross-entropy: the true class's; BCE: the class's mean)."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        weights = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device) if class_weights else None
        if multi_label:
            per_class = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(0)
            return (per_class * weights).sum() / weights.sum() if weights is not None else per_class.mean()
        terms = -target * F.log_softmax(logits, dim=1)
        if weights is not None:
            terms = terms * weights
        return terms.sum(1).mean()

    return loss
