"""An honest estimate of the ensemble's score: select and tune on K-1 parts of the OOF, score on the part left out.

The OOF score of a selection is optimistic: the members, their weights and every post-processing value
were chosen on the very predictions they are scored on. Here the whole selection is repeated K times,
each time without one part's images, and scored on that part; the mean over parts is the estimate.

Which images make a part (``nested.split``):

- ``images`` (the default): each training fold's images dealt at random into K parts, so every part holds
  images of every fold, predicted by every fold model, as the exported ensemble's thresholds meet the
  outputs of the models they were tuned on.
- ``folds``: the training folds themselves. Each part is then predicted by one fold model the tuning
  never saw: it also charges how badly thresholds tuned on some models' outputs transfer to another
  model's, which the export (tuned on every fold model's OOF) does not pay. With 2 folds that is tuning
  on one model and scoring another: on nine NEU-Seg studies it landed 0.020 below the hidden score of
  one fold model per member on average (up to 0.060), ``images`` 0.007 (BENCHMARKS.md, "Which
  estimate is honest"). Both are pessimistic there: each round tunes on K-1 parts of the images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.metrics import score_masks
from core.postprocess import Tuned, apply_postprocessing
from ensembling.scoring.blend import BlendScorer

NESTED_SPLITS = ("images", "folds")


def outer_parts(folds: np.ndarray, split: str = "images", seed: int = 0) -> np.ndarray:
    """The part of each image for the nested estimate: as many parts as training folds (see the module)."""
    if split not in NESTED_SPLITS:
        raise ValueError(f"nested.split={split}: give one of {', '.join(NESTED_SPLITS)}")
    folds = np.asarray(folds)
    names = np.unique(folds)
    if split == "folds":
        if len(names) < 2:
            raise ValueError("nested.split=folds needs 2 folds or more, and this study has 1 (a holdout); use nested.split=images")
        return folds
    n_parts = max(2, len(names))  # a holdout's one fold is dealt into two parts
    rng = np.random.default_rng(seed)
    parts = np.empty(len(folds), np.int64)
    offset = 0
    for fold in names:
        rows = rng.permutation(np.flatnonzero(folds == fold))
        parts[rows] = (np.arange(len(rows)) + offset) % n_parts  # dealt on from where the last fold stopped: parts differ by one image at most
        offset += len(rows)
    return parts


def nested_words(split: str | None) -> str:
    """How the nested estimate's rounds were made, for the printout."""
    if split == "images":
        return "selected and tuned on K-1 parts of every fold's images, scored on the part left out"
    return "selected and tuned on K-1 folds, scored on the fold left out"


@dataclass
class Nested:
    fold_scores: list[float]

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores))


def held_out_score(scorer: BlendScorer, counts: dict[int, int], tuned: Tuned, image_shape: tuple[int, int]) -> float:
    """The blend ``counts`` post-processed by ``tuned``, exactly as the predictor would, on the scorer's rows."""
    post = tuned.to_manifest(image_shape)
    preds, truths = [], []
    for probs, truth, classifier in scorer.blend_chunks(counts):
        for i in range(len(probs)):
            image_probs = None if classifier is None else classifier[i]
            preds.append(apply_postprocessing(probs[i] / 255.0, post, image_probs))
        truths.append(truth)
    return score_masks(np.stack(preds), np.concatenate(truths), tuned.metric)


def nested_estimate(parts: np.ndarray, select_on: Callable[[np.ndarray], tuple[dict[int, int], Tuned, BlendScorer]], score_on: Callable[[np.ndarray], BlendScorer], image_shape: tuple[int, int]) -> Nested:
    """``select_on(rows)`` runs the whole selection on those images; each held-out part (``outer_parts``) scores its result."""
    scores = []
    for part in sorted(set(parts.tolist())):
        counts, tuned, _ = select_on(np.flatnonzero(parts != part))
        scores.append(held_out_score(score_on(np.flatnonzero(parts == part)), counts, tuned, image_shape))
    return Nested(scores)
