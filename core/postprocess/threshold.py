"""Pixel threshold: a pixel is in the mask when its probability is at least the class's threshold."""

from __future__ import annotations

import numpy as np

from core.metrics import THRESHOLDS, threshold_levels
from core.postprocess.base import STEPS, Step


@STEPS.register("threshold")
class Threshold(Step):
    name = "threshold"
    kind = "threshold"
    order = 0
    grid = THRESHOLDS
    off = 0.5

    def describe(self, value: float, area_px: int) -> str:
        return f"p >= {value:.2f}"

    def apply(self, mask: np.ndarray, probs_u8: np.ndarray, value: float, image_prob: float) -> np.ndarray:
        # Compare uint8 levels, exactly as the OOF tuning did: p >= t means round(255 p) >= ceil(255 t).
        return probs_u8 >= threshold_levels(np.array([value]))[0]
