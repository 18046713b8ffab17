"""Mixup and CutMix for classification batches: images blended (or a box pasted) and targets alike.

``train.mixup`` and ``train.cutmix`` are the alphas of Beta(alpha, alpha), the share of the first image;
0 turns one off, and with both on each batch uses one of the two at random (as timm's Mixup does).
Targets are (N, K) float (one-hot or multi-hot, already smoothed), so the loss sees soft targets. Every
draw comes from a numpy generator the caller reseeds per (trial seed, fold, epoch): a resumed trial mixes
exactly as an unbroken one.
"""

from __future__ import annotations

import numpy as np
import torch


class Mixer:
    def __init__(self, mixup: float, cutmix: float, seed: int = 0) -> None:
        if mixup < 0 or cutmix < 0:
            raise ValueError(f"train.mixup and train.cutmix must be >= 0, got {mixup} and {cutmix}")
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self.rng = np.random.default_rng(seed)

    @property
    def active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active or len(images) < 2:
            return images, targets
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or self.rng.random() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(self.rng.beta(alpha, alpha))
        order = torch.from_numpy(self.rng.permutation(len(images))).to(images.device)
        if use_cutmix:
            images, lam = cutmix_images(images, order, lam, self.rng)
        else:
            images = lam * images + (1 - lam) * images[order]
        return images, lam * targets + (1 - lam) * targets[order]


def cutmix_images(images: torch.Tensor, order: torch.Tensor, lam: float, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """Paste a box of area (1 - lam) of each partner image; returns the images and the kept share it really has."""
    h, w = images.shape[-2:]
    cut = np.sqrt(1 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    out = images.clone()
    out[..., y0:y1, x0:x1] = images[order][..., y0:y1, x0:x1]
    return out, 1 - (y1 - y0) * (x1 - x0) / (h * w)
