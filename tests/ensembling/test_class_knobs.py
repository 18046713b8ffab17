"""Known answers of the class-ensemble core: metrics, temperature, thresholds, greedy picks."""

from __future__ import annotations

import numpy as np
import pytest

from core.class_metrics import get_class_metric
from ensembling.runtime.decide import apply_temperature, decisions
from ensembling.scoring.class_knobs import (
    ClassScorer,
    best_thresholds,
    fit_temperature,
    tune_classes,
)
from ensembling.scoring.greedy import GreedyConfig, greedy_select


def onehot(labels: list[int], k: int) -> np.ndarray:
    out = np.zeros((len(labels), k), np.uint8)
    out[np.arange(len(labels)), labels] = 1
    return out


def test_temperature_recovers_the_known_optimum() -> None:
    # every image [0.2, 0.8], 70 % of them class 1: log loss is least where p(class 1) = 0.7,
    # i.e. softmax(log p / T) with T = log(4) / logit(0.7)
    truth = onehot([1] * 70 + [0] * 30, 2)
    probs = np.tile([0.2, 0.8], (100, 1))
    expected = np.log(4) / np.log(0.7 / 0.3)
    assert fit_temperature(probs, truth, False) == pytest.approx(expected, rel=1e-4)
    assert apply_temperature(probs, expected, False)[0, 1] == pytest.approx(0.7, abs=1e-6)
    # the same case as one sigmoid per class (multi-label, one column)
    assert fit_temperature(probs[:, 1:], truth[:, 1:], True) == pytest.approx(expected, rel=1e-4)
    tuned = tune_classes(probs, truth, "log_loss", False)
    assert tuned.temperature == pytest.approx(expected, rel=1e-4) and tuned.thresholds is None
    assert tuned.score == pytest.approx(-(0.7 * np.log(0.7) + 0.3 * np.log(0.3)), rel=1e-6)


def test_temperature_left_alone_where_it_cannot_change_the_metric() -> None:
    rng = np.random.default_rng(0)
    truth = onehot(rng.integers(0, 3, 50).tolist(), 3)
    probs = rng.dirichlet([1, 1, 1], 50)
    for metric in ("accuracy", "macro_f1"):
        assert tune_classes(probs, truth, metric, False).temperature == 1.0
    multi = (rng.random((50, 3)) > 0.5).astype(np.uint8)
    assert tune_classes(rng.random((50, 3)), multi, "roc_auc", True).temperature == 1.0


def test_thresholds_are_the_known_optima() -> None:
    # class 0 is separable at any cut in (0.3, 0.35): F1 1; class 1's positives sit low: the cut must go under them
    p = np.array([[0.9, 0.1], [0.35, 0.15], [0.3, 0.05], [0.1, 0.02]])
    truth = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], np.uint8)
    cuts = best_thresholds(p, truth, "macro_f1")
    assert 0.3 < cuts[0] <= 0.35 and 0.05 < cuts[1] <= 0.1
    f1 = get_class_metric("macro_f1")
    assert f1.score(p, truth, cuts, True) == 1.0 and f1.score(p, truth, None, True) < 1.0
    # a class with no positive: both metrics want no prediction
    none = np.zeros((4, 1), np.uint8)
    for metric in ("accuracy", "macro_f1"):
        assert decisions(p[:, :1], True, best_thresholds(p[:, :1], none, metric)).sum() == 0
    tuned = tune_classes(p, truth, "macro_f1", True)
    assert tuned.score == 1.0 and tuned.thresholds is not None and tuned.class_scores == [1.0, 1.0]


def test_exact_match_thresholds_by_coordinate_ascent() -> None:
    # Images 1 and 2 have class 1 wrong at its only sensible cut (0.65), so exact match gains nothing from
    # class 0 being right on them. Class 0's own best cut (0.75: 5 of 6) leaves image 3 wrong; the cut 0.4
    # (4 of 6 alone) gets image 3 right instead: exact match 4 of 6 against 3 of 6.
    p = np.array([[0.9, 0.9], [0.6, 0.05], [0.55, 0.08], [0.5, 0.3], [0.3, 0.35], [0.1, 0.4]])
    truth = np.array([[1, 1], [0, 1], [0, 1], [1, 0], [0, 0], [0, 0]], np.uint8)
    accuracy = get_class_metric("accuracy")
    separate = accuracy.score(p, truth, [0.75, 0.65], True)
    cuts = best_thresholds(p, truth, "accuracy")
    assert separate == pytest.approx(3 / 6)
    assert 0.3 < cuts[0] < 0.5 and 0.4 < cuts[1] < 0.9
    assert accuracy.score(p, truth, cuts, True) == pytest.approx(4 / 6)
    assert tune_classes(p, truth, "accuracy", True).score == pytest.approx(4 / 6)


def test_class_weights_give_a_rare_class_its_decisions() -> None:
    # the rare class 2 is never the argmax (0.4 under 0.5): its F1 is 0. Any weight on it in (1.25, 8) makes
    # every decision right.
    truth = onehot([0] * 8 + [1] * 8 + [2] * 4, 3)
    p = np.array([[0.8, 0.1, 0.1]] * 8 + [[0.1, 0.8, 0.1]] * 8 + [[0.5, 0.1, 0.4]] * 4)
    f1 = get_class_metric("macro_f1")
    assert f1.score(p, truth, None, False) < 0.7
    tuned = tune_classes(p, truth, "macro_f1", False)
    assert tuned.score == 1.0 and tuned.class_weights is not None
    assert 1.25 < tuned.class_weights[2] / tuned.class_weights[0] < 8  # class 2 over class 0 on its images, not on theirs
    assert decisions(p, False, None, tuned.class_weights).argmax(axis=1).tolist() == truth.argmax(axis=1).tolist()
    # the greedy steps score without them (quick); accuracy never gets them
    assert tune_classes(p, truth, "macro_f1", False, quick=True).class_weights is None
    assert tune_classes(p, truth, "accuracy", False).class_weights is None


def test_greedy_picks_the_candidate_equal_to_the_truth_first() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 60)
    truth = onehot(labels.tolist(), 3)
    noise = [rng.dirichlet([1, 1, 1], 60) for _ in range(3)]
    perfect = truth * 0.9 + 0.05
    oofs = [noise[0], noise[1], perfect, noise[2]]
    scorer = ClassScorer(oofs, truth, "log_loss", False)
    singles = scorer.scores({}, list(range(4)))
    selection = greedy_select(singles, [1.0] * 4, 10.0, scorer.scores, config=GreedyConfig(max_steps=5))
    assert selection.history[0][0] == {2: 1}
    assert max(selection.counts, key=selection.counts.get) == 2
    # the budget keeps the dear perfect candidate out
    cheap = greedy_select(singles, [1.0, 1.0, 50.0, 1.0], 10.0, scorer.scores, config=GreedyConfig(max_steps=5))
    assert 2 not in cheap.counts


def test_scorer_held_out_uses_the_knobs_it_is_given() -> None:
    truth = onehot([1] * 7 + [0] * 3, 2)
    probs = np.tile([0.2, 0.8], (10, 1))
    scorer = ClassScorer([probs], truth, "log_loss", False)
    tuned = scorer.tune({0: 1})
    assert scorer.held_out({0: 1}, tuned) == pytest.approx(tuned.score)
    # rows 0..4 are all class 1: scored with the temperature tuned on all rows, p(class 1) is 0.7
    assert ClassScorer([probs], truth, "log_loss", False, rows=np.arange(5)).held_out({0: 1}, tuned) == pytest.approx(-np.log(0.7), rel=1e-5)


def test_accuracy_ties_go_to_the_blend_with_the_lower_log_loss() -> None:
    # both candidates are right on every image (accuracy 1.0 alone and together), each sure on the half the
    # other is unsure of: their average has the lower log loss, so greedy selection keeps both
    truth = onehot([0] * 10, 3)
    sure, unsure = [0.9, 0.05, 0.05], [0.4, 0.3, 0.3]
    a = np.array([sure] * 5 + [unsure] * 5)
    b = np.array([unsure] * 5 + [sure] * 5)
    noise = np.tile([0.2, 0.5, 0.3], (10, 1))  # wrong everywhere
    scorer = ClassScorer([a, b, noise], truth, "accuracy", False)
    singles = scorer.scores({}, [0, 1, 2])
    assert singles[0] == pytest.approx(1.0) and singles[0] == singles[1] > singles[2]
    selection = greedy_select(singles, [1.0] * 3, 10.0, scorer.scores, config=GreedyConfig(max_steps=4))
    assert selection.counts == {0: 1, 1: 1}
    assert scorer.tune(selection.counts).score == 1.0  # the reported score is the metric's own
    # log loss itself needs no tie-break: its scores are the tuned metric's, negated, to the last digit
    loss = ClassScorer([a], truth, "log_loss", False)
    assert loss.scores({}, [0])[0] == -loss.tune({0: 1}, quick=True).score
