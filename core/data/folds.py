"""K folds, stratified on which classes each image has, fixed once per study.

Out-of-fold ensembling is only valid when every trial was validated on the same split, so a study
writes ``folds.csv`` once and every trial reads it back; a study asked for a different split is
refused rather than silently re-split.

A split may hold out only a share of the images (``oof_share`` below 1): the rest are marked
``TRAIN_ONLY`` (fold -1) in ``folds.csv``. Every fold model and every refit trains on them; none is ever
validated or predicted out of fold on them. ``folds=1`` with ``oof_share=0.1`` is a plain holdout: one
model trains on 90 % of the images and the post-processing is tuned on the 10 % it never saw. A time
budget too short for K-fold models and a refit chooses it (``search/planner.py``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedKFold

from core.atomic import write_with

TRAIN_ONLY = -1  # folds.csv's fold of an image that every fold model trains on and none validates on
HOLDOUT_SHARE = 0.1  # a holdout keeps this share of the images out of training (at least HOLDOUT_MIN of them)
HOLDOUT_MIN = 30  # images: fewer would leave too few to tune thresholds and minimum areas on


def holdout_share(images: int) -> float:
    """The share a holdout validates on: HOLDOUT_SHARE of ``images``, raised so at least HOLDOUT_MIN images (never above half)."""
    return round(min(0.5, max(HOLDOUT_SHARE, HOLDOUT_MIN / max(images, 1))), 4)


def make_folds(
    image_ids: list[str], labels: np.ndarray, n_folds: int, seed: int, single_label: bool = False, oof_share: float = 1.0
) -> pd.DataFrame:
    """Assign each image a fold so every fold has about the same share of each class.

    ``single_label`` (classification: one class per image): sklearn's StratifiedKFold on the class.
    ``oof_share`` below 1: the images are split stratified into about ``n_folds / oof_share`` parts, the
    first ``n_folds`` keep their numbers and the rest become TRAIN_ONLY (``n_folds`` may then be 1).
    """
    if not 0 < oof_share <= 1:
        raise ValueError(f"oof_share must be in (0, 1], got {oof_share}")
    if n_folds < (1 if oof_share < 1 else 2):
        raise ValueError(f"folds must be >= 2 for out-of-fold predictions (or 1 with oof_share below 1: a holdout), got {n_folds}")
    parts = n_folds if oof_share >= 1 else max(n_folds + 1, round(n_folds / oof_share))
    if len(image_ids) < parts:
        raise ValueError(f"folds ({n_folds}) must not exceed the number of images ({len(image_ids)})"
                         if oof_share >= 1 else f"folds={n_folds} with oof_share={oof_share} needs {parts} parts, more than the {len(image_ids)} images")
    split = _stratified(image_ids, labels, parts, seed, single_label)
    split.loc[split["fold"] >= n_folds, "fold"] = TRAIN_ONLY
    return split


def _stratified(image_ids: list[str], labels: np.ndarray, n_folds: int, seed: int, single_label: bool) -> pd.DataFrame:
    labels = np.asarray(labels)
    if labels.ndim != 2 or len(labels) != len(image_ids):
        raise ValueError(f"labels must have shape (images, classes) = ({len(image_ids)}, C), got {labels.shape}")
    repeated = [image_id for image_id, n in Counter(image_ids).items() if n > 1]
    if repeated:
        raise ValueError(
            f"image ids must be unique (each image goes to exactly one fold), {repeated[0]!r} appears more than once"
        )
    fold = np.empty(len(image_ids), np.int64)
    if single_label:
        classes = labels.argmax(axis=1)
        counts = np.bincount(classes)
        smallest = int(counts[counts > 0].min()) if len(classes) else 0
        if smallest < n_folds:
            raise ValueError(f"folds ({n_folds}) must not exceed the images of the rarest class ({smallest})")
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, val) in enumerate(splitter.split(np.zeros(len(image_ids)), classes)):
            fold[val] = k
        return pd.DataFrame({"image_id": image_ids, "fold": fold})
    # The stratifier also balances the clean images when "no defect" is one more label.
    clean = (labels.sum(axis=1) == 0).astype(labels.dtype)[:, None]
    targets = np.concatenate([labels, clean], axis=1)
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(image_ids)), targets)):
        fold[val] = k
    return pd.DataFrame({"image_id": image_ids, "fold": fold})


def write_folds(path: str | Path, folds: pd.DataFrame) -> None:
    write_with(path, lambda tmp: folds.to_csv(tmp, index=False))


def read_folds(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: folds file not found (the study writes it before any trial)")
    # keep_default_na=False: an image named "NA" or "null" is an id, not a missing value.
    folds = pd.read_csv(path, dtype={"image_id": str, "fold": np.int64}, keep_default_na=False)
    if list(folds.columns) != ["image_id", "fold"]:
        raise ValueError(f"{path}: expected columns image_id,fold, got {','.join(folds.columns)}")
    return folds


def folds_hash(folds: pd.DataFrame) -> str:
    """A short fingerprint of the split; an ensemble records it so it is never mixed with another."""
    text = "\n".join(f"{i},{k}" for i, k in zip(folds["image_id"], folds["fold"], strict=True))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
