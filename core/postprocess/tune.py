"""Tuning the registered steps per class on OOF, and describing the result.

Stage 1 scores every threshold x every pair-step value (minimum area, gate) from per-pair counts: one
histogram pass over the pixels, whatever the grid. Stage 2 fixes each class's threshold, computes
connected components once per pair at it, and tunes the component step jointly with the pair steps
again (the area is then measured after the components are removed). Both grids hold the values that
change nothing and the minimum area that wipes the class, so a tuned class never scores below
predicting nothing, and stage 2 never below stage 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.metrics import (
    DEFAULT_METRIC,
    Metric,
    PostProcessing,
    best_postprocessing,
    get_metric,
    pair_counts,
    score_grid,
    threshold_levels,
)
from core.postprocess.base import STEPS, PairStats, Step, get_step
from core.postprocess.component import components

GATE_BLEND_MAX = "blend_max"  # the gate's input without a classification trial
_PATHS: dict[str, list] = {}  # einsum contraction orders of Tuner.sums, by expression


@dataclass
class Tuned:
    """Per class, the value of every step, and the tuned scores."""

    metric: str
    steps: list[str]  # in the order the predictor applies them
    values: list[dict[str, float]]  # per class: step name -> value
    class_scores: list[float]
    score: float
    gate_source: str = GATE_BLEND_MAX
    stage_scores: dict[str, float] = field(default_factory=dict)  # score after each tuning stage

    @property
    def thresholds(self) -> list[float]:
        return [v["threshold"] for v in self.values]

    @property
    def min_area_fractions(self) -> list[float]:
        return [v.get("min_area", 0.0) for v in self.values]

    def to_manifest(self, image_shape: tuple[int, int]) -> dict[str, Any]:
        area = image_shape[0] * image_shape[1]
        return {
            "metric": self.metric,
            "steps": self.steps,
            "per_class": self.values,
            "gate_source": self.gate_source,
            "described": describe_values(self.steps, self.values, area),
            "stage_scores": self.stage_scores,
            # the format-1 keys, still read by older tools
            "thresholds": self.thresholds,
            "min_area_fractions": self.min_area_fractions,
            "min_area_px": [round(f * area) for f in self.min_area_fractions],
        }


def describe_values(steps: list[str], values: list[dict[str, float]], area_px: int) -> list[str]:
    """One phrase per class: each step that does something, or that the class is always left empty."""
    lines = []
    for per_class in values:
        if per_class.get("min_area", 0) >= 1:
            lines.append("always empty (no mask beat predicting nothing on OOF)")
            continue
        parts = [get_step(s).describe(per_class[s], area_px) for s in steps if s == "threshold" or per_class[s] != get_step(s).off]
        lines.append(", ".join(parts))
    return lines


class Tuner:
    """Sums of a metric's pair values over the grids of the registered steps, and the best setting per class."""

    def __init__(self, metric: str | Metric | None = None, steps: list[str] | None = None) -> None:
        self.metric = get_metric(metric)
        chosen = [get_step(name) for name in (steps or STEPS.names())]
        self.steps: list[Step] = sorted(chosen, key=lambda s: s.order)
        kinds = [s.kind for s in self.steps]
        if kinds.count("threshold") != 1:
            raise ValueError(f"post-processing needs exactly one threshold step, got steps {[s.name for s in self.steps]}")
        self.threshold = next(s for s in self.steps if s.kind == "threshold")
        self.pair_steps = [s for s in self.steps if s.kind == "pair"]
        self.component_steps = [s for s in self.steps if s.kind == "component"]
        self.levels = threshold_levels(self.threshold.grid)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def sums(self, stats: PairStats) -> np.ndarray:
        """(C, X, V_1, ..., V_k, K): the metric's pair values summed over the pairs, for every setting.

        A pair whose mask is empty at every X scores the same whatever the steps do (its wiped value), so
        only pairs with some mask go through the steps' grids (one contraction over those pairs): the rest are one sum.
        """
        zero = np.zeros_like(stats.truth, np.float64)
        v0 = self.metric.pair_values(zero, zero, stats.truth.astype(np.float64))  # (n, C, K): the wiped mask
        _, classes, x = stats.pred.shape
        grid_shape = tuple(len(step.grid) for step in self.pair_steps)
        out = np.zeros((classes, x, *grid_shape, v0.shape[-1]))
        out += v0.sum(axis=0).reshape(classes, *([1] * (1 + len(grid_shape))), -1)
        letters = "abcdefgh"[: len(self.pair_steps)]
        for c in range(classes):
            live = (stats.pred[:, c] > 0).any(axis=1)
            if not live.any():
                continue
            # the steps see only the live pairs of this class: (m, 1, ...) stats
            sub = PairStats(stats.pred[live, c][:, None], stats.inter[live, c][:, None], stats.truth[live, c][:, None],
                            stats.image_prob[live, c][:, None], stats.area_px)
            pred, inter, truth = sub.pred[:, 0].astype(np.float64), sub.inter[:, 0].astype(np.float64), sub.truth[:, 0].astype(np.float64)
            delta = self.metric.pair_values(pred, inter, truth[:, None]) - v0[live, c][:, None, :]  # (m, X, K)
            operands, subscripts = [], []
            for letter, step in zip(letters, self.pair_steps, strict=True):
                keep = step.keep(sub, step.grid)[:, 0]  # (m, X or 1, V)
                operands.append(keep.astype(np.float64) if keep.shape[1] == x else keep[:, 0].astype(np.float64))
                subscripts.append(f"mx{letter}" if keep.shape[1] == x else f"m{letter}")
            # one contraction over the pairs, not the outer product of every step's grid per pair; its order is
            # found once per expression (a valid order for any number of pairs), not at every call
            expression = ",".join([*subscripts, "mxk"]) + f"->x{letters}k"
            if expression not in _PATHS:
                _PATHS[expression] = np.einsum_path(expression, *operands, delta, optimize="greedy")[0]
            out[c] += np.einsum(expression, *operands, delta, optimize=_PATHS[expression])
        return out

    def best(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per class, the index of the best setting (first on ties) and its score."""
        scores = self.metric.class_scores(sums)  # (C, X, V...)
        flat = scores.reshape(scores.shape[0], -1)
        index = flat.argmax(axis=1)
        return np.stack(np.unravel_index(index, scores.shape[1:]), axis=1), flat[np.arange(flat.shape[0]), index]

    def stage1(self, sums: np.ndarray, gate_source: str = GATE_BLEND_MAX) -> Tuned:
        index, class_scores = self.best(sums)
        values = []
        for row in index:
            per_class = {self.threshold.name: float(self.threshold.grid[row[0]])}
            per_class.update({s.name: float(s.grid[i]) for s, i in zip(self.pair_steps, row[1:], strict=True)})
            per_class.update({s.name: float(s.off) for s in self.component_steps})
            values.append(per_class)
        score = float(class_scores.mean())
        return Tuned(self.metric.name, self.names, values, [float(s) for s in class_scores], score, gate_source, {"counts": score})

    # --- stage 2: the component step(s), with each class's threshold fixed -------------------------

    def component_stats(self, probs_u8: np.ndarray, truth: np.ndarray, image_prob: np.ndarray, tuned: Tuned, step: Step) -> PairStats:
        """Per pair, area and overlap after removing components under each of ``step``'s grid values."""
        n, classes, h, w = probs_u8.shape
        pred = np.zeros((n, classes, len(step.grid)), np.float64)
        inter = np.zeros_like(pred)
        levels = threshold_levels(np.array(tuned.thresholds))
        for c in range(classes):
            if tuned.values[c].get("min_area", 0) >= 1:
                continue  # wiped whatever the components: nothing to measure
            for i in range(n):
                mask = probs_u8[i, c] >= levels[c]
                if not mask.any():
                    continue
                labels, sizes = components(mask)
                overlap = np.bincount(labels[truth[i, c] != 0], minlength=len(sizes) + 1)[1:]
                keep = step.component_keep(sizes, h * w, step.grid)  # (k, M)
                pred[i, c], inter[i, c] = sizes @ keep, overlap @ keep
        truth_area = (truth != 0).sum(axis=(2, 3))
        return PairStats(pred, inter, truth_area, image_prob, h * w)

    def stage2(self, tuned: Tuned, sums: np.ndarray, step: Step) -> Tuned:
        """Pick the component value and the pair steps again; keep stage 1 where it is at least as good."""
        index, class_scores = self.best(sums)
        values = [dict(v) for v in tuned.values]
        out_scores = list(tuned.class_scores)
        for c, row in enumerate(index):
            if class_scores[c] > tuned.class_scores[c] + 1e-12:
                values[c][step.name] = float(step.grid[row[0]])
                values[c].update({s.name: float(s.grid[i]) for s, i in zip(self.pair_steps, row[1:], strict=True)})
                out_scores[c] = float(class_scores[c])
        score = float(np.mean(out_scores))
        return Tuned(tuned.metric, tuned.steps, values, out_scores, score, tuned.gate_source, {**tuned.stage_scores, step.name: score})


def image_probs_from(max_level: np.ndarray, classifier: np.ndarray | None) -> np.ndarray:
    """The gate's input: a classifier's probabilities (n, C) in [0, 1], or the blend's max pixel probability."""
    return np.asarray(classifier, np.float64) if classifier is not None else np.asarray(max_level, np.float64) / 255


def tune(
    chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]] | Any,
    metric: str | Metric | None = None,
    steps: list[str] | None = None,
    gate_source: str = GATE_BLEND_MAX,
    components_too: bool = True,
) -> Tuned:
    """Tune every step per class on ``(probs_u8, truth, classifier_probs or None)`` chunks (a list: read twice)."""
    tuner = Tuner(metric, steps)
    chunks = list(chunks)
    total = None
    for probs, truth, classifier in chunks:
        counts = pair_counts(np.asarray(probs), np.asarray(truth), tuner.threshold.grid)
        stats = PairStats(counts.pred_area, counts.inter, counts.truth_area, image_probs_from(counts.max_level, classifier), probs.shape[2] * probs.shape[3])
        part = tuner.sums(stats)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("tuning needs at least one image, got none")
    tuned = tuner.stage1(total, gate_source)
    if components_too:
        for step in tuner.component_steps:
            total = None
            for probs, truth, classifier in chunks:
                probs, truth = np.asarray(probs), np.asarray(truth)
                image_prob = image_probs_from(probs.max(axis=(2, 3)), classifier)
                part = tuner.sums(tuner.component_stats(probs, truth, image_prob, tuned, step))
                total = part if total is None else total + part
            tuned = tuner.stage2(tuned, total, step)
    return tuned


def tune_arrays(
    probs_u8: np.ndarray,
    truth: np.ndarray,
    metric: str | Metric | None = None,
    classifier: np.ndarray | None = None,
    chunk: int = 64,
    **options: Any,
) -> Tuned:
    """``tune`` on whole (possibly memory-mapped) arrays, ``chunk`` images at a time."""
    n = len(probs_u8)
    return tune(
        ((probs_u8[s : s + chunk], truth[s : s + chunk], None if classifier is None else classifier[s : s + chunk]) for s in range(0, n, chunk)),
        metric,
        **options,
    )


def tuned_score(probs_u8: np.ndarray, truth: np.ndarray, metric: str | None = None) -> PostProcessing:
    """A trial's score: the best per-class threshold and minimum area on the default grid, by ``metric``."""
    if metric in (None, DEFAULT_METRIC):
        return best_postprocessing(score_grid(probs_u8, truth))
    tuned = tune_arrays(probs_u8, truth, metric, steps=["threshold", "min_area"], components_too=False)
    return PostProcessing(tuned.thresholds, tuned.min_area_fractions, tuned.class_scores, tuned.score)
