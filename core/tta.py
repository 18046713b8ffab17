"""Test-time augmentation, shared by out-of-fold prediction and the offline predictor.

A policy is a list of views; each view maps a batch (N, C, H, W) to an augmented batch and its
inverse maps the model's output back, so ``inverse(model(forward(x)))`` lines up with ``x``.
Flips are their own inverse.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from core.registry import Registry

View = Callable[[torch.Tensor], torch.Tensor]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def hflip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=[-1])


def vflip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=[-2])


TTA: Registry[list[tuple[View, View]]] = Registry("TTA policy")
TTA.register("none")([(identity, identity)])
TTA.register("hflip")([(identity, identity), (hflip, hflip)])
TTA.register("hvflip")([(identity, identity), (hflip, hflip), (vflip, vflip)])


def views(name: str) -> list[tuple[View, View]]:
    return TTA.get(name)


@torch.no_grad()
def predict_tta(
    model: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, name: str, plain_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean sigmoid probability over the policy's views (3 views = 3 forward passes per image).

    ``plain_logits``: the model's output on the batch as it is, when the caller has it already (validation
    computes it for the loss), so the identity view costs no second forward pass.
    """
    total = None
    policy = views(name)
    for forward, inverse in policy:
        if plain_logits is not None and forward is identity and inverse is identity:
            probs = torch.sigmoid(plain_logits)
        else:
            probs = torch.sigmoid(inverse(model(forward(batch))))
        total = probs if total is None else total + probs
    return total / len(policy)


@torch.no_grad()
def predict_labels_tta(
    model: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    name: str,
    multi_label: bool,
    plain_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image labels (N, K): mean softmax (single-label) or mean sigmoid (multi-label) over the policy's
    views; a flipped image has the same labels, so no view is inverted on the way back."""
    total = None
    policy = views(name)
    for forward, _ in policy:
        logits = plain_logits if plain_logits is not None and forward is identity else model(forward(batch))
        probs = torch.sigmoid(logits.float()) if multi_label else torch.softmax(logits.float(), dim=1)
        total = probs if total is None else total + probs
    return total / len(policy)
