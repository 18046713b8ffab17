"""Segmentation data sets, read from the formats contests ship, behind one registry.

Every format reads into a :class:`SegmentationData`: the training images (sorted ids), the
non-empty RLE of each image-class pair, and the pixel order of its RLE. Labels are checked once,
when read, so a broken row is reported by file and line before any trial starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from trainables.registry import Registry
from trainables.rle import parse_rle, rle_decode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8; a missing or unreadable file is a one-line error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image (expected a JPEG or PNG file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    with Image.open(path) as image:
        width, height = image.size
    return height, width


def list_images(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Severstal: train.csv in either layout, train_images/, optional test_images/ + sample_submission.csv

SEVERSTAL_LAYOUTS = (("ImageId", "ClassId", "EncodedPixels"), ("ImageId_ClassId", "EncodedPixels"))


def read_label_rows(csv_path: Path) -> pd.DataFrame:
    """Read train.csv in either layout into columns ImageId, ClassId (int), EncodedPixels, line."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: label file not found (expected a Severstal train.csv)")
    # Blank lines are kept while numbering, so an error names the line an editor shows, then dropped.
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    blank = (frame == "").all(axis=1)
    frame["line"] = np.arange(len(frame)) + 2  # header is line 1
    frame = frame.loc[~blank].reset_index(drop=True)
    columns = set(frame.columns) - {"line"}
    if {"ImageId", "ClassId", "EncodedPixels"} <= columns:
        pass
    elif {"ImageId_ClassId", "EncodedPixels"} <= columns:
        parts = frame["ImageId_ClassId"].str.extract(r"^(.+)_([^_]+)$")
        if parts[0].isna().any():
            row = frame[parts[0].isna()].iloc[0]
            raise ValueError(
                f"{csv_path}:{row['line']}: ImageId_ClassId must look like '<image>_<class>', "
                f"got {row['ImageId_ClassId']!r}"
            )
        frame["ImageId"], frame["ClassId"] = parts[0], parts[1]
    else:
        expected = " or ".join(",".join(layout) for layout in SEVERSTAL_LAYOUTS)
        found = ",".join(c for c in frame.columns if c != "line")
        raise ValueError(f"{csv_path}: expected columns {expected}, got {found}")
    bad = ~frame["ClassId"].str.fullmatch(r"\d+")
    if bad.any():
        row = frame[bad].iloc[0]
        raise ValueError(f"{csv_path}:{row['line']}: ClassId must be a positive integer, got {row['ClassId']!r}")
    frame["ClassId"] = frame["ClassId"].astype(int)
    return frame[["ImageId", "ClassId", "EncodedPixels", "line"]]


def read_severstal(root: str | Path, num_classes: int = 4) -> SegmentationData:
    """Read a Severstal folder as Kaggle gives it: train.csv, train_images/, maybe test_images/.

    Training images are those in train_images/ (the final layout lists defective images only)
    together with any the CSV names; a row naming a missing image is an error.
    """
    root = Path(root)
    csv_path = root / "train.csv"
    rows = read_label_rows(csv_path)
    image_dir = root / "train_images"
    ids = set(list_images(image_dir))
    rles: dict[tuple[str, int], str] = {}
    seen: dict[tuple[str, int], int] = {}  # pair -> line, empty rows included, to report duplicates
    shape: tuple[int, int] | None = None
    for image_id, class_id, rle, line in rows.itertuples(index=False):
        where = f"{csv_path}:{line}"
        if not 1 <= class_id <= num_classes:
            raise ValueError(f"{where}: ClassId must be in 1..{num_classes}, got {class_id}")
        if image_id not in ids:
            raise FileNotFoundError(f"{where}: image {image_id} not found in {image_dir}")
        if (image_id, class_id) in seen:
            raise ValueError(
                f"{where}: second row for {image_id} class {class_id} (first on line {seen[image_id, class_id]}); "
                "expected one row per pair"
            )
        seen[image_id, class_id] = line
        if not rle.strip():
            continue
        shape = shape or image_shape(image_dir / image_id)
        try:
            parse_rle(rle, shape[0] * shape[1])
        except ValueError as error:
            raise ValueError(f"{where}: bad EncodedPixels for {image_id} class {class_id}: {error}") from None
        rles[(image_id, class_id - 1)] = rle
    image_ids = sorted(ids)
    if not image_ids:
        raise ValueError(f"{image_dir}: no images (expected .jpg or .png files)")
    shape = shape or image_shape(image_dir / image_ids[0])
    test_dir = root / "test_images"
    sample = root / "sample_submission.csv"
    return SegmentationData(
        image_dir=image_dir,
        image_ids=image_ids,
        num_classes=num_classes,
        shape=shape,
        rles=rles,
        order="F",
        test_dir=test_dir if test_dir.is_dir() else None,
        sample_submission=sample if sample.is_file() else None,
    )


# ---------------------------------------------------------------------------------------------
# Registry

FormatReader = Callable[..., SegmentationData]
FORMATS: Registry[FormatReader] = Registry("data format")
register_format = FORMATS.register
list_formats = FORMATS.names
get_format = FORMATS.get


register_format("severstal")(read_severstal)


@register_format("synthetic")
def read_synthetic(root: str | Path, num_classes: int = 4, images: int = 96, seed: int = 0) -> SegmentationData:
    """The built-in synthetic steel set, generated into ``root`` once (a cache) and read as Severstal.

    Images have Severstal's own size (256 x 1600), so the default run exercises the full-size path.
    """
    from trainables.synthetic import write_synthetic

    if num_classes != 4:
        raise ValueError(f"data.classes must be 4 for the synthetic steel set, got {num_classes}")
    write_synthetic(root, n_train=images, height=256, width=1600, seed=seed)
    return read_severstal(root, num_classes)
