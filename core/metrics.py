"""The competition metrics as a registry, with post-processing folded in.

``dice_pairs`` (Severstal, the default): mean Dice over every image-class pair, 1 when both are empty.
``dice_image`` (Carvana): mean Dice per image of its one mask. ``iou_dataset`` (NEU-Seg, most papers):
per class, intersection over union summed over the data set, averaged over the classes. Each is
written as per-pair values summed over the images (``pair_values``) and a per-class score made of the
sums (``class_scores``), so chunks add up and every post-processing setting is scored from counts.

The default, ``dice_pairs``, explained:

Severstal scores each (image, class) pair: Dice of the predicted and true mask, and 1 when both are
empty, so a speck on a clean pair costs a whole point. The score that matters is therefore the one
after a per-class pixel threshold and minimum area. Probabilities are uint8 (round(p * 255)), so one
histogram of 256 levels per pair gives the predicted area and the overlap at *every* threshold in a
single pass over the pixels; any threshold x minimum-area grid then costs no more pixel work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.registry import Registry

LEVELS = 256
# Probability thresholds tried per class (pixel is positive when p >= threshold).
THRESHOLDS = np.round(np.arange(0.1, 0.91, 0.05), 2)
# Minimum areas as a fraction of the image's area; the last one drops the class entirely, which is
# the all-empty prediction, so a tuned class never scores below predicting nothing.
MIN_AREA_FRACTIONS = np.array([0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.03, 0.05, 2.0])


def threshold_levels(thresholds: np.ndarray) -> np.ndarray:
    """uint8 level L such that u8 >= L exactly when u8 / 255 >= threshold."""
    return np.ceil(np.asarray(thresholds, np.float64) * 255 - 1e-9).astype(np.int64)


def quantize(probs: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] as uint8 round(p * 255), the stored form of every prediction."""
    return np.clip(np.rint(np.asarray(probs, np.float32) * 255), 0, 255).astype(np.uint8)


@dataclass
class PairCounts:
    """Per pair, the predicted area and overlap at each threshold, and the true area."""

    pred_area: np.ndarray  # (n, C, T)
    inter: np.ndarray  # (n, C, T)
    truth_area: np.ndarray  # (n, C)
    max_level: np.ndarray | None = None  # (n, C) the highest uint8 level of each pair (the image-level gate's input)


def pair_counts(probs_u8: np.ndarray, truth: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> PairCounts:
    """Count areas for every threshold from per-pair 256-bin histograms of (n, C, h, w) uint8 probs."""
    if probs_u8.dtype != np.uint8:
        raise ValueError(f"probabilities must be uint8 (round(p * 255)), got {probs_u8.dtype}")
    if probs_u8.shape != truth.shape:
        raise ValueError(f"probabilities {probs_u8.shape} and truth {truth.shape} must have the same shape")
    n, c = probs_u8.shape[:2]
    pairs = n * c
    values = probs_u8.reshape(pairs, -1).astype(np.int64)
    index = (np.arange(pairs)[:, None] * LEVELS + values).ravel()
    positive = truth.reshape(pairs, -1).ravel() != 0
    hist_all = np.bincount(index, minlength=pairs * LEVELS).reshape(pairs, LEVELS)
    hist_pos = np.bincount(index[positive], minlength=pairs * LEVELS).reshape(pairs, LEVELS)
    # at_least[:, L] = pixels with value >= L: a reversed cumulative sum over the levels.
    at_least_all = np.cumsum(hist_all[:, ::-1], axis=1)[:, ::-1]
    at_least_pos = np.cumsum(hist_pos[:, ::-1], axis=1)[:, ::-1]
    levels = threshold_levels(thresholds)
    return PairCounts(
        pred_area=at_least_all[:, levels].reshape(n, c, -1),
        inter=at_least_pos[:, levels].reshape(n, c, -1),
        truth_area=hist_pos.sum(axis=1).reshape(n, c),
        max_level=(LEVELS - 1 - np.argmax(hist_all[:, ::-1] > 0, axis=1)).reshape(n, c),
    )


def dice_sums(counts: PairCounts, min_areas: np.ndarray) -> np.ndarray:
    """Summed pair Dice per class, threshold and minimum area: shape (C, T, A).

    A predicted mask smaller than the minimum area is emptied before scoring.
    """
    pred = counts.pred_area[..., None].astype(np.float64)  # (n, C, T, 1)
    inter = counts.inter[..., None].astype(np.float64)
    kept = pred >= np.asarray(min_areas, np.float64)  # (n, C, T, A)
    pred, inter = pred * kept, inter * kept
    truth = counts.truth_area[:, :, None, None].astype(np.float64)
    total = pred + truth
    dice = np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))
    return dice.sum(axis=0)


def score_grid(
    probs_u8: np.ndarray,
    truth: np.ndarray,
    thresholds: np.ndarray = THRESHOLDS,
    min_areas: np.ndarray | None = None,
    chunk: int = 64,
) -> np.ndarray:
    """Mean pair Dice per class, threshold and minimum area (C, T, A), reading ``chunk`` images at a time.

    ``min_areas`` are in pixels of the arrays given; by default the fractions of the image area above.
    """
    if probs_u8.shape != truth.shape:  # checked here too: chunks of unequal arrays could still match
        raise ValueError(f"probabilities {probs_u8.shape} and truth {truth.shape} must have the same shape")
    n, _, h, w = probs_u8.shape
    if n == 0:
        raise ValueError("score_grid needs at least one image, got an empty array")
    if min_areas is None:
        min_areas = MIN_AREA_FRACTIONS * h * w
    sums = None
    for start in range(0, n, chunk):
        window = slice(start, start + chunk)
        part = dice_sums(pair_counts(np.asarray(probs_u8[window]), np.asarray(truth[window]), thresholds), min_areas)
        sums = part if sums is None else sums + part
    return sums / n


@dataclass
class PostProcessing:
    """The best per-class threshold and minimum area on a grid, and the score they give."""

    thresholds: list[float]
    min_area_fractions: list[float]  # of the image area, so it holds at any resolution
    class_scores: list[float]
    score: float  # mean over classes = mean over every image-class pair


def best_postprocessing(
    grid: np.ndarray, thresholds: np.ndarray = THRESHOLDS, fractions: np.ndarray = MIN_AREA_FRACTIONS
) -> PostProcessing:
    """Pick, per class, the threshold and minimum area with the highest mean Dice from a score grid."""
    classes = grid.shape[0]
    flat = grid.reshape(classes, -1)
    best = flat.argmax(axis=1)
    t_index, a_index = np.unravel_index(best, grid.shape[1:])
    class_scores = flat[np.arange(classes), best]
    return PostProcessing(
        thresholds=[float(thresholds[i]) for i in t_index],
        min_area_fractions=[float(fractions[i]) for i in a_index],
        class_scores=[float(s) for s in class_scores],
        score=float(class_scores.mean()),
    )


def mean_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Plain competition metric of binary masks (n, C, H, W): mean pair Dice, 1 when both are empty."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    axes = (2, 3)
    inter = (pred & truth).sum(axis=axes)
    total = pred.sum(axis=axes) + truth.sum(axis=axes)
    return float(np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1)).mean())


# --- the metric registry ------------------------------------------------------------------------


class Metric:
    """A metric as sums over pairs: ``pair_values`` per pair (..., K), ``class_scores`` from their sums."""

    name = ""
    description = ""

    def check(self, num_classes: int) -> None:
        """Refuse a data set the metric is not defined for."""

    def pair_values(self, pred: np.ndarray, inter: np.ndarray, truth: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def class_scores(self, sums: np.ndarray) -> np.ndarray:
        """Per-class score from ``pair_values`` summed over images: (C, ..., K) -> (C, ...)."""
        raise NotImplementedError


METRICS: Registry[type[Metric]] = Registry("metric")
DEFAULT_METRIC = "dice_pairs"


def _dice(pred: np.ndarray, inter: np.ndarray, truth: np.ndarray) -> np.ndarray:
    total = pred + truth
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))


@METRICS.register("dice_pairs")
class DicePairs(Metric):
    name = "dice_pairs"
    description = "mean Dice over every image-class pair, 1 when both are empty (Severstal)"

    def pair_values(self, pred, inter, truth):  # type: ignore[no-untyped-def]
        dice = _dice(pred, inter, truth)
        return np.stack([dice, np.ones_like(dice)], axis=-1)

    def class_scores(self, sums):  # type: ignore[no-untyped-def]
        return sums[..., 0] / np.maximum(sums[..., 1], 1)


@METRICS.register("dice_image")
class DiceImage(DicePairs):
    name = "dice_image"
    description = "mean Dice per image of its one mask, 1 when both are empty (Carvana)"

    def check(self, num_classes: int) -> None:
        if num_classes != 1:
            raise ValueError(
                f"metric dice_image scores one mask per image, but this data has {num_classes} classes; "
                "use metric=dice_pairs (mean Dice over every image-class pair) or metric=iou_dataset"
            )


@METRICS.register("iou_dataset")
class IouDataset(Metric):
    name = "iou_dataset"
    description = "per-class IoU summed over the data set, averaged over classes (NEU-Seg, papers)"

    def pair_values(self, pred, inter, truth):  # type: ignore[no-untyped-def]
        inter = np.broadcast_to(inter, np.broadcast_shapes(np.shape(pred), np.shape(inter), np.shape(truth)))
        return np.stack([inter, pred + truth - inter], axis=-1).astype(np.float64)

    def class_scores(self, sums):  # type: ignore[no-untyped-def]
        return np.where(sums[..., 1] == 0, 1.0, sums[..., 0] / np.maximum(sums[..., 1], 1))


def get_metric(name: str | Metric | None = None) -> Metric:
    """A registered metric by name (None: the default, dice_pairs)."""
    if isinstance(name, Metric):
        return name
    return METRICS.get(name or DEFAULT_METRIC)()


def list_metrics() -> list[str]:
    return METRICS.names()


def score_masks(pred: np.ndarray, truth: np.ndarray, metric: str | Metric | None = None) -> float:
    """A metric of binary masks (n, C, H, W), no post-processing."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    axes = (2, 3)
    values = get_metric(metric).pair_values(
        pred.sum(axis=axes).astype(np.float64), (pred & truth).sum(axis=axes).astype(np.float64), truth.sum(axis=axes).astype(np.float64)
    )
    return float(get_metric(metric).class_scores(values.sum(axis=0)).mean())
