"""The predictor's side: a manifest's post-processing applied to one image's probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.metrics import quantize
from core.postprocess.base import get_step
from core.postprocess.tune import GATE_BLEND_MAX


def steps_of(post: dict[str, Any], classes: int) -> tuple[list[str], list[dict[str, float]]]:
    """The steps and per-class values of a manifest's ``postprocessing``; format 1 had threshold and area only."""
    if "per_class" in post:
        steps, values = list(post["steps"]), [dict(v) for v in post["per_class"]]
    else:
        steps = ["threshold", "min_area"]
        values = [{"threshold": t, "min_area": a} for t, a in zip(post["thresholds"], post["min_area_fractions"], strict=False)]
    if len(values) != classes:
        raise ValueError(f"post-processing must give one setting per class: {classes} classes, got {len(values)}")
    for c, per_class in enumerate(values):
        missing = [s for s in steps if s not in per_class]
        if missing:
            raise ValueError(f"post-processing of class index {c} has no value for step(s) {missing}")
    return sorted(steps, key=lambda s: get_step(s).order), values


def apply_postprocessing(probs: np.ndarray, post: dict[str, Any], image_probs: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) probabilities in [0, 1] to 0/1 masks, every step in order, per class.

    ``image_probs`` (C,) are a classifier's probabilities when the gate was tuned on one; otherwise the
    gate reads the class's highest pixel probability, as on OOF.
    """
    classes = probs.shape[0]
    steps, values = steps_of(post, classes)
    source = post.get("gate_source", GATE_BLEND_MAX)
    if source != GATE_BLEND_MAX and image_probs is None and "gate" in steps:
        raise ValueError(f"the gate was tuned on {source}'s image probabilities: pass image_probs (C,) from that model")
    masks = np.zeros(probs.shape, np.uint8)
    for c in range(classes):
        u8 = quantize(probs[c])
        image_prob = float(image_probs[c]) if image_probs is not None else float(u8.max()) / 255
        mask = np.zeros(u8.shape, bool)
        for name in steps:
            mask = get_step(name).apply(mask, u8, values[c][name], image_prob)
        masks[c] = mask
    return masks
