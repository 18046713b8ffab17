"""Class ensembles on OOF: probability blends, their metrics, and the two knobs tuned on them.

A classification study's truth is (N, K) uint8 (one-hot single-label, multi-hot multi-label); each
candidate's OOF is (N, K) probabilities (softmax rows, or one sigmoid per class). A blend is the weighted
mean of members' probabilities. Two knobs are tuned on a blend, each only where it can change the metric:

- **temperature** T (1: no calibration). Single-label: ``p ** (1/T)`` renormalised (softmax of log p / T);
  multi-label: ``sigmoid(logit(p) / T)``. It changes log loss always; ROC AUC only single-label (a row's
  renormalisation reorders images within a class); never accuracy or macro F1 (argmax is unchanged, and
  a per-class threshold absorbs a monotone map). Log loss is convex in 1/T: minimised by golden section.
- **per-class thresholds** (multi-label, accuracy and macro F1): class k is predicted when p_k >= t_k.
  Macro F1 is a sum over classes of a per-class term, so each t_k is the exact optimum over every cut
  between consecutive distinct OOF values. Single-label decisions are the argmax; for macro F1, of
  ``p_k w_k`` with per-class weights (coordinate ascent; a rare class gets its share of decisions).
  Log loss and ROC AUC read probabilities, so they have no thresholds.

Scores come from the metrics registry (``core.class_metrics``). Multi-label accuracy is exact match,
not a sum over classes: its thresholds are found by coordinate ascent, each class's cut the exact optimum
on the images whose other classes are right. Pure numpy: no Ray, MLflow or torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.class_metrics import (
    ClassMetric,
    get_class_metric,
    is_class_metric,
    list_class_metrics,
    oriented,
)
from ensembling.runtime.decide import EPS, apply_temperature, weighted


def temperature_matters(metric: str, multi_label: bool) -> bool:
    """Log loss always; ROC AUC single-label only (softmax rows reorder images within a class)."""
    return metric == "log_loss" or (metric == "roc_auc" and not multi_label)


def thresholds_matter(metric: str, multi_label: bool) -> bool:
    """Multi-label decision metrics: accuracy (exact match) and macro F1."""
    return multi_label and get_class_metric(metric).uses_thresholds


def _metric(metric: str, multi_label: bool) -> ClassMetric:
    if not is_class_metric(metric):
        raise ValueError(f"metric must be one of {', '.join(list_class_metrics())} for a classification study, got {metric!r}")
    return get_class_metric(metric, multi_label)


# --- the knobs ----------------------------------------------------------------------------------------


def fit_temperature(probs: np.ndarray, truth: np.ndarray, multi_label: bool, low: float = 0.05, high: float = 20.0, steps: int = 40) -> float:
    """The temperature minimising log loss: golden section on beta = 1/T in [1/high, 1/low] (convex in beta).

    The logs are taken once: single-label loss(beta) = mean(logsumexp(beta log p) - beta log p_true),
    multi-label mean(log(1 + exp(-+ beta logit p))) (the registry's log loss scores the result)."""
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    t = np.asarray(truth) != 0
    if multi_label:
        signed = np.where(t, -1.0, 1.0) * (np.log(p) - np.log1p(-p))

        def loss(beta: float) -> float:
            return float(np.logaddexp(0, beta * signed).mean())
    else:
        z = np.log(p)
        true = (z * t).sum(axis=1)  # log p of the true class (one-hot rows)

        def loss(beta: float) -> float:
            scaled = beta * z
            top = scaled.max(axis=1)
            return float((top + np.log(np.exp(scaled - top[:, None]).sum(axis=1)) - beta * true).mean())

    a, b = 1 / high, 1 / low
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return float(1 / ((a + b) / 2))


def _cuts(probs: np.ndarray, truth: np.ndarray, rows: np.ndarray, metric: str) -> float:
    """One class's best cut over ``rows``: F1 or binary accuracy of ``p >= cut`` at every cut between distinct values.

    Cuts sit halfway between consecutive distinct values (and above the highest, at half the lowest); ties
    go to the cut nearest 0.5, so a class without information keeps the natural threshold.
    """
    order = np.argsort(-probs[rows], kind="stable")
    values, labels = probs[rows][order], truth[rows][order]
    if len(values) == 0:
        return 0.5
    distinct = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]  # last index of each distinct value
    tp = np.r_[0, np.cumsum(labels)[distinct]]  # predicted positive: none, then each group more
    predicted = np.r_[0, distinct + 1]
    positives = int(labels.sum())
    if metric == "accuracy":
        score = (tp + (len(values) - positives - (predicted - tp))).astype(np.float64)
    else:  # F1; 1 where the class is neither true nor predicted, as the registry's
        denominator = predicted + positives
        score = np.where(denominator == 0, 1.0, 2 * tp / np.maximum(denominator, 1))
    uniques = values[distinct]  # descending
    above = (uniques[0] + 1) / 2 if uniques[0] < 1 else 1 + 1e-9  # predicts none
    cuts = np.r_[above, (uniques[:-1] + uniques[1:]) / 2, uniques[-1] / 2]  # ..., predicts all
    best = np.flatnonzero(score >= score.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


def best_thresholds(probs: np.ndarray, truth: np.ndarray, metric: str, rounds: int = 4) -> np.ndarray:
    """Per-class thresholds maximising multi-label ``metric``: macro F1 (exact, class by class) or exact-match
    accuracy (coordinate ascent from each class's best binary accuracy: each step is the exact optimum of one
    class's cut on the images whose other classes are right, so the score never falls)."""
    p, t = np.asarray(probs, np.float64), np.asarray(truth) != 0
    every = np.arange(len(p))
    out = np.array([_cuts(p[:, k], t[:, k], every, metric) for k in range(p.shape[1])])
    if metric != "accuracy":
        return out
    for _ in range(rounds):
        before = out.copy()
        for k in range(p.shape[1]):
            right = (p >= out - 1e-12) == t
            others = np.delete(right, k, axis=1).all(axis=1)
            out[k] = _cuts(p[:, k], t[:, k], np.flatnonzero(others), metric)
        if np.array_equal(before, out):
            break
    return out


WEIGHT_GRID = 2.0 ** np.linspace(-2, 2, 17)  # a class's weight on the argmax: 1/4 .. 4


def best_class_weights(probs: np.ndarray, truth: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Single-label macro F1: per-class weights on the argmax (argmax of p_k w_k), by coordinate ascent over
    ``WEIGHT_GRID`` from all ones; a change is kept only when it raises the score (ties keep the weight nearest 1)."""
    p = np.asarray(probs, np.float64)
    labels = np.asarray(truth).argmax(axis=1)
    k = p.shape[1]

    def f1(weights: np.ndarray) -> float:
        pred = (p * weights).argmax(axis=1)
        confusion = np.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
        tp = np.diag(confusion).astype(np.float64)
        total = confusion.sum(axis=0) + confusion.sum(axis=1)
        return float(np.where(total == 0, 1.0, 2 * tp / np.maximum(total, 1)).mean())

    weights = np.ones(k)
    best = f1(weights)
    for _ in range(rounds):
        changed = False
        for c in range(k):
            for value in sorted(WEIGHT_GRID, key=lambda v: abs(np.log(v))):
                trial = weights.copy()
                trial[c] = value
                score = f1(trial)
                if score > best + 1e-12:
                    best, weights, changed = score, trial, True
        if not changed:
            break
    return weights


@dataclass
class ClassTuned:
    """The knobs of one blend and what they score on the rows they were tuned on."""

    metric: str
    multi_label: bool
    temperature: float
    thresholds: list[float] | None  # multi-label with a decision metric only
    score: float  # the metric's own value (a loss stays a loss)
    class_scores: list[float] = field(default_factory=list)
    class_weights: list[float] | None = None  # single-label macro F1: weights on the argmax

    def to_manifest(self) -> dict[str, Any]:
        return {"metric": self.metric, "multi_label": self.multi_label, "temperature": self.temperature, "thresholds": self.thresholds,
                "class_weights": self.class_weights}


def evaluate(probs: np.ndarray, truth: np.ndarray, metric: str, multi_label: bool, temperature: float, thresholds: Any,
             class_weights: Any = None) -> tuple[float, list[float]]:
    """The registry's metric of a blend with the knobs applied, and its per-class values."""
    scorer = _metric(metric, multi_label)
    p = apply_temperature(probs, temperature, multi_label)
    if class_weights is not None and not multi_label:
        p = weighted(p, class_weights)  # only its argmax is read (macro F1)
    cut = None if thresholds is None else np.asarray(thresholds, np.float64) - 1e-12
    value = scorer.score(p, truth, cut, multi_label)
    return value, [float(v) for v in scorer.class_scores(p, truth, cut, multi_label)]


TEMPERATURE_GRID = (0.5, 0.7, 1.0, 1.4, 2.0)  # tried for single-label ROC AUC (rank-based: no gradient to follow)


def tune_classes(probs: np.ndarray, truth: np.ndarray, metric: str, multi_label: bool, quick: bool = False) -> ClassTuned:
    """Temperature (or none) and per-class thresholds, each tuned only where it can change ``metric``.

    ``quick``: leave out single-label ROC AUC's temperature grid (five rankings of every class; it moves the
    AUC little) and single-label macro F1's class weights (hundreds of argmaxes): the greedy steps score
    blends so, and the chosen blend is then tuned in full."""
    _metric(metric, multi_label)
    temperature = 1.0
    if metric == "log_loss":
        fitted = fit_temperature(probs, truth, multi_label)
        if evaluate(probs, truth, metric, multi_label, fitted, None)[0] < evaluate(probs, truth, metric, multi_label, 1.0, None)[0]:
            temperature = fitted
    elif temperature_matters(metric, multi_label) and not quick:
        values = {t: oriented(metric, evaluate(probs, truth, metric, multi_label, t, None)[0]) for t in TEMPERATURE_GRID}
        temperature = max(values, key=lambda t: (values[t], t == 1.0))
    thresholds = None
    if thresholds_matter(metric, multi_label):
        thresholds = [float(v) for v in best_thresholds(apply_temperature(probs, temperature, multi_label), truth, metric)]
    class_weights = None
    if metric == "macro_f1" and not multi_label and not quick:
        found = best_class_weights(probs, truth)
        if not np.allclose(found, 1):
            class_weights = [float(v) for v in found]
    value, per_class = evaluate(probs, truth, metric, multi_label, temperature, thresholds, class_weights)
    return ClassTuned(metric, multi_label, float(temperature), thresholds, value, per_class, class_weights)


# --- blends for the greedy selector -------------------------------------------------------------------


def blend(oofs: Sequence[np.ndarray], counts: Mapping[int, int]) -> np.ndarray:
    """Weighted mean (float64) of members' probabilities; weights are pick counts."""
    if not counts:
        raise ValueError("a blend needs at least one member, got empty counts")
    total = sum(np.asarray(oofs[i], np.float64) * c for i, c in counts.items())
    return total / sum(counts.values())  # type: ignore[operator]


TIE_BREAK = 1e-7  # the weight of log loss beside a decision metric in the greedy objective (see ClassScorer.scores)


def smooth_loss(probs: np.ndarray, truth: np.ndarray, multi_label: bool) -> float:
    """Mean log loss at temperature 1 (clipped as the metric clips), the tie-break of decision metrics."""
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    t = np.asarray(truth).astype(bool)
    if multi_label:
        return float(-np.where(t, np.log(p), np.log1p(-p)).mean())
    return float(-np.log(p[t]).mean())


class ClassScorer:
    """The greedy objective for classes: the tuned metric, oriented higher-better, of blends of OOF."""

    def __init__(self, oofs: Sequence[np.ndarray], truth: np.ndarray, metric: str, multi_label: bool, rows: np.ndarray | None = None) -> None:
        for i, oof in enumerate(oofs):
            if oof.shape != truth.shape:
                raise ValueError(f"OOF {i} has shape {oof.shape} but the truth has {truth.shape}; was it written for another split?")
        _metric(metric, multi_label)
        self.rows = np.arange(len(truth)) if rows is None else np.sort(np.asarray(rows))
        # read once: (N, K) arrays are small next to masks
        self.oofs = [np.asarray(o, np.float64)[self.rows] for o in oofs]
        self.truth = np.asarray(truth)[self.rows]
        self.metric, self.multi_label = metric, multi_label

    def tune(self, counts: Mapping[int, int], quick: bool = False) -> ClassTuned:
        return tune_classes(blend(self.oofs, counts), self.truth, self.metric, self.multi_label, quick)

    def scores(self, counts: Mapping[int, int], candidates: Sequence[int | None]) -> list[float]:
        """Each blend's tuned metric, higher-better. A metric that decides labels (accuracy, macro F1) moves
        in steps (1/N for accuracy), so blends often tie; among them the one with the lower log loss scores
        higher by at most ``TIE_BREAK`` x its log loss (below any step of accuracy on fewer than
        ~600,000 images): a second model that decides alike but is surer where it is right joins the blend."""
        out = []
        decides = get_class_metric(self.metric).uses_thresholds
        for candidate in candidates:
            trial = dict(counts)
            if candidate is not None:
                trial[candidate] = trial.get(candidate, 0) + 1
            probs = blend(self.oofs, trial)
            score = oriented(self.metric, tune_classes(probs, self.truth, self.metric, self.multi_label, quick=True).score)
            out.append(score - TIE_BREAK * smooth_loss(probs, self.truth, self.multi_label) if decides else score)
        return out

    def held_out(self, counts: Mapping[int, int], tuned: ClassTuned) -> float:
        """The blend on this scorer's rows with knobs tuned elsewhere, as the predictor would apply them."""
        return evaluate(blend(self.oofs, counts), self.truth, self.metric, self.multi_label, tuned.temperature, tuned.thresholds, tuned.class_weights)[0]
