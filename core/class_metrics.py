"""Classification metrics as a registry: accuracy, macro F1, log loss, ROC AUC (one-vs-rest, macro).

Every metric takes ``probs`` (N, K) float (softmax rows for single-label, independent sigmoids for
multi-label), ``truth`` (N, K) uint8 (one-hot or multi-hot, the study's ``truth.npy``) and, where it
decides labels, optional per-class ``thresholds`` (multi-label only; default 0.5), and returns a float.
``multi_label`` says which of the two the data is; None infers it (single-label when every truth row
has exactly one 1), but callers that know (a study records it) should say.

- ``accuracy``: single-label: the share of images whose highest probability is the true class;
  multi-label: exact match (every class of the image right at the thresholds), as sklearn's.
- ``macro_f1``: F1 per class, averaged; single-label predicts the argmax, multi-label the classes over
  their thresholds. A class neither true nor predicted anywhere scores 1 (as a Dice of two empty sets).
- ``log_loss``: single-label: mean -log p(true class); multi-label: mean binary cross-entropy over
  every image-class pair. Probabilities are clipped to [1e-7, 1 - 1e-7] (float16 OOF holds no finer).
  **Lower is better**: ``higher_is_better`` is False, and :func:`better` compares the right way.
- ``roc_auc``: per class, the AUC of its probability against its presence (ties count half), averaged
  over the classes that have both positive and negative images (an AUC is undefined otherwise).

Defaults (``default_metric``): ``accuracy`` for single-label, ``macro_f1`` for multi-label (exact match
is harsh and rare in contests; per-class F1 is what the gate's thresholds are tuned for).

A metric also gives ``class_scores`` (K,) for reports: recall per class (single-label accuracy) or
per-class binary accuracy (multi-label), per-class F1, per-class loss, per-class AUC (NaN where
undefined). Pure numpy: no torch, no sklearn at import.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.registry import Registry

EPS = 1e-7  # float16 has ~1e-3 relative resolution near 1; 1e-7 keeps log(p) finite for exact 0/1
DEFAULT_THRESHOLD = 0.5


def _arrays(probs: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, np.float64)
    truth = np.asarray(truth)
    if probs.ndim != 2 or probs.shape != truth.shape:
        raise ValueError(f"probabilities {probs.shape} and truth {truth.shape} must both be (images, classes)")
    if len(probs) == 0:
        raise ValueError("a classification metric needs at least one image, got none")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities must be finite numbers (found NaN or inf)")
    return probs, truth.astype(bool)


def is_multi_label(truth: np.ndarray, multi_label: bool | None = None) -> bool:
    """The given flag, or inferred: single-label exactly when every row has one true class."""
    if multi_label is not None:
        return bool(multi_label)
    return not bool((np.asarray(truth).astype(bool).sum(axis=1) == 1).all())


def _thresholds(thresholds: float | np.ndarray | list | None, classes: int) -> np.ndarray:
    if thresholds is None:
        return np.full(classes, DEFAULT_THRESHOLD)
    values = np.asarray(thresholds, np.float64)
    if values.ndim == 0:
        return np.full(classes, float(values))
    if values.shape != (classes,):
        raise ValueError(f"thresholds must be one number or one per class ({classes}), got {len(values)}")
    return values


def decide(probs: np.ndarray, truth_or_classes: np.ndarray | int, multi_label: bool, thresholds: float | np.ndarray | None = None) -> np.ndarray:
    """Predicted labels (N, K) bool: the argmax one-hot (single-label), or probs >= per-class thresholds."""
    probs = np.asarray(probs, np.float64)
    if not multi_label:
        out = np.zeros(probs.shape, bool)
        out[np.arange(len(probs)), probs.argmax(axis=1)] = True
        return out
    return probs >= _thresholds(thresholds, probs.shape[1])[None, :]


def f1_per_class(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """F1 of each class's predicted and true presence (K,); 1 where the class is neither true nor predicted."""
    tp = (pred & truth).sum(axis=0).astype(np.float64)
    total = pred.sum(axis=0) + truth.sum(axis=0)
    return np.where(total == 0, 1.0, 2 * tp / np.maximum(total, 1))


def auc_per_class(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """ROC AUC of each class, one-vs-rest, from average ranks (Mann-Whitney U); NaN without both kinds."""
    out = np.full(probs.shape[1], np.nan)
    for k in range(probs.shape[1]):
        positive = truth[:, k]
        n_pos = int(positive.sum())
        n_neg = len(positive) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = _average_ranks(probs[:, k])
        out[k] = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


# --- the registry -------------------------------------------------------------------------------


class ClassMetric:
    """A classification metric: ``score`` and ``class_scores`` of (probs, truth[, thresholds])."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    uses_thresholds: ClassVar[bool] = False  # multi-label decisions at per-class thresholds change it

    def score(self, probs: np.ndarray, truth: np.ndarray, thresholds: float | np.ndarray | None = None, multi_label: bool | None = None) -> float:
        raise NotImplementedError

    def class_scores(self, probs: np.ndarray, truth: np.ndarray, thresholds: float | np.ndarray | None = None, multi_label: bool | None = None) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, probs: np.ndarray, truth: np.ndarray, thresholds: float | np.ndarray | None = None, multi_label: bool | None = None) -> float:
        return self.score(probs, truth, thresholds, multi_label)


CLASS_METRICS: Registry[type[ClassMetric]] = Registry("classification metric")


@CLASS_METRICS.register("accuracy")
class Accuracy(ClassMetric):
    name = "accuracy"
    description = "share of images labelled right: argmax (single-label) or every class at its threshold (multi-label)"
    uses_thresholds = True

    def score(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        probs, truth = _arrays(probs, truth)
        pred = decide(probs, truth, is_multi_label(truth, multi_label), thresholds)
        return float((pred == truth).all(axis=1).mean())

    def class_scores(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        probs, truth = _arrays(probs, truth)
        multi = is_multi_label(truth, multi_label)
        pred = decide(probs, truth, multi, thresholds)
        if multi:
            return (pred == truth).mean(axis=0)
        hits = (pred & truth).sum(axis=0).astype(np.float64)
        counts = truth.sum(axis=0)
        return np.where(counts == 0, np.nan, hits / np.maximum(counts, 1))  # recall per class


@CLASS_METRICS.register("macro_f1")
class MacroF1(ClassMetric):
    name = "macro_f1"
    description = "F1 per class, averaged (argmax for single-label, per-class thresholds for multi-label)"
    uses_thresholds = True

    def class_scores(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        probs, truth = _arrays(probs, truth)
        return f1_per_class(decide(probs, truth, is_multi_label(truth, multi_label), thresholds), truth)

    def score(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        return float(self.class_scores(probs, truth, thresholds, multi_label).mean())


@CLASS_METRICS.register("log_loss")
class LogLoss(ClassMetric):
    name = "log_loss"
    description = "mean cross-entropy (single-label) or binary cross-entropy per image-class pair (multi-label); lower is better"
    higher_is_better = False

    @staticmethod
    def _losses(probs: np.ndarray, truth: np.ndarray, multi: bool) -> np.ndarray:
        p = np.clip(probs, EPS, 1 - EPS)
        if multi:
            return -(truth * np.log(p) + (~truth) * np.log(1 - p))  # (N, K)
        p = p / p.sum(axis=1, keepdims=True)  # as sklearn: rows renormalised after clipping
        return -(truth * np.log(p))  # (N, K), one nonzero per row

    def score(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        probs, truth = _arrays(probs, truth)
        multi = is_multi_label(truth, multi_label)
        losses = self._losses(probs, truth, multi)
        return float(losses.mean() if multi else losses.sum(axis=1).mean())

    def class_scores(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        probs, truth = _arrays(probs, truth)
        multi = is_multi_label(truth, multi_label)
        losses = self._losses(probs, truth, multi)
        if multi:
            return losses.mean(axis=0)
        counts = truth.sum(axis=0)
        return np.where(counts == 0, np.nan, losses.sum(axis=0) / np.maximum(counts, 1))  # per true class


@CLASS_METRICS.register("roc_auc")
class RocAuc(ClassMetric):
    name = "roc_auc"
    description = "ROC AUC per class, one-vs-rest, averaged over classes with positive and negative images"

    def class_scores(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        probs, truth = _arrays(probs, truth)
        return auc_per_class(probs, truth)

    def score(self, probs, truth, thresholds=None, multi_label=None):  # type: ignore[no-untyped-def]
        per_class = self.class_scores(probs, truth)
        if np.isnan(per_class).all():
            raise ValueError("roc_auc is undefined: no class has both positive and negative images")
        return float(np.nanmean(per_class))


SINGLE_LABEL_DEFAULT = "accuracy"
MULTI_LABEL_DEFAULT = "macro_f1"


def list_class_metrics() -> list[str]:
    return CLASS_METRICS.names()


def is_class_metric(name: str | None) -> bool:
    return name in CLASS_METRICS.names()


def get_class_metric(name: str | ClassMetric | None = None, multi_label: bool = False) -> ClassMetric:
    """A registered classification metric by name (None: the default for single- or multi-label)."""
    if isinstance(name, ClassMetric):
        return name
    return CLASS_METRICS.get(name or default_metric(multi_label))()


def default_metric(multi_label: bool) -> str:
    return MULTI_LABEL_DEFAULT if multi_label else SINGLE_LABEL_DEFAULT


def better(name: str | ClassMetric, a: float, b: float) -> bool:
    """True when score ``a`` is strictly better than ``b`` under the metric's direction."""
    metric = get_class_metric(name)
    return a > b if metric.higher_is_better else a < b


def oriented(name: str | ClassMetric, value: float) -> float:
    """The score turned higher-is-better (log loss negated), for maximisers such as greedy selection."""
    return value if get_class_metric(name).higher_is_better else -value


def class_score(name: str | None, probs: np.ndarray, truth: np.ndarray, thresholds: float | np.ndarray | None = None, multi_label: bool | None = None) -> float:
    """One call: the named metric (None: the default for the data) of probabilities against truth."""
    multi = is_multi_label(truth, multi_label)
    return get_class_metric(name, multi).score(probs, truth, thresholds, multi)


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def tune_thresholds(
    name: str | ClassMetric, probs: np.ndarray, truth: np.ndarray, multi_label: bool = True, grid: np.ndarray = THRESHOLD_GRID, passes: int = 2
) -> tuple[np.ndarray | None, float]:
    """Per-class decision thresholds that maximise a multi-label metric on (probs, truth), and the score.

    Coordinate ascent from 0.5, one class at a time over ``grid`` (exact in one pass for macro F1, whose
    classes are independent). A metric that decides no labels (log loss, AUC), or single-label data
    (argmax), has no thresholds: (None, score)."""
    metric = get_class_metric(name)
    probs, truth_bool = _arrays(probs, truth)
    if not (metric.uses_thresholds and multi_label):
        return None, metric.score(probs, truth_bool, multi_label=multi_label)
    classes = probs.shape[1]
    thresholds = np.full(classes, DEFAULT_THRESHOLD)
    best = metric.score(probs, truth_bool, thresholds, multi_label=True)
    for _ in range(passes):
        changed = False
        for k in range(classes):
            for value in grid:
                trial = thresholds.copy()
                trial[k] = value
                score = metric.score(probs, truth_bool, trial, multi_label=True)
                if score > best + 1e-12:
                    best, thresholds, changed = score, trial, True
        if not changed:
            break
    return thresholds, float(best)
