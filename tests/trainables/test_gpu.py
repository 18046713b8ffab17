"""The GPU packing check: keep, shrink or refuse a fractional-GPU packing by a trial's measured peak."""

from __future__ import annotations

import pytest
import torch

from trainables.gpu import packing_fraction, peak_memory, probe_configs

GIB = 1024**3


def test_a_packing_that_fits_is_kept() -> None:
    assert packing_fraction(0.25, 10 * GIB, 80 * GIB) == (0.25, "")
    assert packing_fraction(1.0, 50 * GIB, 80 * GIB) == (1.0, "")


def test_a_packing_that_does_not_fit_is_shrunk_with_a_message() -> None:
    fraction, message = packing_fraction(0.25, 30 * GIB, 80 * GIB)  # 0.9 x 80 / 30 = 2.4: two fit
    assert fraction == 0.5
    assert "packs 4 trials per GPU" in message and "packing 2 per GPU" in message and "30.0 GiB" in message


def test_a_trial_larger_than_the_card_is_refused() -> None:
    with pytest.raises(ValueError, match=r"a trial needs 90\.0 GiB of GPU memory .* lower train\.batch_size or train\.scale"):
        packing_fraction(0.5, 90 * GIB, 80 * GIB)


def test_only_keys_that_change_memory_are_probed() -> None:
    configs = probe_configs({"train.batch_size": 8}, {"train.lr": [1e-4, 1e-3], "model.encoder": ["resnet18", "resnet34"]})
    assert configs == [
        {"train.batch_size": 8},
        {"train.batch_size": 8, "model.encoder": "resnet18"},
        {"train.batch_size": 8, "model.encoder": "resnet34"},
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_probe_grows_with_the_batch() -> None:
    device = torch.device("cuda")
    small = peak_memory({"train.batch_size": 2, "train.scale": 0.25}, 4, (256, 1600), device)
    large = peak_memory({"train.batch_size": 8, "train.scale": 0.25}, 4, (256, 1600), device)
    assert 0 < small < large
