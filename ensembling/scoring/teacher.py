"""The selected ensemble split by fold: fold k's teacher is every member's fold-k model, and nothing else.

This is how ``ensembling.pseudo`` and ``ensembling.distill`` keep the leak rule (``core/data/extra.py``):
fold k's targets are predicted by the fold-k models of the members in ``ensemble.json``, blended with the
ensemble's weights and each member's TTA exactly as the predictor blends them (the same
``Predictor`` / ``ClassPredictor``, handed a manifest whose members keep only their fold-k checkpoint).
A refit model or another fold's model saw fold k's validation images and is never used for fold k.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from ensembling.runtime.class_predictor import ClassPredictor, load_class_predictor
from ensembling.runtime.manifest import Manifest
from ensembling.runtime.predictor import Predictor

FOLD_DIR = re.compile(r"^fold(\d+)$")


def fold_of(checkpoint: str) -> int:
    """The fold of a member checkpoint ``trials/<id>/fold<k>/model.safetensors`` (``core.contract.fold_weights``)."""
    match = FOLD_DIR.match(Path(checkpoint).parent.name)
    if match is None:
        raise ValueError(f"checkpoint {checkpoint}: not a fold model (fold<k>/...); pseudo-labels and teachers need the members' fold models")
    return int(match.group(1))


def fold_manifests(manifest: Manifest, n_folds: int) -> list[Manifest]:
    """One manifest per fold k whose members keep only their fold-k checkpoint; a member missing a fold is refused."""
    if manifest.gate is not None:
        raise ValueError("the ensemble has a classifier gate (select gate=...); select again without gate= to make pseudo-labels or a teacher")
    by_member = []
    for member in manifest.members:
        folds = {fold_of(c): c for c in member.checkpoints}
        missing = [k for k in range(n_folds) if k not in folds]
        if missing:
            raise ValueError(f"member {member.name} has no model of fold(s) {missing}; every member needs all {n_folds} folds (the leak rule)")
        by_member.append(folds)
    return [
        dataclasses.replace(manifest, members=[dataclasses.replace(m, checkpoints=[folds[k]]) for m, folds in zip(manifest.members, by_member, strict=True)])
        for k in range(n_folds)
    ]


class FoldTeacher:
    """Per-fold predictors of a study's selected ensemble; ``probabilities(k, images)`` uses fold k's models only."""

    def __init__(self, study_root: Path, manifest: Manifest, n_folds: int, device: str | None = None) -> None:
        self.manifest = manifest
        self.n_folds = n_folds
        self.kind = manifest.kind
        self.predictors: list[Predictor | ClassPredictor] = [self._predictor(Path(study_root), m, device) for m in fold_manifests(manifest, n_folds)]

    def _predictor(self, root: Path, manifest: Manifest, device: str | None) -> Predictor | ClassPredictor:
        if manifest.is_classification:
            return load_class_predictor(root, manifest, device)
        return Predictor(root, device=device, manifest=manifest)

    def probabilities(self, fold: int, images: list[np.ndarray]) -> np.ndarray:
        """Fold ``fold``'s blended probabilities: masks (N, C, H, W) at the images' size (one size), labels (N, K)."""
        return self.predictors[fold].probabilities(images)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """0/1 decisions as the ensemble makes them: masks after its post-processing, labels after its thresholds."""
        predictor = self.predictors[0]
        if isinstance(predictor, ClassPredictor):
            return predictor.decisions(probs)
        return np.stack([predictor.postprocess(p) for p in probs]) if len(probs) else np.zeros(probs.shape, np.uint8)
