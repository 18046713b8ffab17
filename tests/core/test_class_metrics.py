"""Classification metrics: known answers by hand on tiny arrays, and against sklearn on random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from core.class_metrics import (
    CLASS_METRICS,
    better,
    class_score,
    default_metric,
    get_class_metric,
    is_multi_label,
    oriented,
)

TRUTH = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], np.uint8)
PROBS = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]], np.float16)


def test_registry_lists_the_four_metrics_with_directions():
    assert CLASS_METRICS.names() == ["accuracy", "log_loss", "macro_f1", "roc_auc"]
    assert [get_class_metric(n).higher_is_better for n in ("accuracy", "macro_f1", "log_loss", "roc_auc")] == [True, True, False, True]
    assert better("log_loss", 0.2, 0.3) and not better("accuracy", 0.2, 0.3)
    assert oriented("log_loss", 0.5) == -0.5 and oriented("roc_auc", 0.5) == 0.5
    assert default_metric(False) == "accuracy" and default_metric(True) == "macro_f1"


def test_single_label_known_answers_by_hand():
    # argmax: 0, 0, 2, 1 against 0, 1, 2, 0: rows 0 and 2 right
    assert class_score("accuracy", PROBS, TRUTH) == 0.5
    # per class F1: class 0 tp=1 pred=2 true=2 -> 0.5; class 1 tp=0 -> 0; class 2 -> 1
    assert class_score("macro_f1", PROBS, TRUTH) == pytest.approx((0.5 + 0 + 1) / 3)
    p = PROBS.astype(np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    expected = -np.mean(np.log([p[0, 0], p[1, 1], p[2, 2], p[3, 0]]))
    assert class_score("log_loss", PROBS, TRUTH) == pytest.approx(expected, rel=1e-6)
    # class 0: positives (0.7, 0.3) vs negatives (0.5, 0.1): pairs won 2 + 1 = 3 of 4
    auc = get_class_metric("roc_auc").class_scores(PROBS, TRUTH)
    assert auc[0] == pytest.approx(0.75)
    recall = get_class_metric("accuracy").class_scores(PROBS, TRUTH)
    assert recall.tolist() == [0.5, 0.0, 1.0]


def test_multi_label_known_answers_and_thresholds():
    truth = np.array([[1, 1], [0, 1], [0, 0]], np.uint8)
    probs = np.array([[0.9, 0.4], [0.2, 0.7], [0.6, 0.1]])
    assert is_multi_label(truth)
    # at 0.5: [1,0], [0,1], [1,0] -> only row 1 exactly right
    assert class_score("accuracy", probs, truth) == pytest.approx(1 / 3)
    # thresholds (0.7, 0.3): [1,1], [0,1], [0,0] -> all right
    assert class_score("accuracy", probs, truth, thresholds=[0.7, 0.3]) == 1.0
    assert class_score("macro_f1", probs, truth, thresholds=[0.7, 0.3]) == 1.0
    # at 0.5: class 0 tp=1 pred=2 true=1 -> 2/3; class 1 tp=1 pred=1 true=2 -> 2/3
    assert class_score("macro_f1", probs, truth) == pytest.approx(2 / 3)
    bce = -np.mean(np.log([0.9, 0.4, 0.8, 0.7, 0.4, 0.9]))
    assert class_score("log_loss", probs, truth) == pytest.approx(bce)
    # class 0: one positive (0.9) above both negatives: 1; class 1: positives .4,.7 vs negative .1: 1
    assert class_score("roc_auc", probs, truth) == 1.0


def test_a_class_neither_true_nor_predicted_scores_one_in_f1_and_is_left_out_of_auc():
    truth = np.array([[1, 0], [0, 0]], np.uint8)
    probs = np.array([[0.8, 0.1], [0.3, 0.2]])
    assert get_class_metric("macro_f1").class_scores(probs, truth).tolist() == [1.0, 1.0]
    auc = get_class_metric("roc_auc").class_scores(probs, truth)
    assert auc[0] == 1.0 and math.isnan(auc[1])
    assert class_score("roc_auc", probs, truth) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_against_sklearn_single_label(seed):
    rng = np.random.default_rng(seed)
    n, k = 60, 4
    labels = rng.integers(0, k, n)
    truth = np.eye(k, dtype=np.uint8)[labels]
    logits = rng.normal(size=(n, k)) + 1.5 * truth
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float16).astype(np.float64)
    pred = probs.argmax(axis=1)
    assert class_score("accuracy", probs, truth) == pytest.approx(skm.accuracy_score(labels, pred))
    assert class_score("macro_f1", probs, truth) == pytest.approx(skm.f1_score(labels, pred, average="macro", zero_division=1.0))
    assert class_score("log_loss", probs, truth) == pytest.approx(skm.log_loss(labels, probs / probs.sum(axis=1, keepdims=True), labels=range(k)), rel=1e-6)
    assert class_score("roc_auc", probs, truth) == pytest.approx(skm.roc_auc_score(truth, probs, average="macro"))


def test_against_sklearn_multi_label():
    rng = np.random.default_rng(3)
    n, k = 80, 3
    truth = (rng.random((n, k)) < 0.4).astype(np.uint8)
    probs = np.clip(rng.random((n, k)) * 0.6 + 0.4 * truth, 0, 1).round(2)  # rounded: ties exercise the ranks
    thresholds = np.array([0.3, 0.5, 0.6])
    pred = probs >= thresholds
    assert class_score("accuracy", probs, truth, thresholds, multi_label=True) == pytest.approx(skm.accuracy_score(truth, pred))
    assert class_score("macro_f1", probs, truth, thresholds, multi_label=True) == pytest.approx(skm.f1_score(truth, pred, average="macro", zero_division=1.0))
    bce = np.mean([skm.log_loss(truth[:, c], probs[:, c], labels=[0, 1]) for c in range(k)])
    assert class_score("log_loss", np.clip(probs, 1e-7, 1 - 1e-7), truth, multi_label=True) == pytest.approx(bce, rel=1e-6)
    assert class_score("roc_auc", probs, truth) == pytest.approx(skm.roc_auc_score(truth, probs, average="macro"))


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match="must both be"):
        class_score("accuracy", PROBS[:, :2], TRUTH)
    with pytest.raises(ValueError, match="one per class"):
        class_score("macro_f1", PROBS, TRUTH, thresholds=[0.5, 0.5], multi_label=True)
    with pytest.raises(ValueError, match="Unknown classification metric 'f1'"):
        get_class_metric("f1")
    with pytest.raises(ValueError, match="undefined"):
        class_score("roc_auc", np.array([[0.2, 0.8]]), np.array([[0, 1]], np.uint8))
