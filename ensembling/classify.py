"""Class ensembles on OOF: probability blends, their metrics, and the two knobs tuned on them.

A classification study's truth is (N, K) uint8 (one-hot single-label, multi-hot multi-label); each
candidate's OOF is (N, K) probabilities (softmax rows, or one sigmoid per class). A blend is the weighted
mean of members' probabilities. Two knobs are tuned on a blend, each only where it can change the metric:

- **temperature** T (1: no calibration). Single-label: ``p ** (1/T)`` renormalised (softmax of log p / T);
  multi-label: ``sigmoid(logit(p) / T)``. It changes log loss always; ROC AUC only single-label (a row's
  renormalisation reorders images within a class); never accuracy or macro F1 (argmax is unchanged, and
  a per-class threshold absorbs a monotone map). Log loss is convex in 1/T: minimised by golden section.
- **per-class thresholds** (multi-label, accuracy and macro F1): class k is predicted when p_k >= t_k.
  Both metrics are sums over classes of a per-class term, so each t_k is the exact optimum over every cut
  between consecutive distinct OOF values. Single-label decisions are the argmax; log loss and ROC AUC
  read probabilities, so they have no thresholds.

Pure numpy: no Ray, MLflow or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before logs (float16 OOF rounds 0.9999 to 1)
LOG_LOSS_CLIP = 1e-15  # Kaggle's log loss clip


# --- metrics ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassMetric:
    name: str
    higher_is_better: bool
    reads: str  # "decisions" (0/1 per class) or "probs"
    fn: Callable[[np.ndarray, np.ndarray, bool], float]  # (decisions or probs, truth, multi_label) -> value
    per_class: Callable[[np.ndarray, np.ndarray, bool], np.ndarray] | None = None

    def objective(self, value: float) -> float:
        """What selection maximises: the value, or minus it for a loss."""
        return value if self.higher_is_better else -value

    def temperature_matters(self, multi_label: bool) -> bool:
        return self.name == "log_loss" or (self.name == "roc_auc" and not multi_label)

    def thresholds_matter(self, multi_label: bool) -> bool:
        return multi_label and self.reads == "decisions"


def _accuracy_per_class(decisions: np.ndarray, truth: np.ndarray, multi_label: bool) -> np.ndarray:
    return (decisions == (truth != 0)).mean(axis=0)


def accuracy(decisions: np.ndarray, truth: np.ndarray, multi_label: bool) -> float:
    """Single-label: share of images whose argmax is the label; multi-label: share of right (image, class) labels."""
    if multi_label:
        return float(_accuracy_per_class(decisions, truth, True).mean())
    return float((decisions.argmax(axis=1) == truth.argmax(axis=1)).mean())


def f1_per_class(decisions: np.ndarray, truth: np.ndarray, multi_label: bool = True) -> np.ndarray:
    """F1 of each class (0 where it has neither truth nor prediction, as scikit-learn's default)."""
    d, t = decisions != 0, truth != 0
    tp = (d & t).sum(axis=0).astype(np.float64)
    denominator = d.sum(axis=0) + t.sum(axis=0)
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def macro_f1(decisions: np.ndarray, truth: np.ndarray, multi_label: bool) -> float:
    return float(f1_per_class(decisions, truth).mean())


def log_loss(probs: np.ndarray, truth: np.ndarray, multi_label: bool) -> float:
    """Single-label: mean -log p(label), rows renormalised; multi-label: mean binary cross-entropy of every label."""
    p = np.clip(np.asarray(probs, np.float64), LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    t = truth != 0
    if multi_label:
        return float(-np.where(t, np.log(p), np.log1p(-p)).mean())
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.log(p[t]).sum() / len(p))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged, per column."""
    order = np.argsort(values, axis=0, kind="stable")
    out = np.empty(values.shape, np.float64)
    for k in range(values.shape[1]):
        v = values[order[:, k], k]
        starts = np.r_[0, np.flatnonzero(np.diff(v)) + 1]
        ends = np.r_[starts[1:], len(v)]
        mean_rank = (starts + ends + 1) / 2  # ranks starts+1 .. ends, averaged
        out[order[:, k], k] = np.repeat(mean_rank, ends - starts)
    return out


def auc_per_class(probs: np.ndarray, truth: np.ndarray, multi_label: bool = True) -> np.ndarray:
    """One-vs-rest ROC AUC per class (Mann-Whitney, ties count half); NaN for a class with one kind of label."""
    t = truth != 0
    ranks = _ranks(np.asarray(probs, np.float64))
    pos, neg = t.sum(axis=0), (~t).sum(axis=0)
    rank_sum = np.where(t, ranks, 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), (rank_sum - pos * (pos + 1) / 2) / (pos * neg), np.nan)


def roc_auc(probs: np.ndarray, truth: np.ndarray, multi_label: bool) -> float:
    """Macro one-vs-rest ROC AUC over the classes that have both labels."""
    per_class = auc_per_class(probs, truth)
    if np.isnan(per_class).all():
        raise ValueError("ROC AUC needs a class with both positive and negative images, got none")
    return float(np.nanmean(per_class))


CLASS_METRICS: dict[str, ClassMetric] = {
    m.name: m
    for m in (
        ClassMetric("accuracy", True, "decisions", accuracy, _accuracy_per_class),
        ClassMetric("macro_f1", True, "decisions", macro_f1, f1_per_class),
        ClassMetric("log_loss", False, "probs", log_loss),
        ClassMetric("roc_auc", True, "probs", roc_auc, auc_per_class),
    )
}


def get_class_metric(name: str) -> ClassMetric:
    if name not in CLASS_METRICS:
        raise ValueError(f"metric must be one of {', '.join(CLASS_METRICS)} for a classification study, got {name!r}")
    return CLASS_METRICS[name]


# --- the knobs ----------------------------------------------------------------------------------------


def apply_temperature(probs: np.ndarray, temperature: float, multi_label: bool) -> np.ndarray:
    """Probabilities with their logits divided by ``temperature`` (1 returns them as they are, as float64)."""
    p = np.asarray(probs, np.float64)
    if temperature == 1:
        return p
    p = np.clip(p, EPS, 1 - EPS)
    if multi_label:
        return 1 / (1 + np.exp(-(np.log(p) - np.log1p(-p)) / temperature))
    z = np.log(p) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, truth: np.ndarray, multi_label: bool, low: float = 0.05, high: float = 20.0, steps: int = 60) -> float:
    """The temperature minimising log loss: golden section on beta = 1/T in [1/high, 1/low] (convex in beta)."""
    def loss(beta: float) -> float:
        return log_loss(apply_temperature(probs, 1 / beta, multi_label), truth, multi_label)

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


def best_thresholds(probs: np.ndarray, truth: np.ndarray, metric: str) -> np.ndarray:
    """Per class, the threshold maximising its term of ``metric`` (accuracy or F1) over every cut of the OOF values.

    Cuts sit halfway between consecutive distinct values (and below the lowest, above the highest); ties go
    to the cut nearest 0.5, so a class with no information keeps the natural threshold.
    """
    p = np.asarray(probs, np.float64)
    t = truth != 0
    out = np.empty(p.shape[1])
    for k in range(p.shape[1]):
        order = np.argsort(-p[:, k], kind="stable")
        values, labels = p[order, k], t[order, k]
        distinct = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]  # last index of each distinct value
        tp = np.r_[0, np.cumsum(labels)[distinct]]  # predicted positive: the top 0, then each group more
        predicted = np.r_[0, distinct + 1]
        positives = labels.sum()
        if metric == "accuracy":
            fp = predicted - tp
            score = tp + (len(values) - positives - fp)
        else:
            denominator = predicted + positives
            score = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
        uniques = values[distinct]  # descending
        above = (uniques[0] + 1) / 2 if uniques[0] < 1 else 1 + 1e-9  # predicts none
        cuts = np.r_[above, (uniques[:-1] + uniques[1:]) / 2, uniques[-1] / 2]  # ..., predicts all
        best = np.flatnonzero(score >= score.max() - 1e-12)
        out[k] = cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]]
    return out


def decide(probs: np.ndarray, multi_label: bool, thresholds: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """0/1 decisions (N, K): argmax one-hot single-label, ``p >= threshold`` (0.5 without) multi-label."""
    p = np.asarray(probs)
    if not multi_label:
        out = np.zeros(p.shape, np.uint8)
        out[np.arange(len(p)), p.argmax(axis=1)] = 1
        return out
    cut = np.full(p.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, np.float64)
    return (p >= cut - 1e-12).astype(np.uint8)


@dataclass
class ClassTuned:
    """The knobs of one blend and what they score on the rows they were tuned on."""

    metric: str
    multi_label: bool
    temperature: float
    thresholds: list[float] | None  # multi-label with a decision metric only
    score: float  # the metric's own value (a loss stays a loss)
    class_scores: list[float] = field(default_factory=list)  # per class where the metric has a per-class term

    def apply(self, probs: np.ndarray) -> np.ndarray:
        return apply_temperature(probs, self.temperature, self.multi_label)

    def to_manifest(self) -> dict[str, Any]:
        return {"metric": self.metric, "multi_label": self.multi_label, "temperature": self.temperature, "thresholds": self.thresholds}


def evaluate(probs: np.ndarray, truth: np.ndarray, metric: ClassMetric, multi_label: bool, temperature: float, thresholds: Any) -> tuple[float, list[float]]:
    """The metric of a blend with the knobs applied, and its per-class values where it has them."""
    p = apply_temperature(probs, temperature, multi_label)
    x = decide(p, multi_label, thresholds) if metric.reads == "decisions" else p
    value = metric.fn(x, truth, multi_label)
    per_class = [] if metric.per_class is None or (not multi_label and metric.name == "accuracy") else [float(v) for v in metric.per_class(x, truth, multi_label)]
    return value, per_class


TEMPERATURE_GRID = (0.5, 0.7, 1.0, 1.4, 2.0)  # tried for single-label ROC AUC (rank-based: no gradient to follow)


def tune_classes(probs: np.ndarray, truth: np.ndarray, metric_name: str, multi_label: bool) -> ClassTuned:
    """Temperature (or none) and per-class thresholds, each tuned only where it can change ``metric``."""
    metric = get_class_metric(metric_name)
    temperature = 1.0
    if metric.name == "log_loss":
        fitted = fit_temperature(probs, truth, multi_label)
        if log_loss(apply_temperature(probs, fitted, multi_label), truth, multi_label) < log_loss(probs, truth, multi_label):
            temperature = fitted
    elif metric.temperature_matters(multi_label):
        values = {t: metric.objective(evaluate(probs, truth, metric, multi_label, t, None)[0]) for t in TEMPERATURE_GRID}
        temperature = max(values, key=lambda t: (values[t], t == 1.0))
    thresholds = None
    if metric.thresholds_matter(multi_label):
        thresholds = [float(v) for v in best_thresholds(apply_temperature(probs, temperature, multi_label), truth, metric.name)]
    value, per_class = evaluate(probs, truth, metric, multi_label, temperature, thresholds)
    return ClassTuned(metric.name, multi_label, float(temperature), thresholds, value, per_class)


# --- blends for the greedy selector -------------------------------------------------------------------


def blend(oofs: Sequence[np.ndarray], counts: Mapping[int, int], rows: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean (float64) of members' probabilities; weights are pick counts."""
    if not counts:
        raise ValueError("a blend needs at least one member, got empty counts")
    total = sum(np.asarray(oofs[i] if rows is None else oofs[i][rows], np.float64) * c for i, c in counts.items())
    return total / sum(counts.values())  # type: ignore[operator]


class ClassScorer:
    """The greedy objective for classes: the tuned metric (as an objective, higher better) of blends of OOF."""

    def __init__(self, oofs: Sequence[np.ndarray], truth: np.ndarray, metric: str, multi_label: bool, rows: np.ndarray | None = None) -> None:
        for i, oof in enumerate(oofs):
            if oof.shape != truth.shape:
                raise ValueError(f"OOF {i} has shape {oof.shape} but the truth has {truth.shape}; was it written for another split?")
        self.rows = np.arange(len(truth)) if rows is None else np.sort(np.asarray(rows))
        # read once: (N, K) arrays are small next to masks
        self.oofs = [np.asarray(o, np.float64)[self.rows] for o in oofs]
        self.truth = np.asarray(truth)[self.rows]
        self.metric, self.multi_label = get_class_metric(metric), multi_label

    def tune(self, counts: Mapping[int, int]) -> ClassTuned:
        return tune_classes(blend(self.oofs, counts), self.truth, self.metric.name, self.multi_label)

    def scores(self, counts: Mapping[int, int], candidates: Sequence[int | None]) -> list[float]:
        out = []
        for candidate in candidates:
            trial = dict(counts)
            if candidate is not None:
                trial[candidate] = trial.get(candidate, 0) + 1
            out.append(self.metric.objective(self.tune(trial).score))
        return out

    def held_out(self, counts: Mapping[int, int], tuned: ClassTuned) -> float:
        """The blend on this scorer's rows with knobs tuned elsewhere, as the predictor would apply them."""
        return evaluate(blend(self.oofs, counts), self.truth, self.metric, self.multi_label, tuned.temperature, tuned.thresholds)[0]
