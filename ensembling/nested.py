"""An honest estimate of the ensemble's score: select and tune on K-1 folds, score on the fold left out.

The OOF score of a selection is optimistic: the members, their weights and every post-processing value
were chosen on the very predictions they are scored on. Here the whole selection is repeated K times,
each time without one fold's images, and scored on that fold; the mean over folds is the estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ensembling.blend import BlendScorer
from trainables.metrics import score_masks
from trainables.postprocess import Tuned, apply_postprocessing


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


def nested_estimate(folds: np.ndarray, select_on: Callable[[np.ndarray], tuple[dict[int, int], Tuned, BlendScorer]], score_on: Callable[[np.ndarray], BlendScorer], image_shape: tuple[int, int]) -> Nested:
    """``select_on(rows)`` runs the whole selection on those images; each held-out fold scores its result."""
    scores = []
    for fold in sorted(set(folds.tolist())):
        counts, tuned, _ = select_on(np.flatnonzero(folds != fold))
        scores.append(held_out_score(score_on(np.flatnonzero(folds == fold)), counts, tuned, image_shape))
    return Nested(scores)
