"""Per-class threshold and minimum area on full-size probabilities, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from core.postprocess import apply_postprocessing as apply_steps


def apply_postprocessing(probs, thresholds, fractions):
    """A manifest written before the steps registry: one threshold and one minimum area per class."""
    return apply_steps(probs, {"thresholds": thresholds, "min_area_fractions": fractions})

SIDE = 10  # 100 pixels per class


def blob_probs(classes: int = 1, pixels: int = 4, value: float = 0.8) -> np.ndarray:
    """``pixels`` at ``value`` in the first row of every class, the rest 0.1."""
    probs = np.full((classes, SIDE, SIDE), 0.1, np.float32)
    probs[:, 0, :pixels] = value
    return probs


@pytest.mark.parametrize(
    ("fraction", "kept"),
    [(0.0, True), (0.03, True), (0.04, True), (0.05, False), (2.0, False)],  # the blob covers 0.04 of the image
)
def test_a_blob_under_the_minimum_area_is_emptied(fraction: float, kept: bool) -> None:
    masks = apply_postprocessing(blob_probs(), [0.5], [fraction])
    assert masks.dtype == np.uint8
    assert masks.shape == (1, SIDE, SIDE)
    assert int(masks.sum()) == (4 if kept else 0)
    if kept:
        assert masks[0, 0, :4].tolist() == [1, 1, 1, 1]


def test_threshold_is_inclusive_and_per_class() -> None:
    probs = blob_probs(classes=3, pixels=5, value=0.6)
    masks = apply_postprocessing(probs, [0.6, 0.7, 0.05], [0.0, 0.0, 0.0])
    assert int(masks[0].sum()) == 5  # p >= threshold is positive
    assert int(masks[1].sum()) == 0  # another class, a higher threshold
    assert int(masks[2].sum()) == SIDE * SIDE  # and a lower one takes everything


def test_minimum_area_is_per_class() -> None:
    probs = blob_probs(classes=2, pixels=4)
    masks = apply_postprocessing(probs, [0.5, 0.5], [0.05, 0.04])
    assert int(masks[0].sum()) == 0
    assert int(masks[1].sum()) == 4


def test_fraction_two_always_empties() -> None:
    probs = np.ones((2, SIDE, SIDE), np.float32)
    masks = apply_postprocessing(probs, [0.5, 0.5], [2.0, 1.0])
    assert int(masks[0].sum()) == 0
    assert int(masks[1].sum()) == SIDE * SIDE  # a full mask is exactly the whole area


def test_one_setting_per_class_is_required() -> None:
    probs = blob_probs(classes=2)
    with pytest.raises(ValueError, match="one setting per class: 2 classes, got 1"):
        apply_postprocessing(probs, [0.5], [0.0])
    with pytest.raises(ValueError, match="one setting per class: 2 classes, got 3"):
        apply_postprocessing(probs, [0.5] * 3, [0.0] * 3)
    with pytest.raises(ValueError, match="one setting per class"):
        apply_postprocessing(probs, [0.5, 0.5], [0.0])
