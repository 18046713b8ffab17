"""Every loss: zero-ish at the truth, larger when wrong, differentiable, and weighted per class."""

from __future__ import annotations

import pytest
import torch

from trainables.losses import get_loss, label_loss, list_losses


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(2, 3, 16, 16, generator=generator) > 0.7).float()
    target[:, 2] = 0  # a class with no pixels
    return target, generator


@pytest.mark.parametrize("name", [*list_losses(), "bce_dice", "focal+dice", "lovasz+bce"])
def test_a_loss_is_lower_for_the_truth_than_for_its_opposite(name: str) -> None:
    target, _ = _pair()
    loss = get_loss(name)
    right = loss(10 * (2 * target - 1), target)
    wrong = loss(-10 * (2 * target - 1), target)
    assert right.ndim == 0 and torch.isfinite(right)
    assert right < wrong
    logits = torch.zeros_like(target, requires_grad=True)
    loss(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_losses())
def test_class_weights_weigh_the_class_losses(name: str) -> None:
    target, generator = _pair()
    logits = torch.randn(target.shape, generator=generator)
    per_class = torch.stack([get_loss(name, [1.0 if k == c else 0.0 for k in range(3)])(logits, target) for c in range(3)])
    weighted = get_loss(name, [1.0, 2.0, 1.0])(logits, target)
    assert weighted == pytest.approx(float((per_class * torch.tensor([1.0, 2.0, 1.0])).sum() / 4), rel=1e-5)
    assert get_loss(name)(logits, target) == pytest.approx(float(per_class.mean()), rel=1e-5)


def test_bad_names_and_weights_are_errors() -> None:
    with pytest.raises(ValueError, match=r"Unknown loss 'dise'. Available options are: bce, dice, focal, lovasz, tversky"):
        get_loss("bce+dise")
    with pytest.raises(ValueError, match=r"train\.class_weights must be >= 0 with a positive sum"):
        get_loss("bce", [0.0, -1.0])


# --- soft targets (train.extra: a teacher's probabilities, soft pseudo-labels) ----------------------


@pytest.mark.parametrize("name", ["bce", "dice", "focal", "tversky", "lovasz"])
def test_every_mask_loss_takes_soft_targets(name: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.rand(2, 3, 8, 8)
    loss = get_loss(name)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_bce_and_label_cross_entropy_are_least_where_the_prediction_is_the_soft_target() -> None:
    target = torch.full((1, 1, 2, 2), 0.3)
    logit = torch.logit(torch.tensor(0.3))
    at = get_loss("bce")(torch.full((1, 1, 2, 2), float(logit)), target)
    assert all(get_loss("bce")(torch.full((1, 1, 2, 2), float(logit) + d), target) > at for d in (-0.5, 0.5))
    soft = torch.tensor([[0.6, 0.3, 0.1]])
    ce = label_loss(multi_label=False)
    best = ce(soft.log(), soft)
    assert ce(torch.tensor([[2.0, 0.0, 0.0]]), soft) > best and ce(torch.zeros(1, 3), soft) > best
