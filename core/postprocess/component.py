"""Minimum connected-component size: components smaller than it are removed (Severstal winners' speck filter).

Sizes are fractions of the image's area, so one value holds at the OOF scale and at full size.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.postprocess.base import STEPS, Step

COMPONENT_FRACTIONS = np.array([0, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.004])


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of a bool mask: labels (H, W) int32 (0 = background) and sizes per label >= 1."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels, stats[1:count, cv2.CC_STAT_AREA].astype(np.int64)


@STEPS.register("min_component")
class MinComponent(Step):
    name = "min_component"
    kind = "component"
    order = 1
    grid = COMPONENT_FRACTIONS
    off = 0.0

    def describe(self, value: float, area_px: int) -> str:
        return f"components under {round(value * area_px)} px removed" if value > 0 else "all components kept"

    def component_keep(self, sizes: np.ndarray, area_px: int, grid: np.ndarray) -> np.ndarray:
        return sizes[:, None] >= np.asarray(grid)[None, :] * area_px

    def apply(self, mask: np.ndarray, probs_u8: np.ndarray, value: float, image_prob: float) -> np.ndarray:
        if value <= 0 or not mask.any():
            return mask
        labels, sizes = components(mask)
        keep = np.concatenate([[False], sizes >= value * mask.size])
        return keep[labels]
