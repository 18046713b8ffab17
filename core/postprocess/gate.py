"""Image-level gate: a class's mask is wiped when the image's probability of the class is below a value.

The image's probability comes from a classification trial of the same study when there is one, or
else from the segmentation blend itself: its highest pixel probability of the class.
"""

from __future__ import annotations

import numpy as np

from core.postprocess.base import STEPS, PairStats, Step


@STEPS.register("gate")
class Gate(Step):
    name = "gate"
    kind = "pair"
    order = 3
    grid = np.array([0.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    off = 0.0

    def describe(self, value: float, area_px: int) -> str:
        return f"wiped when the image's p < {value:.2f}" if value > 0 else "no image gate"

    def keep(self, stats: PairStats, grid: np.ndarray) -> np.ndarray:
        return (stats.image_prob[..., None] >= np.asarray(grid) - 1e-9)[:, :, None, :]

    def apply(self, mask: np.ndarray, probs_u8: np.ndarray, value: float, image_prob: float) -> np.ndarray:
        return mask if image_prob >= value - 1e-9 else np.zeros_like(mask)
