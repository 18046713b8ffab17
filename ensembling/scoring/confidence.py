"""How sure the ensemble is of one image, and the loosest confidence threshold whose pseudo-labels are right often enough.

Pure numpy. The threshold is tuned on the ensemble's OOF blend, where each image's prediction is
known to be right or wrong (its quality against the truth): among the thresholds that keep at least
``MIN_KEPT`` OOF images, the loosest whose kept images reach the asked mean quality (the pseudo-labels'
precision) is taken, so the precision is measured, not guessed, and the test images over the same
threshold are expected to be as good.

- masks: confidence = the share of an image's undecided-looking pixels that are in fact confident:
  pixels at p >= 0.9 among all pixels above 0.1 (1 when none is above 0.1: a confidently empty image);
  quality = the image's mean Dice per class after the ensemble's post-processing (1 for a class empty
  in both truth and prediction), as the pictures score images.
- image labels: confidence = the top class probability (single-label), or the least sure class's
  max(p, 1 - p) (multi-label); quality = 1 when every decided label is right, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.pictures import image_scores

LOW, HIGH = 0.1, 0.9  # a pixel under LOW is background, over HIGH confident foreground; between: unsure
MIN_KEPT = 5  # a precision measured on fewer OOF images is noise

mask_quality = image_scores  # (pred, truth) 0/1 (N, C, h, w) -> mean Dice per class, 1 for a pair empty in both


def mask_confidence(probs: np.ndarray) -> np.ndarray:
    """(N, C, h, w) probabilities in [0, 1] (or uint8 0-255) -> (N,) confidence in [0, 1]."""
    p = probs.astype(np.float32) / (255 if probs.dtype == np.uint8 else 1)
    flat = p.reshape(len(p), -1)
    confident = (flat >= HIGH).sum(axis=1)
    unsure = ((flat > LOW) & (flat < HIGH)).sum(axis=1)
    return np.where(confident + unsure == 0, 1.0, confident / np.maximum(confident + unsure, 1))


def label_confidence(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """(N, K) probabilities -> (N,) confidence."""
    probs = np.asarray(probs, np.float32)
    if multi_label:
        return np.maximum(probs, 1 - probs).min(axis=1)
    return probs.max(axis=1)


def label_quality(decided: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1.0 where every label of the image is decided right, else 0.0."""
    return (np.asarray(decided).astype(bool) == np.asarray(truth).astype(bool)).all(axis=1).astype(np.float64)


@dataclass(frozen=True)
class Threshold:
    value: float  # keep an image when its confidence >= value
    precision: float  # mean quality of the OOF images kept at it
    kept: int  # OOF images kept
    total: int


def tune_threshold(confidence: np.ndarray, quality: np.ndarray, precision: float, min_kept: int = MIN_KEPT) -> Threshold:
    """The loosest threshold (over the OOF confidences) whose kept OOF images reach ``precision`` mean quality.

    Raises one line when no threshold keeping ``min_kept`` images reaches it, naming the best there is."""
    confidence, quality = np.asarray(confidence, np.float64), np.asarray(quality, np.float64)
    if len(confidence) != len(quality) or not len(confidence):
        raise ValueError(f"confidence and quality must give one value per OOF image, got {len(confidence)} and {len(quality)}")
    order = np.argsort(-confidence, kind="stable")
    conf, qual = confidence[order], quality[order]
    means = np.cumsum(qual) / np.arange(1, len(qual) + 1)
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]  # a threshold keeps every image tied with it
    need = min(min_kept, len(conf))
    usable = np.flatnonzero(last_of_tie & (np.arange(len(conf)) + 1 >= need))
    passing = usable[means[usable] >= precision]
    if not len(passing):
        best = usable[np.argmax(means[usable])]
        raise ValueError(f"precision={precision:g}: no confidence threshold reaches it on the OOF (best {means[best]:.3f}, keeping "
                         f"{best + 1} of {len(conf)} images at confidence >= {conf[best]:.3f}); ask for a lower precision")
    i = passing[-1]
    return Threshold(value=float(conf[i]), precision=float(means[i]), kept=int(i + 1), total=len(conf))


def precision_curve(confidence: np.ndarray, quality: np.ndarray, points: int = 10) -> list[dict[str, float]]:
    """OOF precision against the share kept, at ``points`` thresholds (every tenth of the images by default),
    so a user can see what a stricter or looser ``precision`` would keep."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    conf, qual = np.asarray(confidence, np.float64)[order], np.asarray(quality, np.float64)[order]
    means = np.cumsum(qual) / np.arange(1, len(qual) + 1)
    curve = []
    for share in np.linspace(1, 1 / points, points):
        i = max(int(np.ceil(share * len(conf))) - 1, 0)
        i = int(np.flatnonzero(conf == conf[i])[-1])  # a threshold keeps every image tied with it
        curve.append({"threshold": float(conf[i]), "precision": float(means[i]), "kept": i + 1})
    return curve
