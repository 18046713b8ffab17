"""Segmentation data sets, read from the formats contests ship, behind one registry.

One module per format (``severstal.py``, ``synthetic.py``) registers its reader here with
``@register_format(name)``; ``trainables/data/__init__.py`` imports them, so a new format is one module
and one import line.

Every format reads into a :class:`SegmentationData`: the training images (sorted ids), the
non-empty RLE of each image-class pair, and the pixel order of its RLE. Labels are checked once,
when read, so a broken row is reported by file and line before any trial starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainables.data.images import read_rgb
from trainables.data.rle import rle_decode
from trainables.registry import Registry


@dataclass(frozen=True)
class SegmentationData:
    """A training set of images with per-class masks stored as RLE strings."""

    image_dir: Path
    image_ids: list[str]
    num_classes: int
    shape: tuple[int, int]  # (height, width) of the images, checked on the first one
    rles: dict[tuple[str, int], str] = field(repr=False)  # (image id, 0-based class) -> non-empty RLE
    order: str = "F"
    test_dir: Path | None = None
    sample_submission: Path | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, image_id: str) -> Path:
        return self.image_dir / image_id

    def read_image(self, image_id: str) -> np.ndarray:
        """The image as an RGB uint8 array (H, W, 3)."""
        return read_rgb(self.image_path(image_id))

    def masks(self, image_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """All class masks of one image, uint8 0/1 of shape (C, H, W)."""
        height, width = shape or self.shape
        out = np.zeros((self.num_classes, height, width), np.uint8)
        for c in range(self.num_classes):
            rle = self.rles.get((image_id, c))
            if rle:
                out[c] = rle_decode(rle, (height, width), self.order)
        return out

    def labels(self) -> np.ndarray:
        """Presence of each class per image, (N, C) 0/1, for stratified folds."""
        index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        out = np.zeros((len(self.image_ids), self.num_classes), np.int64)
        for image_id, c in self.rles:
            out[index[image_id], c] = 1
        return out


# ---------------------------------------------------------------------------------------------
# Registry

FormatReader = Callable[..., SegmentationData]
FORMATS: Registry[FormatReader] = Registry("data format")
register_format = FORMATS.register
list_formats = FORMATS.names
get_format = FORMATS.get

