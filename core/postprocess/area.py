"""Minimum total area: a class's mask is wiped when smaller than this fraction of the image.

The largest grid value wipes every mask (predicting nothing), so a tuned class never scores below that.
"""

from __future__ import annotations

import numpy as np

from core.metrics import MIN_AREA_FRACTIONS
from core.postprocess.base import STEPS, PairStats, Step


@STEPS.register("min_area")
class MinArea(Step):
    name = "min_area"
    kind = "pair"
    order = 2
    grid = MIN_AREA_FRACTIONS
    off = 0.0

    def describe(self, value: float, area_px: int) -> str:
        return "always empty" if value >= 1 else f"masks under {round(value * area_px)} px dropped"

    def keep(self, stats: PairStats, grid: np.ndarray) -> np.ndarray:
        return stats.pred[..., None] >= np.asarray(grid) * stats.area_px

    def apply(self, mask: np.ndarray, probs_u8: np.ndarray, value: float, image_prob: float) -> np.ndarray:
        return mask if mask.sum() >= value * mask.size else np.zeros_like(mask)
