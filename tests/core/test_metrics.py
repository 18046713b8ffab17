import numpy as np
import pytest

from core.metrics import (
    MIN_AREA_FRACTIONS,
    THRESHOLDS,
    best_postprocessing,
    dice_sums,
    mean_dice,
    pair_counts,
    quantize,
    score_grid,
    threshold_levels,
)
from core.postprocess import tuned_score


def brute_force_grid(probs_u8, truth, thresholds, min_areas):
    """The competition metric written out pair by pair: threshold, drop small masks, Dice (1 if both empty)."""
    n, classes = probs_u8.shape[:2]
    out = np.zeros((classes, len(thresholds), len(min_areas)))
    for c in range(classes):
        for t, threshold in enumerate(thresholds):
            for a, min_area in enumerate(min_areas):
                for i in range(n):
                    pred = probs_u8[i, c] / 255 >= threshold
                    if pred.sum() < min_area:
                        pred[:] = False
                    true = truth[i, c] != 0
                    total = pred.sum() + true.sum()
                    out[c, t, a] += 1.0 if total == 0 else 2 * (pred & true).sum() / total
    return out / n


def random_case(seed, shape=(6, 3, 5, 7)):
    """Sparse probabilities and truth, some pairs empty, values crowded around the threshold levels."""
    rng = np.random.default_rng(seed)
    n, classes = shape[:2]
    density = rng.choice([0.0, 0.05, 0.2, 0.6], size=(n, classes, 1, 1))
    near_levels = np.concatenate([threshold_levels(THRESHOLDS) + d for d in (-1, 0, 1)] + [np.array([0, 255])])
    values = np.where(rng.random(shape) < 0.5, rng.choice(near_levels, shape), rng.integers(0, 256, shape))
    probs = np.where(rng.random(shape) < density, values, 0).astype(np.uint8)
    truth_density = rng.choice([0.0, 0.1, 0.4], size=(n, classes, 1, 1))
    truth = (rng.random(shape) < truth_density).astype(np.uint8)
    # Make the truth overlap the prediction more than chance on some pairs.
    truth[::2] |= (probs[::2] > 128).astype(np.uint8)
    return probs, truth


def test_threshold_levels_match_the_probability_comparison_at_every_level():
    levels = np.arange(256)
    thresholds = np.concatenate([THRESHOLDS, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5, 1 / 255, 0.001]])
    for threshold, level in zip(thresholds, threshold_levels(thresholds), strict=True):
        np.testing.assert_array_equal(levels >= level, levels / 255 >= threshold, err_msg=str(threshold))


@pytest.mark.parametrize("seed", range(4))
def test_score_grid_matches_brute_force(seed):
    probs, truth = random_case(seed)
    thresholds = np.array([0.0, 0.1, 0.2, 0.4, 0.5, 0.55, 0.8, 1.0])
    min_areas = np.array([0, 1, 2, 4, 9, 36])  # pixels of the 5 x 7 arrays
    expected = brute_force_grid(probs, truth, thresholds, min_areas)
    assert expected.max() <= 1 and len(np.unique(expected)) > 10  # the case is not degenerate
    np.testing.assert_allclose(score_grid(probs, truth, thresholds, min_areas), expected, rtol=1e-12)


def test_default_grid_matches_brute_force():
    probs, truth = random_case(10, shape=(4, 2, 20, 30))  # 600 pixels: fraction 0.005 is 3 pixels
    expected = brute_force_grid(probs, truth, THRESHOLDS, MIN_AREA_FRACTIONS * 600)
    grid = score_grid(probs, truth)
    assert grid.shape == (2, len(THRESHOLDS), len(MIN_AREA_FRACTIONS))
    np.testing.assert_allclose(grid, expected, rtol=1e-12)


def test_pair_counts_known_answer():
    probs = np.array([[[[0, 100], [200, 255]]]], np.uint8)  # one image, one class, 2 x 2
    truth = np.array([[[[1, 0], [1, 1]]]], np.uint8)
    counts = pair_counts(probs, truth, np.array([0.0, 0.3, 0.5, 0.9, 1.0]))
    assert counts.pred_area.tolist() == [[[4, 3, 2, 1, 1]]]
    assert counts.inter.tolist() == [[[3, 2, 2, 1, 1]]]
    assert counts.truth_area.tolist() == [[3]]
    sums = dice_sums(counts, np.array([0, 2, 3]))
    # threshold 0.5: 2 predicted, 2 overlap, 3 true -> 4/5; a minimum area of 3 empties it -> 0.
    assert sums[0, 2].tolist() == [0.8, 0.8, 0.0]


def test_perfect_prediction_scores_one():
    _, truth = random_case(1)
    probs = truth * np.uint8(255)
    grid = score_grid(probs, truth, THRESHOLDS, np.array([0]))
    np.testing.assert_array_equal(grid, 1.0)
    assert tuned_score(probs, truth).score == 1.0
    assert mean_dice(truth, truth) == 1.0


def test_empty_prediction_scores_the_fraction_of_empty_truth_pairs():
    _, truth = random_case(2)
    empty_truth = ~truth.any(axis=(2, 3))  # (n, C)
    assert 0 < empty_truth.mean() < 1
    grid = score_grid(np.zeros_like(truth), truth, THRESHOLDS[1:])  # every threshold > 0 predicts nothing
    np.testing.assert_allclose(grid, np.broadcast_to(empty_truth.mean(axis=0)[:, None, None], grid.shape))
    assert grid.mean() == pytest.approx(empty_truth.mean(), abs=1e-12)
    assert mean_dice(np.zeros_like(truth), truth) == pytest.approx(empty_truth.mean(), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_dropping_the_class_scores_the_empty_truth_fraction_and_bounds_the_tuned_score(seed):
    probs, truth = random_case(seed)
    empty_fraction = (~truth.any(axis=(2, 3))).mean(axis=0)  # per class
    grid = score_grid(probs, truth)
    assert MIN_AREA_FRACTIONS[-1] > 1  # larger than the image: every mask is dropped
    np.testing.assert_allclose(grid[:, :, -1], np.broadcast_to(empty_fraction[:, None], grid.shape[:2]))
    post = best_postprocessing(grid)
    assert all(s >= e - 1e-12 for s, e in zip(post.class_scores, empty_fraction, strict=True))


@pytest.mark.parametrize("seed", range(2))
def test_chunk_size_does_not_change_the_score(seed):
    probs, truth = random_case(seed, shape=(7, 2, 6, 6))
    full = score_grid(probs, truth, chunk=64)
    for chunk in (1, 2, 3, 7):
        np.testing.assert_allclose(score_grid(probs, truth, chunk=chunk), full, rtol=1e-12)


def test_best_postprocessing_picks_the_best_cell_per_class():
    thresholds = np.array([0.3, 0.5, 0.7])
    fractions = np.array([0.0, 0.01, 2.0])
    grid = np.full((2, 3, 3), 0.5)
    grid[0, 2, 1] = 0.9
    grid[1, 0, 2] = 0.7
    grid[1, 1, 0] = 0.7  # a tie: the first cell in (threshold, area) order wins
    post = best_postprocessing(grid, thresholds, fractions)
    assert post.thresholds == [0.7, 0.3]
    assert post.min_area_fractions == [0.01, 2.0]
    assert post.class_scores == [0.9, 0.7]
    assert post.score == pytest.approx(0.8)


def test_tuned_score_is_the_best_of_the_grid():
    probs, truth = random_case(5)
    post = tuned_score(probs, truth)
    grid = score_grid(probs, truth)
    np.testing.assert_allclose(post.class_scores, grid.reshape(grid.shape[0], -1).max(axis=1))
    assert post.score == pytest.approx(np.mean(post.class_scores))
    assert set(post.thresholds) <= {float(t) for t in THRESHOLDS}


def test_mean_dice_known_answers():
    pred = np.zeros((1, 4, 2, 2), np.uint8)
    truth = np.zeros((1, 4, 2, 2), np.uint8)
    # class 0: both empty -> 1; class 1: speck on a clean pair -> 0
    pred[0, 1, 0, 0] = 1
    # class 2: 2 predicted, 2 true, 1 shared -> 2 * 1 / 4 = 0.5
    pred[0, 2, 0, :] = 1
    truth[0, 2, :, 0] = 1
    # class 3: missed defect -> 0
    truth[0, 3, 1, 1] = 1
    assert mean_dice(pred, truth) == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    assert mean_dice(pred * 7, truth * 255) == pytest.approx(0.375)  # any nonzero value is foreground


def test_quantize_rounds_to_nearest_level_and_clips():
    probs = np.array([0.0, 1.0, 0.5, 1 / 255, 0.002, 0.998, 0.25, -0.1, 1.2])
    # 0.5 * 255 = 127.5 rounds to even, 128; 0.002 * 255 = 0.51 -> 1; 0.998 * 255 = 254.49 -> 254
    assert quantize(probs).tolist() == [0, 255, 128, 1, 1, 254, 64, 0, 255]
    assert quantize(probs).dtype == np.uint8
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(quantize(levels / 255), levels)  # a stored level reads back exactly


def test_pair_counts_checks_its_inputs():
    truth = np.zeros((1, 1, 2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"probabilities must be uint8 \(round\(p \* 255\)\), got float32"):
        pair_counts(np.zeros((1, 1, 2, 2), np.float32), truth)
    with pytest.raises(
        ValueError, match=r"probabilities \(1, 1, 2, 3\) and truth \(1, 1, 2, 2\) must have the same shape"
    ):
        pair_counts(np.zeros((1, 1, 2, 3), np.uint8), truth)
    # The truth of more images than were predicted: the first chunk alone would look fine.
    with pytest.raises(ValueError, match=r"probabilities \(2, 1, 2, 2\) and truth \(3, 1, 2, 2\) must have"):
        score_grid(np.zeros((2, 1, 2, 2), np.uint8), np.zeros((3, 1, 2, 2), np.uint8), chunk=2)
    with pytest.raises(ValueError, match="at least one image"):
        score_grid(np.zeros((0, 1, 2, 2), np.uint8), np.zeros((0, 1, 2, 2), np.uint8))


def test_metric_registry_known_answers():
    from core.metrics import get_metric, list_metrics, score_masks

    assert list_metrics() == ["dice_image", "dice_pairs", "iou_dataset"]
    pred = np.zeros((2, 2, 4, 4), bool)
    truth = np.zeros_like(pred)
    pred[0, 0, :2, :2] = True  # 4 px, 2 of them true
    truth[0, 0, :1, :2] = True
    truth[1, 0, 3, 3] = True  # missed entirely
    # class 0: IoU over the data set = 2 / (4 + 3 - 2); class 1: empty everywhere, 1 by convention
    assert score_masks(pred, truth, "iou_dataset") == pytest.approx((2 / 5 + 1) / 2)
    # pairs: (0,0) Dice 2*2/(4+2), (1,0) 0, class 1 pairs both empty: 1
    assert score_masks(pred, truth, "dice_pairs") == pytest.approx((2 * 2 / 6 + 0 + 1 + 1) / 4)
    assert score_masks(pred[:, :1], truth[:, :1], "dice_image") == pytest.approx((2 * 2 / 6 + 0) / 2)
    with pytest.raises(ValueError, match="dice_image scores one mask per image, but this data has 2 classes"):
        get_metric("dice_image").check(2)
    with pytest.raises(ValueError, match=r"Unknown metric 'dice'\. Available options are: dice_image, dice_pairs, iou_dataset"):
        get_metric("dice")


def test_tuned_score_by_another_metric_is_the_tuned_threshold_and_area():
    from core.postprocess import tune_arrays

    probs, truth = random_case(5)
    by_iou = tuned_score(probs, truth, "iou_dataset")
    want = tune_arrays(probs, truth, "iou_dataset", steps=["threshold", "min_area"], components_too=False)
    assert by_iou.score == pytest.approx(want.score) and by_iou.thresholds == want.thresholds
    assert tuned_score(probs, truth).score == pytest.approx(tune_arrays(probs, truth, steps=["threshold", "min_area"], components_too=False).score)
