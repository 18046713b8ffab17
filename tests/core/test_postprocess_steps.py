"""Post-processing steps: the tuner's claimed score is what the predictor's apply gives, on every metric."""

import numpy as np
import pytest

from core.metrics import list_metrics, score_masks
from core.postprocess import apply_postprocessing, list_steps, tune_arrays


def blobs_with_specks(seed: int, n: int = 12, classes: int = 2, shape=(24, 32)):
    """True blobs on some pairs; predictions are the blobs (blurred edges) plus isolated confident specks."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, classes, *shape), np.uint8)
    probs = np.zeros((n, classes, *shape), np.uint8)
    for i in range(n):
        for c in range(classes):
            if rng.random() < 0.6:
                y, x = rng.integers(2, shape[0] - 10), rng.integers(2, shape[1] - 12)
                truth[i, c, y : y + 8, x : x + 10] = 1
                probs[i, c, y : y + 8, x : x + 10] = rng.integers(150, 256)
                probs[i, c, y - 1 : y + 9, x - 1 : x + 11] = np.maximum(probs[i, c, y - 1 : y + 9, x - 1 : x + 11], 90)
            for _ in range(rng.integers(0, 6)):  # specks: single confident pixels
                probs[i, c, rng.integers(0, shape[0]), rng.integers(0, shape[1])] = rng.integers(200, 256)
    return probs, truth


def predicted(probs_u8, tuned_manifest):
    return np.stack([apply_postprocessing(p / 255.0, tuned_manifest) for p in probs_u8])


@pytest.mark.parametrize("metric", ["dice_pairs", "iou_dataset"])
@pytest.mark.parametrize("seed", [0, 1])
def test_tuned_score_is_what_the_predictor_gets(metric, seed):
    probs, truth = blobs_with_specks(seed)
    tuned = tune_arrays(probs, truth, metric=metric, chunk=5)
    manifest = tuned.to_manifest(probs.shape[2:])
    got = score_masks(predicted(probs, manifest), truth, metric)
    assert got == pytest.approx(tuned.score, abs=1e-9)
    assert sorted(tuned.steps) == list_steps()


def test_components_lift_the_score_where_specks_are_the_problem():
    probs, truth = blobs_with_specks(2, n=16)
    without = tune_arrays(probs, truth, steps=["threshold", "min_area", "gate"])
    with_components = tune_arrays(probs, truth)
    assert with_components.score > without.score + 0.005
    assert any(v["min_component"] > 0 for v in with_components.values)
    assert with_components.stage_scores["min_component"] == with_components.score


@pytest.mark.parametrize("metric", list_metrics())
def test_a_tuned_class_never_scores_below_predicting_nothing(metric):
    rng = np.random.default_rng(3)
    probs = rng.integers(0, 256, (10, 1, 16, 16)).astype(np.uint8)  # noise: nothing to find
    truth = (rng.random((10, 1, 16, 16)) < 0.02).astype(np.uint8) * (np.arange(10) < 3)[:, None, None, None].astype(np.uint8)
    tuned = tune_arrays(probs, truth, metric=metric)
    empty = score_masks(np.zeros_like(truth), truth, metric)
    assert tuned.score >= empty - 1e-12


def test_gate_wipes_pairs_whose_image_probability_is_low():
    # Faint false alarms (max 0.55) on empty pairs, confident true blobs (max 1.0): a gate above 0.55 wins.
    probs = np.zeros((8, 1, 10, 10), np.uint8)
    truth = np.zeros_like(probs)
    probs[:4, 0, 2:5, 2:5] = 255
    truth[:4, 0, 2:5, 2:5] = 1
    probs[4:, 0, 2:8, 2:8] = 140  # 0.55, wider than any area filter could tell apart
    probs[:4, 0, 2:8, 2:8] = np.maximum(probs[:4, 0, 2:8, 2:8], 140)
    tuned = tune_arrays(probs, truth, steps=["threshold", "gate", "min_area"])
    assert tuned.score == pytest.approx(1.0)
    manifest = tuned.to_manifest((10, 10))
    assert score_masks(predicted(probs, manifest), truth) == pytest.approx(1.0)


def test_a_classifier_feeds_the_gate_when_given():
    probs = np.full((4, 1, 6, 6), 200, np.uint8)
    truth = np.zeros_like(probs)
    truth[:2] = 1
    classifier = np.array([[0.9], [0.8], [0.1], [0.2]])
    tuned = tune_arrays(probs, truth, classifier=classifier, gate_source="trial:cls")
    assert tuned.score == pytest.approx(1.0)
    manifest = tuned.to_manifest((6, 6))
    with pytest.raises(ValueError, match="pass image_probs"):
        apply_postprocessing(probs[0] / 255, manifest)
    masks = np.stack([apply_postprocessing(p / 255, manifest, image_probs=k) for p, k in zip(probs, classifier, strict=True)])
    assert score_masks(masks, truth) == pytest.approx(1.0)


def test_format_one_postprocessing_still_applies():
    probs = np.zeros((1, 8, 8))
    probs[0, :2, :2] = 0.9
    old = {"thresholds": [0.5], "min_area_fractions": [0.0]}
    assert apply_postprocessing(probs, old).sum() == 4
    assert apply_postprocessing(probs, {"thresholds": [0.5], "min_area_fractions": [0.1]}).sum() == 0
