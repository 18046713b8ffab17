"""What a class ensemble's tuned knobs do to its probabilities at prediction time: the temperature, the
argmax weights, the per-class decisions, and the gate's test of an image that needs no segmentation.

The predictor's half of ``ensembling/scoring/class_knobs.py`` (which tunes them on OOF): pure numpy, shipped
with the export.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.class_metrics import decide

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before logs, as the log loss metric does



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


def weighted(probs: np.ndarray, class_weights: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Single-label rows times per-class weights, renormalised: their argmax is the weighted decision."""
    p = np.asarray(probs, np.float64)
    if class_weights is None:
        return p
    p = p * np.asarray(class_weights, np.float64)
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)


def decisions(probs: np.ndarray, multi_label: bool, thresholds: Sequence[float] | np.ndarray | None = None,
              class_weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """0/1 (N, K): the (weighted) argmax one-hot (single-label), or ``p >= threshold`` (0.5 without) multi-label."""
    p = np.asarray(probs, np.float64) if multi_label else weighted(probs, class_weights)
    cut = None if thresholds is None else np.asarray(thresholds, np.float64) - 1e-12
    return decide(p, p.shape[1], multi_label, cut).astype(np.uint8)


def skipped(image_probs: np.ndarray, gates: list[float]) -> np.ndarray:
    """(N,) True where every class has a gate (> 0) and the image's probability is under it: nothing to segment."""
    values = np.asarray(gates, np.float64)
    if not (values > 0).all():
        return np.zeros(len(image_probs), bool)
    return (np.asarray(image_probs) < values - 1e-9).all(axis=1)
