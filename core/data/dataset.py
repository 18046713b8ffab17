"""A torch dataset over a study's images at the training size, read from the study's disk cache.

``study_cache`` decodes every image of the study once per training size into memory-mapped files
(``core/data/cache.py``) that every trial, fold and DataLoader worker shares; ``make_cache`` is
the older per-trial in-memory cache, kept for callers without a study folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from core.data.cache import DiskCache
from core.data.formats import SegmentationData
from core.preprocess import resize_image, resize_masks, to_tensor

if TYPE_CHECKING:
    from core.data.study import Study

CACHE_LIMIT_BYTES = 2 * 1024**3  # decode each image once per trial while the set fits in 2 GiB


def make_cache(n_images: int, size: tuple[int, int], classes: int) -> dict | None:
    """An empty decode cache when the resized set fits in CACHE_LIMIT_BYTES, else None (no cache).

    With DataLoader workers (train.num_workers > 0) each worker fills its own copy.
    """
    per_image = size[0] * size[1] * (3 + classes)
    return {} if per_image * n_images <= CACHE_LIMIT_BYTES else None


def study_cache(study: Study, size: tuple[int, int]) -> DiskCache:
    """The study's decoded images and masks at ``size``, built on first use (by whichever trial is first)."""
    return DiskCache(study.folder.cache_dir, study.data, study.all_image_ids, size)


def augment_pair(augment: A.Compose | None, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same augmentation for an image and its masks (C, h, w); labels (K,) pass unchanged."""
    if augment is None:
        return image, target
    if target.ndim == 3:
        out = augment(image=image, mask=target.transpose(1, 2, 0))
        return out["image"], out["mask"].transpose(2, 0, 1)
    return augment(image=image)["image"], target


class SegmentationDataset(Dataset):
    """(image tensor (3, h, w), mask tensor (C, h, w)) pairs, resized from the source once."""

    def __init__(
        self,
        data: SegmentationData,
        image_ids: list[str],
        size: tuple[int, int],
        augment: A.Compose | None = None,
        cache: dict[str, tuple[np.ndarray, np.ndarray]] | DiskCache | None = None,
    ) -> None:
        self.data = data
        self.image_ids = list(image_ids)
        self.size = size
        self.augment = augment
        # Datasets of one trial share a cache, so each image is decoded once whatever the folds.
        self._cache = cache

    def __len__(self) -> int:
        return len(self.image_ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized RGB image (h, w, 3) and masks (C, h, w), both uint8."""
        image_id = self.image_ids[index]
        if isinstance(self._cache, DiskCache):
            return self._cache.get(image_id)
        if self._cache is not None and image_id in self._cache:
            return self._cache[image_id]
        image = self.data.read_image(image_id)
        masks = self.data.masks(image_id, image.shape[:2])
        item = resize_image(image, self.size), resize_masks(masks, self.size)
        if self._cache is not None:
            self._cache[image_id] = item
        return item

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized image and its truth, unaugmented: masks (C, h, w) uint8 0/1."""
        return self.load(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, masks = augment_pair(self.augment, *self.pair(index))
        return to_tensor(image[None])[0], torch.from_numpy(np.ascontiguousarray(masks)).float()


class ClassificationDataset(Dataset):
    """(image tensor (3, h, w), labels (K,) float 0/1) pairs; the same signature as SegmentationDataset.

    Images come from the study's disk cache (built images-only, ``DiskCache(masks=False)``) or are
    decoded and resized here; labels are the data's one-hot or multi-hot rows."""

    def __init__(
        self,
        data: SegmentationData,
        image_ids: list[str],
        size: tuple[int, int],
        augment: A.Compose | None = None,
        cache: dict[str, np.ndarray] | DiskCache | None = None,
    ) -> None:
        self.data = data
        self.image_ids = list(image_ids)
        self.size = size
        self.augment = augment
        self._cache = cache
        row = {image_id: i for i, image_id in enumerate(data.image_ids)}
        self.labels = data.labels()[[row[i] for i in self.image_ids]].astype(np.float32)

    def __len__(self) -> int:
        return len(self.image_ids)

    def load(self, index: int) -> np.ndarray:
        image_id = self.image_ids[index]
        if isinstance(self._cache, DiskCache):
            return self._cache.get(image_id)[0]
        if self._cache is not None and image_id in self._cache:
            return self._cache[image_id]
        image = resize_image(self.data.read_image(image_id), self.size)
        if self._cache is not None:
            self._cache[image_id] = image
        return image

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized image and its truth, unaugmented: labels (K,) float32 0/1."""
        return self.load(index), self.labels[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = augment_pair(self.augment, *self.pair(index))
        return to_tensor(image[None])[0], torch.from_numpy(labels)
