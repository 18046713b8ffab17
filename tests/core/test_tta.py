import pytest
import torch

from core.tta import TTA, predict_tta, views

POLICIES = TTA.names()


def _batch() -> torch.Tensor:
    return torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_registry_has_the_flip_policies():
    assert {"none", "hflip", "hvflip"} <= set(POLICIES)
    assert [len(views(name)) for name in ("none", "hflip", "hvflip")] == [1, 2, 3]
    with pytest.raises(ValueError, match=r"Unknown TTA policy 'd4'\. Available options are: hflip, hvflip, none"):
        views("d4")


@pytest.mark.parametrize("name", POLICIES)
def test_each_view_is_undone_by_its_inverse(name):
    x = _batch()
    for forward, inverse in views(name):
        assert torch.equal(inverse(forward(x)), x)


@pytest.mark.parametrize("name", POLICIES)
def test_identity_model_gives_back_the_sigmoid_of_the_input(name):
    x = _batch()
    probs = predict_tta(lambda batch: batch, x, name)
    assert probs.shape == x.shape and probs.dtype == x.dtype
    torch.testing.assert_close(probs, torch.sigmoid(x), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", POLICIES)
def test_a_model_that_sees_position_still_gets_aligned_output(name):
    """The model weighs pixels by position, so each view sees the weights mirrored; the mean is known."""
    x = _batch()
    height, width = x.shape[-2:]
    ramp = torch.arange(1.0, height + 1, dtype=x.dtype)[:, None] * 0.1 + torch.arange(width, dtype=x.dtype)[None, :]
    # model(flip(x)) = flip(x) * ramp, flipped back = x * flip(ramp)
    known = {"none": [ramp], "hflip": [ramp, ramp.flip(-1)], "hvflip": [ramp, ramp.flip(-1), ramp.flip(-2)]}
    if name not in known:
        pytest.fail(f"TTA policy {name!r} is new: add the weights its views see to this test")
    weights = known[name]
    expected = sum(torch.sigmoid(x * w) for w in weights) / len(weights)
    probs = predict_tta(lambda batch: batch * ramp, x, name)
    torch.testing.assert_close(probs, expected, rtol=1e-12, atol=1e-12)
    if name != "none":
        assert not torch.allclose(probs, torch.sigmoid(x * ramp))  # the flipped views did change something


@pytest.mark.parametrize("name", POLICIES)
def test_one_forward_pass_per_view_without_gradients(name):
    calls = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        calls.append(batch.shape)
        return batch * weight

    weight = torch.tensor(2.0, requires_grad=True)
    probs = predict_tta(model, _batch().float(), name)
    assert len(calls) == len(views(name))
    assert not probs.requires_grad


def test_plain_logits_spare_the_identity_views_forward_pass() -> None:
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape)
        return x[:, :1] * 2

    batch = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    full = predict_tta(model, batch, "hvflip")
    assert len(calls) == 3
    plain = model(batch)
    calls.clear()
    reused = predict_tta(model, batch, "hvflip", plain_logits=plain)
    assert len(calls) == 2  # the one pass given, then hflip and vflip: no second plain pass
    torch.testing.assert_close(reused, full)
