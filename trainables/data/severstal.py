"""Severstal: train.csv in either layout, train_images/, optional test_images/ + sample_submission.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainables.data.formats import SegmentationData, register_format
from trainables.data.images import image_shape, list_images
from trainables.data.rle import parse_rle

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


@register_format("severstal")
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
