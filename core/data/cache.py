"""Decoded, resized images and masks on disk, read once per data set and training size.

A study's trials and folds all train on the same images at a handful of sizes; decoding every JPEG
again in every trial (and every fold, and every worker) is the slowest part of a small trial. Here
the images and masks at one size are decoded once into two memory-mapped uint8 ``.npy`` files under
the study's ``cache/`` folder (the name is ``core/contract.py``'s), keyed by a hash of the file
list, the files' sizes and mtimes, the labels and the size, so a changed file makes a new cache.

Building is safe when several trials start at once: one holds a lock file while it builds under a
temp name and renames; the others wait on the lock and then open what it wrote. A tqdm bar shows it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.contract import DamagedFile, open_array
from core.data.formats import SegmentationData
from core.preprocess import resize_image, resize_masks


def cache_key(data: SegmentationData, ids: list[str], size: tuple[int, int]) -> str:
    """A hash of everything the cached arrays depend on: files (name, size, mtime), labels, size."""
    digest = hashlib.sha256()
    digest.update(f"{data.format}|{data.num_classes}|{data.order}|{data.mask_mode}|{size}".encode())
    for image_id in ids:
        for path in (data.image_path(image_id), data.mask_files.get(image_id)):
            if path is not None:
                stat = os.stat(path)
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        for c in range(data.num_classes):
            digest.update(f"{c}:{data.rles.get((image_id, c), '')}\n".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DiskCache:
    """The images (N, h, w, 3) and masks (N, C, h, w) of ``ids`` at ``size``, memory-mapped read-only.

    Pickles as its paths (a DataLoader worker opens the maps itself instead of receiving a copy).
    """

    def __init__(self, folder: Path, data: SegmentationData, ids: list[str], size: tuple[int, int], masks: bool = True) -> None:
        self.ids = list(ids)
        self.index = {image_id: i for i, image_id in enumerate(self.ids)}
        key = cache_key(data, self.ids, size)
        stem = f"{size[0]}x{size[1]}-{key}"
        self.images_path = Path(folder) / f"{stem}-images.npy"
        # masks=False (classification trials): images only; the masks file then holds one empty plane each
        self.masks_path = Path(folder) / (f"{stem}-masks.npy" if masks else f"{stem}-nomasks.npy")
        self.with_masks = masks
        self.shapes = ((len(ids), *size, 3), (len(ids), data.num_classes if masks else 1, *(size if masks else (1, 1))))
        if not self._valid():
            with _locked(Path(folder) / f"{stem}.lock"):
                if not self._valid():  # another trial may have built it while we waited
                    self._build(data, size)
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    def _valid(self) -> bool:
        try:
            open_array(self.images_path, self.shapes[0])
            open_array(self.masks_path, self.shapes[1])
        except (FileNotFoundError, DamagedFile):
            return False
        return True

    def _build(self, data: SegmentationData, size: tuple[int, int]) -> None:
        tmp = [p.with_name(f".{p.name}.tmp-{os.getpid()}") for p in (self.images_path, self.masks_path)]
        try:
            images = np.lib.format.open_memmap(tmp[0], mode="w+", dtype=np.uint8, shape=self.shapes[0])
            masks = np.lib.format.open_memmap(tmp[1], mode="w+", dtype=np.uint8, shape=self.shapes[1])
            for i, image_id in enumerate(tqdm(self.ids, desc=f"caching images at {size[1]}x{size[0]}", unit="img", disable=None)):
                image = data.read_image(image_id)
                images[i] = resize_image(image, size)
                if self.with_masks:
                    masks[i] = resize_masks(data.masks(image_id, image.shape[:2]), size)
            images.flush()
            masks.flush()
            del images, masks
            os.replace(tmp[1], self.masks_path)  # masks first: the images file's presence means both are there
            os.replace(tmp[0], self.images_path)
        finally:
            for path in tmp:
                path.unlink(missing_ok=True)

    def get(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The resized RGB image (h, w, 3) and masks (C, h, w) of one image (copies: callers may augment)."""
        if self._images is None:
            self._images = open_array(self.images_path, self.shapes[0])
            self._masks = open_array(self.masks_path, self.shapes[1])
        i = self.index[image_id]
        return np.array(self._images[i]), np.array(self._masks[i])  # type: ignore[index]

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None, "_masks": None}
