"""Mixup, CutMix, label smoothing and the label losses, on tiny tensors with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.tta import predict_labels_tta
from trainables.losses import label_loss, smooth_targets
from trainables.mix import Mixer


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 8, 8).contiguous()
    return images, torch.eye(4)


def test_mixup_blends_images_and_targets_by_the_same_share() -> None:
    images, targets = _batch()
    mixed, soft = Mixer(mixup=0.4, cutmix=0)(images, targets)
    # image i is lam * i + (1 - lam) * j; its target has lam on i and 1 - lam on j
    for i in range(4):
        lam = soft[i, i].item() if soft[i].max() < 1 else 1.0
        j = int(np.argsort(soft[i].numpy())[-2]) if lam < 1 else i
        assert mixed[i, 0, 0, 0].item() == pytest.approx(lam * i + (1 - lam) * j, abs=1e-5)
    assert torch.allclose(soft.sum(dim=1), torch.ones(4))


def test_cutmix_pastes_a_box_whose_area_is_the_targets_share() -> None:
    images, targets = _batch()
    mixed, soft = Mixer(mixup=0, cutmix=1.0, seed=3)(images, targets)
    for i in range(4):
        kept = (mixed[i, 0] == i).float().mean().item()
        if soft[i, i] < 1:  # partner differs: the share of own pixels is the target's weight on i
            assert soft[i, i].item() == pytest.approx(kept, abs=1e-6)


def test_a_reseeded_mixer_draws_the_same_again() -> None:
    images, targets = _batch()
    mixer = Mixer(mixup=0.4, cutmix=1.0)
    mixer.reseed(7)
    first = [mixer(images, targets)[1] for _ in range(3)]
    mixer.reseed(7)
    again = [mixer(images, targets)[1] for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert Mixer(0, 0)(images, targets)[1] is targets  # off: untouched


def test_label_smoothing_and_cross_entropy_match_torch() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = torch.tensor([0, 2])
    soft = smooth_targets(F.one_hot(labels, 3).float(), 0.1, multi_label=False)
    assert soft[0].tolist() == pytest.approx([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    ours = label_loss(False)(logits, soft)
    assert ours.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert label_loss(True)(logits, multi).item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, multi).item(), rel=1e-6)
    weighted = label_loss(True, [1.0, 0.0, 0.0])(logits, multi)
    assert weighted.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits[:, 0], multi[:, 0]).item(), rel=1e-6)


def test_label_tta_averages_views_without_inverting_the_classes() -> None:
    # a "model" that says class 0 when the left half is brighter, class 1 otherwise
    def model(x: torch.Tensor) -> torch.Tensor:
        left, right = x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3)), x[..., x.shape[-1] // 2 :].mean(dim=(1, 2, 3))
        return torch.stack([left - right, right - left], dim=1) * 10

    x = torch.zeros(1, 3, 4, 4)
    x[..., :2] = 1.0
    plain = predict_labels_tta(model, x, "none", multi_label=False)
    flipped = predict_labels_tta(model, x, "hflip", multi_label=False)
    assert plain[0, 0] > 0.99 and flipped[0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)
    assert predict_labels_tta(model, x, "hflip", multi_label=True).shape == (1, 2)
