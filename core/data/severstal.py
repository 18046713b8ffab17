"""Severstal: train.csv in either layout, train_images/, optional test_images/ + sample_submission.csv."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.data.formats import DataFormat, SegmentationData, option, read_label_csv, register_format
from core.data.images import image_shape, list_images
from core.data.problems import Problems
from core.data.rle import parse_rle

if TYPE_CHECKING:
    import pandas as pd  # read_label_csv imports it when a file is read: --help and the kernel go without

SEVERSTAL_LAYOUTS = (("ImageId", "ClassId", "EncodedPixels"), ("ImageId_ClassId", "EncodedPixels"))


def read_label_rows(csv_path: Path) -> pd.DataFrame:
    """Read train.csv in either layout into columns ImageId, ClassId (int), EncodedPixels, line."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: label file not found (expected a Severstal train.csv)")
    # Blank lines are kept while numbering, so an error names the line an editor shows, then dropped.
    frame = read_label_csv(csv_path, " or ".join(",".join(layout) for layout in SEVERSTAL_LAYOUTS), skip_blank_lines=False)
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


def read_severstal(root: str | Path, num_classes: int = 4, problems: Problems | None = None) -> SegmentationData:
    """Read a Severstal folder as Kaggle gives it: train.csv, train_images/, maybe test_images/.

    Training images are those in train_images/ (the final layout lists defective images only)
    together with any the CSV names; a row naming a missing image is an error. Images may have any
    size: each RLE is checked against its own image's size.
    """
    problems = problems if problems is not None else Problems()
    root = Path(root)
    csv_path = root / "train.csv"
    rows = read_label_rows(csv_path)
    image_dir = root / "train_images"
    ids = set(list_images(image_dir))
    rles: dict[tuple[str, int], str] = {}
    seen: dict[tuple[str, int], int] = {}  # pair -> line, empty rows included, to report duplicates
    sizes: dict[str, tuple[int, int]] = {}
    sources: dict[str, str] = {}
    for image_id, class_id, rle, line in rows.itertuples(index=False):
        where = f"{csv_path}:{line}"
        if not 1 <= class_id <= num_classes:
            problems.bad(where, f"ClassId must be in 1..{num_classes}, got {class_id}", image_id)
            continue
        if image_id not in ids:
            problems.bad(where, f"image {image_id} not found in {image_dir}", "", FileNotFoundError)
            continue
        if (image_id, class_id) in seen:
            problems.bad(
                where,
                f"second row for {image_id} class {class_id} (first on line {seen[image_id, class_id]}); "
                "expected one row per pair",
                image_id,
            )
            continue
        seen[image_id, class_id] = line
        sources.setdefault(image_id, where)
        if not rle.strip():
            continue
        if image_id not in sizes:
            try:
                sizes[image_id] = image_shape(image_dir / image_id)
            except (OSError, ValueError) as error:
                problems.bad(where, f"image {image_id} is not readable ({error})", image_id)
                continue
        height, width = sizes[image_id]
        try:
            parse_rle(rle, height * width)
        except ValueError as error:
            problems.bad(where, f"bad EncodedPixels for {image_id} class {class_id}: {error}", image_id)
            continue
        rles[(image_id, class_id - 1)] = rle
    skipped = problems.skipped_images
    image_ids = sorted(ids - skipped)
    rles = {key: rle for key, rle in rles.items() if key[0] not in skipped}
    if not image_ids:
        raise ValueError(f"{image_dir}: no images (expected .jpg or .png files)")
    for image_id in image_ids:  # headers only: the most common size is the training size's reference
        if image_id not in sizes:
            with contextlib.suppress(OSError, ValueError):  # decoded (and reported by file) at prepare
                sizes[image_id] = image_shape(image_dir / image_id)
    shape = common_shape(sizes, image_dir / image_ids[0])
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
        format="severstal",
        sizes={k: v for k, v in sizes.items() if k not in skipped},
        sources=sources,
    )


def common_shape(sizes: dict[str, tuple[int, int]], fallback: Path) -> tuple[int, int]:
    """The most common image size (the training size is a scale of it); the first image's if none known."""
    if not sizes:
        return image_shape(fallback)
    values, counts = np.unique(np.array(list(sizes.values())), axis=0, return_counts=True)
    height, width = values[int(counts.argmax())]
    return int(height), int(width)


@dataclass(frozen=True)
class SeverstalOptions:
    classes: int = option(4, "number of defect classes (ClassId 1..classes)")

    def __post_init__(self) -> None:
        if not isinstance(self.classes, int) or self.classes < 1:
            raise ValueError(f"data.classes must be an integer >= 1, got {self.classes!r}")


@register_format
class Severstal(DataFormat):
    name = "severstal"
    description = "train.csv (ImageId,ClassId,EncodedPixels or ImageId_ClassId,EncodedPixels; column-major RLE) + train_images/"
    Options = SeverstalOptions
    order = "F"
    submission = "severstal"

    def read(self, root: Path, options: SeverstalOptions, problems: Problems) -> SegmentationData:
        return read_severstal(root, options.classes, problems)
