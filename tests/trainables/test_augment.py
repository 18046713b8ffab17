"""Every augmentation preset moves image and mask together, and reruns the same from the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.augment import get_augment, list_augments


def _image_and_mask() -> tuple[np.ndarray, np.ndarray]:
    """A mask that is exactly where the image is bright, so any misalignment shows."""
    rng = np.random.default_rng(0)
    mask = np.zeros((96, 96, 2), np.uint8)
    mask[20:50, 30:70, 0] = 1
    mask[60:80, 10:30, 1] = 1
    image = (rng.integers(0, 40, (96, 96, 3)) + 200 * mask.any(axis=2, keepdims=True)).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("name", list_augments())
def test_every_preset_keeps_image_and_mask_aligned(name: str) -> None:
    image, mask = _image_and_mask()
    augment = get_augment(name, seed=1)
    for _ in range(12):
        out = augment(image=image, mask=mask)
        moved_image, moved_mask = out["image"], out["mask"]
        assert moved_image.shape == image.shape and moved_mask.shape == mask.shape
        bright = moved_image.astype(np.float32).mean(axis=2) > 140
        covered = moved_mask.any(axis=2)
        # Where the mask is, the image is bright (holes cut out of both, blur and noise at the edges aside).
        agree = (bright == covered).mean()
        assert agree > 0.9, f"{name}: image and mask agree on only {agree:.2%} of pixels"
        assert set(np.unique(moved_mask)) <= {0, 1}


def test_a_seed_fixes_the_draws() -> None:
    image, mask = _image_and_mask()
    a = [get_augment("heavy", seed=5)(image=image, mask=mask)["image"] for _ in range(2)]
    b = get_augment("heavy", seed=5)(image=image, mask=mask)["image"]
    assert np.array_equal(a[0], b)


def test_a_free_composition_is_built_from_names() -> None:
    image, mask = _image_and_mask()
    augment = get_augment("none", seed=0, ops=[{"HorizontalFlip": {"p": 1.0}}, {"VerticalFlip": {"p": 1.0}}])
    out = augment(image=image, mask=mask)
    assert np.array_equal(out["mask"], mask[::-1, ::-1])
    with pytest.raises(ValueError, match=r"augment_ops\[0\] HorizontalFlip: bad arguments \{'q': 1\}"):
        get_augment("none", ops=[{"HorizontalFlip": {"q": 1}}])
