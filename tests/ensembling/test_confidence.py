"""The pseudo-labels' confidence and the OOF-tuned threshold (ensembling/scoring/confidence.py): known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ensembling.scoring.confidence import (
    label_confidence,
    label_quality,
    mask_confidence,
    precision_curve,
    tune_threshold,
)


def test_the_loosest_threshold_reaching_the_precision_is_taken() -> None:
    conf = np.array([1.0, 1.0, 0.9, 0.8, 0.5, 0.4, 0.3])
    quality = np.array([1.0, 1.0, 1.0, 0.9, 0.5, 0.0, 1.0])
    t = tune_threshold(conf, quality, 0.9, min_kept=2)
    assert (t.value, t.kept, t.total) == (0.8, 4, 7) and t.precision == pytest.approx(0.975)
    assert tune_threshold(conf, quality, 0.7, min_kept=2).value == 0.3  # everything: mean 0.771


def test_ties_are_kept_together_and_too_few_images_are_not_a_measure() -> None:
    conf = np.array([1.0, 1.0, 1.0, 0.5, 0.5])
    quality = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    t = tune_threshold(conf, quality, 0.6, min_kept=1)
    assert t.value == 0.5 and t.kept == 5  # 1.0 alone keeps three images (mean 0.667), never two of them
    with pytest.raises(ValueError, match=r"precision=0.9: no confidence threshold reaches it on the OOF \(best 0.800, keeping 5 of 5"):
        tune_threshold(conf, quality, 0.9, min_kept=4)


def test_mask_confidence() -> None:
    probs = np.zeros((3, 1, 4, 4), np.float32)
    probs[1, 0, :2] = 0.95  # 8 confident pixels, no unsure ones
    probs[2, 0, :2] = 0.95
    probs[2, 0, 2:] = 0.5  # and 8 unsure ones
    assert mask_confidence(probs).tolist() == [1.0, 1.0, 0.5]
    assert mask_confidence((probs * 255).astype(np.uint8)).tolist() == [1.0, 1.0, 0.5]


def test_label_confidence_and_quality() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    assert label_confidence(probs, multi_label=False) == pytest.approx([0.7, 0.4])
    assert label_confidence(np.array([[0.9, 0.3], [0.6, 0.01]]), multi_label=True) == pytest.approx([0.7, 0.6])
    assert label_quality(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [1, 0]])).tolist() == [1.0, 0.0]


def test_the_precision_curve_reports_what_each_share_kept_would_measure() -> None:
    conf = np.array([1.0, 1.0, 0.9, 0.8, 0.5, 0.4, 0.3])
    quality = np.array([1.0, 1.0, 1.0, 0.9, 0.5, 0.0, 1.0])
    curve = precision_curve(conf, quality, points=4)
    assert [c["kept"] for c in curve] == [7, 6, 4, 2] and [c["threshold"] for c in curve] == [0.3, 0.4, 0.8, 1.0]
    assert curve[2]["precision"] == pytest.approx(0.975)
