"""``carvana``: train/ + ``train_masks.csv`` (``img,rle_mask``, row-major RLE) or ``train_masks/*_mask.gif``.

One class (the car), large images (1918 x 1280). Predict writes the ``img,rle_mask`` submission of the
given sample, RLE row-major (left to right, then top to bottom), 1-based ``start length`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.folder import FolderOptions, read_mask_folder
from core.data.formats import DataFormat, SegmentationData, option, read_label_csv, register_format
from core.data.images import image_shape, list_images
from core.data.problems import Problems
from core.data.rle import parse_rle

COLUMNS = ("img", "rle_mask")


@dataclass(frozen=True)
class CarvanaOptions:
    image_dir: str = option("train", "training image subfolder of data.root")
    classes: int = option(1, "must be 1: the car")

    def __post_init__(self) -> None:
        if self.classes != 1:
            raise ValueError(f"data.classes must be 1 for carvana (one class: the car), got {self.classes!r}")


def read_carvana_csv(csv_path: Path, image_dir: Path, problems: Problems) -> SegmentationData:
    frame = read_label_csv(csv_path, ",".join(COLUMNS), skip_blank_lines=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{csv_path}: expected columns {','.join(COLUMNS)}, got {','.join(map(str, frame.columns))} (missing {missing[0]})")
    names = set(list_images(image_dir))
    rles: dict[tuple[str, int], str] = {}
    seen: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for i, (image_id, rle) in enumerate(zip(frame["img"], frame["rle_mask"], strict=True)):
        where = f"{csv_path}:{i + 2}"
        if not image_id and not rle:
            continue  # a blank line
        if image_id in seen:
            problems.bad(where, f"image {image_id} listed twice (first on line {seen[image_id]})", image_id)
            continue
        seen[image_id] = i + 2
        if image_id not in names:
            problems.bad(where, f"image {image_id} not found in {image_dir}", "", FileNotFoundError)
            continue
        sizes[image_id] = image_shape(image_dir / image_id)
        try:
            parse_rle(rle, sizes[image_id][0] * sizes[image_id][1])
        except ValueError as error:
            problems.bad(where, f"bad rle_mask for {image_id}: {error}", image_id)
            continue
        if rle.strip():
            rles[(image_id, 0)] = rle.strip()
    skipped = problems.skipped_images
    ids = sorted(i for i in seen if i in sizes and i not in skipped)
    for name in sorted(names - set(seen)):
        problems.bad(image_dir / name, f"image without a row in {csv_path.name}", name)
    if not ids:
        raise ValueError(f"{csv_path}: empty data set (no row names an image in {image_dir})")
    values, counts = np.unique(np.array([sizes[i] for i in ids]), axis=0, return_counts=True)
    return SegmentationData(
        image_dir=image_dir,
        image_ids=ids,
        num_classes=1,
        shape=tuple(int(v) for v in values[int(counts.argmax())]),  # type: ignore[arg-type]
        rles={k: v for k, v in rles.items() if k[0] in set(ids)},
        order="C",
        format="carvana",
        sizes={i: sizes[i] for i in ids},
        sources={i: f"{csv_path}:{seen[i]}" for i in ids},
    )


@register_format
class Carvana(DataFormat):
    name = "carvana"
    description = "train/ + train_masks.csv (img,rle_mask; row-major RLE) or train_masks/*_mask.gif; one class"
    Options = CarvanaOptions
    order = "C"
    submission = "carvana"

    def read(self, root: Path, options: CarvanaOptions, problems: Problems) -> SegmentationData:
        root = Path(root)
        image_dir = root / options.image_dir
        if not image_dir.is_dir():
            raise FileNotFoundError(f"{image_dir}: image folder not found (expected Kaggle's train/)")
        csv_path, mask_dir = root / "train_masks.csv", root / "train_masks"
        if csv_path.is_file():
            data = read_carvana_csv(csv_path, image_dir, problems)
        elif mask_dir.is_dir():
            folder = FolderOptions(classes=1, mode="binary", mask_suffix="_mask")
            data = read_mask_folder(root, image_dir, mask_dir, folder, problems, name="carvana")
        else:
            raise FileNotFoundError(f"{root}: expected train_masks.csv (img,rle_mask) or a train_masks/ folder")
        test_dir, sample = root / "test", root / "sample_submission.csv"
        return SegmentationData(
            **{**data.__dict__, "test_dir": test_dir if test_dir.is_dir() else None,
               "sample_submission": sample if sample.is_file() else None}
        )
