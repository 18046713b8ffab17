"""What a post-processing step is, and the registry that lists them.

A step turns a class's probability map into a mask (``threshold``) or keeps or wipes part of a mask
(the others). Each declares a grid of values, the value that does nothing (``off``), an ``order`` in
which the predictor applies it, and a ``kind`` that says how it is tuned on OOF:

- ``threshold``: the pixel level; tuned from per-pair histograms at every grid value at once;
- ``pair``: keeps or wipes a pair's whole mask from counts (its area, its image's probability): ``keep``;
- ``component``: removes connected components; needs the pixels, so it is tuned once the threshold is
  chosen, on components computed once per pair (``component_keep``).

Adding a step is one module with a registered class and one import line in ``__init__``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.registry import Registry


@dataclass
class PairStats:
    """Per image-class pair counts at each value of the leading setting axis X (thresholds, or component sizes)."""

    pred: np.ndarray  # (n, C, X) predicted area
    inter: np.ndarray  # (n, C, X) overlap with the truth
    truth: np.ndarray  # (n, C) true area
    image_prob: np.ndarray  # (n, C) the image-level probability of the class: a classifier's, or the blend's max pixel
    area_px: int  # pixels of one image at this scale


class Step:
    name = ""
    kind = "pair"  # threshold | pair | component
    order = 0  # the predictor applies steps by increasing order
    grid: np.ndarray = np.array([0.0])
    off = 0.0  # the value that changes nothing

    def describe(self, value: float, area_px: int) -> str:
        raise NotImplementedError

    def keep(self, stats: PairStats, grid: np.ndarray) -> np.ndarray:
        """pair kind: bool (n, C, X or 1, V), whether each pair's mask survives each grid value."""
        raise NotImplementedError

    def component_keep(self, sizes: np.ndarray, area_px: int, grid: np.ndarray) -> np.ndarray:
        """component kind: bool (k, V), whether each of k components (pixel sizes) survives each grid value."""
        raise NotImplementedError

    def apply(self, mask: np.ndarray, probs_u8: np.ndarray, value: float, image_prob: float) -> np.ndarray:
        """The predictor's side: the mask (H, W) bool after this step, from the class's uint8 probabilities."""
        raise NotImplementedError


STEPS: Registry[type[Step]] = Registry("post-processing step")


def get_step(name: str) -> Step:
    return STEPS.get(name)()


def list_steps() -> list[str]:
    return STEPS.names()
