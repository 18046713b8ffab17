"""Extra training targets: ``<study>/extra/<name>/``, named by the trial key ``train.extra``.

A folder of extra targets adds to each fold's TRAINING set, never to its validation set: fold k trains
on its own training images (their truth, or the truth mixed with a teacher's soft targets by ``alpha``)
plus the folder's extra images (pseudo-labelled test images) with the folder's fold-k targets. Fold
k's validation images, and so the OOF every selection is tuned on, are exactly those of a plain trial.
The refit (``train_all``) trains on every study image with the folder's ``all`` targets.

THE LEAK RULE: everything fold k's model trains on comes from the truth or from fold-k models only.
The writers (``ensembling.pseudo``, ``ensembling.distill``) make fold k's targets with the fold-k models
of the selected ensemble's members, which never saw fold k's validation images; a refit model or
another fold's model did, and would carry their truth into fold k's training and so into the OOF.
Only scalars tuned on the pooled OOF (the ensemble's post-processing, the pseudo-labels' confidence
threshold) are shared by every fold, as the ensemble's own post-processing is. A folder made for
another split (folds hash) is refused.

Layout (names in ``core/contract.py``): ``extra.json`` (written last) says the kind, the folds hash, the
extra images (absolute paths), which of them each fold keeps, and ``alpha``; ``images_<k>.npy`` holds
the extra images' targets of fold k, ``own_<k>.npy`` soft targets of the study's images (folds.csv
order; rows of fold k's validation images are never read), ``*_all.npy`` the refit's. Masks are uint8
(N, C, h, w), round(p * 255) as ``oof.npy``, at any size (resized to the training size when read); image
labels are float16 (N, K) class probabilities. Hard targets are the same arrays holding 0 and 255 (0 and 1).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core.atomic import write_json
from core.contract import CLASS_OOF_DTYPE, CLASSIFICATION, DamagedFile, ExtraFolder, open_array, read_json_file
from core.data.dataset import augment_pair
from core.data.images import read_rgb
from core.preprocess import resize_image, to_tensor

OWN, IMAGES = "own", "images"
WRITERS = ("ensembling.pseudo", "ensembling.distill")  # a folder whose extra.json names one of these is ours to replace


@dataclass(frozen=True)
class ExtraTargets:
    """An opened extra folder, checked against the study it serves."""

    folder: ExtraFolder
    meta: dict[str, Any]
    n_folds: int

    @property
    def images(self) -> list[Path]:
        return [Path(p) for p in self.meta["images"]]

    @property
    def alpha(self) -> float | None:
        return self.meta.get("alpha")

    def _fold(self, fold: int) -> int | None:
        """Fold K (``all_images_run``'s, past the last) is the refit's: the ``all`` targets."""
        return None if fold >= self.n_folds else fold

    def kept(self, fold: int) -> np.ndarray:
        """Indices of the extra images fold ``fold`` trains on."""
        key = "all" if self._fold(fold) is None else str(fold)
        return np.asarray(self.meta["keep"][key], dtype=np.int64)

    def image_targets(self, fold: int) -> np.ndarray | None:
        if not self.meta["images"]:
            return None
        return _open(self.folder.targets(IMAGES, self._fold(fold)), self.meta["kind"])

    def own_targets(self, fold: int) -> np.ndarray | None:
        if self.alpha is None:
            return None
        return _open(self.folder.targets(OWN, self._fold(fold)), self.meta["kind"])

    def dataset(self, base: Dataset, fold: int, rows: np.ndarray, augment: A.Compose | None) -> ExtraDataset:
        """Fold ``fold``'s training set: ``base`` (its own images at ``rows`` of folds.csv) plus the kept extra images."""
        kept = self.kept(fold)
        return ExtraDataset(base, rows, self.own_targets(fold), self.alpha or 0.0, [self.images[i] for i in kept],
                            None if not len(kept) else self.image_targets(fold), kept, augment)


def _open(path: Path, kind: str) -> np.ndarray:
    return open_array(path, dtype=CLASS_OOF_DTYPE if kind == CLASSIFICATION else np.uint8)


def open_extra(study: Any, name: str) -> ExtraTargets:
    """``train.extra=<name>``: the study's ``extra/<name>/``, refused when missing, incomplete or made for another split."""
    folder = study.folder.extra(name)
    key = f"train.extra={name}"
    if not folder.complete:
        have = sorted(p.name for p in study.folder.extra_dir.iterdir() if (p / "extra.json").is_file()) if study.folder.extra_dir.is_dir() else []
        raise ValueError(f"{key}: {folder.root} is not a complete extra folder (no {folder.extra_json.name}); "
                         f"make one with python -m ensembling.pseudo or ensembling.distill (here: {', '.join(have) or 'none'})")
    meta = read_json_file(folder.extra_json)
    if meta.get("folds_hash") != study.folds_hash:
        raise ValueError(f"{key}: its targets were made for another split (folds hash {meta.get('folds_hash')}, the study's "
                         f"{study.folds_hash}); make them again for this study, or they would leak validation images")
    if study.train_only:
        raise ValueError(f"{key}: this study holds out only {len(study.image_ids)} of its {study.training_images} images (oof_share below 1), "
                         "so the rest have no out-of-fold targets to train with; use extra images on a study whose folds cover every image")
    if meta.get("kind") != study.kind:
        raise ValueError(f"{key}: holds {meta.get('kind')} targets, the study is {study.kind}")
    return ExtraTargets(folder, meta, study.n_folds)


class ExtraDataset(Dataset):
    """A fold's own training images (from ``base``), then its extra images; items as ``base`` gives them.

    ``base`` is a SegmentationDataset or ClassificationDataset without augmentation of its own: its
    ``pair(i)`` gives the image and the truth. An own image's target is ``(1 - alpha) * truth + alpha *
    teacher`` when soft own targets are given; an extra image's is its stored target."""

    def __init__(self, base: Dataset, rows: np.ndarray, own: np.ndarray | None, alpha: float, images: list[Path],
                 targets: np.ndarray | None, kept: np.ndarray, augment: A.Compose | None) -> None:
        if len(rows) != len(base):
            raise ValueError(f"{len(rows)} study rows for a base set of {len(base)} images")
        self.base, self.rows, self.own, self.alpha = base, np.asarray(rows), own, alpha
        self.images, self.targets, self.kept = list(images), targets, np.asarray(kept)
        self.size, self.augment = base.size, augment
        self.image_ids = [*base.image_ids, *(str(p) for p in self.images)]
        self._decoded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.base) + len(self.images)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized image (h, w, 3) uint8 and its target in [0, 1] as float32 ((C, h, w) or (K,))."""
        n = len(self.base)
        if index < n:
            image, truth = self.base.pair(index)
            truth = truth.astype(np.float32)
            if self.own is None or self.alpha == 0:
                return image, truth
            teacher = fit_target(self.own[self.rows[index]], truth.shape)
            return image, (1 - self.alpha) * truth + self.alpha * teacher
        j = index - n
        if j not in self._decoded:
            self._decoded[j] = resize_image(read_rgb(self.images[j]), self.size)
        target = self.targets[self.kept[j]]  # type: ignore[index]
        return self._decoded[j], fit_target(target, (target.shape[0], *self.size) if target.ndim == 3 else target.shape)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = augment_pair(self.augment, *self.pair(index))
        return to_tensor(image[None])[0], torch.from_numpy(np.ascontiguousarray(target)).float()

    def __getstate__(self) -> dict[str, Any]:
        """A DataLoader worker gets the memory maps' file names and opens them itself, never a copy of the arrays."""
        state = dict(self.__dict__)
        for key in ("own", "targets"):
            if isinstance(state[key], np.memmap) and state[key].filename:
                state[key] = _Mapped(state[key].filename)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in ("own", "targets"):
            if isinstance(state[key], _Mapped):
                state[key] = np.load(state[key].path, mmap_mode="r")
        self.__dict__.update(state)


@dataclass(frozen=True)
class _Mapped:
    path: str


def fit_target(stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A stored target as float32 in [0, 1] of ``shape``: masks (uint8 0-255) resized bilinearly, labels as they are."""
    values = np.asarray(stored)
    if values.ndim == 1:
        return values.astype(np.float32)
    values = values.astype(np.float32) / 255
    if values.shape[1:] == tuple(shape[1:]):
        return values
    planes = [cv2.resize(plane, (shape[2], shape[1]), interpolation=cv2.INTER_LINEAR) for plane in values]
    return np.stack(planes)


# --- writing ----------------------------------------------------------------------------------------


class ExtraWriter:
    """Writes an extra folder under a temp name, then renames it into place (``commit``); never over a
    folder that ``ensembling.pseudo`` or ``ensembling.distill`` did not write."""

    def __init__(self, folder: ExtraFolder, command: str) -> None:
        check_replaceable(folder)
        self.folder, self.command = folder, command
        self.tmp = ExtraFolder(folder.root.with_name(f".{folder.name}.tmp-{os.getpid()}"))
        shutil.rmtree(self.tmp.root, ignore_errors=True)
        self.tmp.root.mkdir(parents=True)

    def array(self, part: str, fold: int | None, shape: tuple[int, ...], kind: str) -> np.ndarray:
        """A zeroed memory map to fill: ``part`` (own or images) of ``fold`` (None: all)."""
        dtype = CLASS_OOF_DTYPE if kind == CLASSIFICATION else np.uint8
        return np.lib.format.open_memmap(self.tmp.targets(part, fold), mode="w+", dtype=dtype, shape=shape)

    def commit(self, meta: dict[str, Any], files: dict[str, Any] | None = None) -> ExtraFolder:
        """``files`` (name -> JSON) first, ``extra.json`` last, then the rename; an older folder of ours is replaced."""
        for name, data in (files or {}).items():
            write_json(self.tmp.root / name, data)
        write_json(self.tmp.extra_json, {**meta, "written_by": self.command})
        old = self.folder.root.with_name(f".{self.folder.name}.old-{os.getpid()}")
        if self.folder.root.exists():
            os.replace(self.folder.root, old)
        os.replace(self.tmp.root, self.folder.root)
        shutil.rmtree(old, ignore_errors=True)
        return self.folder

    def abort(self) -> None:
        shutil.rmtree(self.tmp.root, ignore_errors=True)


def check_replaceable(folder: ExtraFolder) -> None:
    """A new folder, or one this project's pseudo or distill wrote (its extra.json says so); anything else is refused."""
    root = folder.root
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise ValueError(f"name={folder.name}: {root} exists and is not a folder; choose another name")
    if not root.exists():
        return
    try:
        ours = read_json_file(folder.extra_json).get("written_by") in WRITERS
    except (FileNotFoundError, DamagedFile, AttributeError):
        ours = False
    if not ours:
        raise ValueError(f"name={folder.name}: {root} exists and was not written by ensembling.pseudo or ensembling.distill; "
                         "choose another name, or move that folder away")
