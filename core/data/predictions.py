"""Writing predictions in a format's own layout (pure code: masks in, files out, nothing half-written).

- ``carvana``: the ``img,rle_mask`` submission of the given sample, row-major RLE, the sample's row order;
- ``png`` (the folder format): one PNG mask per image, named ``<stem>.png`` (``<stem><mask_suffix>.png``),
  in the training masks' convention: ``binary`` 0/255, ``index`` 0 background and k for class k (a pixel
  two classes claim takes the larger class); plus, when a sample is given, a CSV of row-major RLE in the
  sample's layout (``ImageId,EncodedPixels`` per image, or ``ImageId,ClassId,EncodedPixels`` per class).
- ``severstal``: ``ensembling/runtime/submission.py`` (both Severstal layouts).

The masks are (C, H, W) 0/1 per image at the image's own size. Every writer validates before it writes
and writes beside the target, then renames.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

from core.atomic import write_with
from core.data.images import image_shape, list_images, read_rgb
from core.data.rle import rle_encode, validate_rle
from core.data.table import Table, read_csv_table

CARVANA_COLUMNS = ("img", "rle_mask")


def read_carvana_sample(path: Path) -> list[str]:
    """The image ids of a Carvana sample submission, in its order; checked for columns and repeats."""
    frame = read_csv_table(path)
    if list(frame.columns) != list(CARVANA_COLUMNS):
        raise ValueError(f"{path}: expected columns {','.join(CARVANA_COLUMNS)}, got {','.join(map(str, frame.columns))}")
    if not len(frame):
        raise ValueError(f"{path}: the sample lists no image")
    seen: dict[str, int] = {}
    for i, image in enumerate(frame["img"]):
        if image in seen:
            raise ValueError(f"{path}:{i + 2}: image {image} listed twice (first on line {seen[image]})")
        seen[image] = i + 2
    return list(frame["img"])


def carvana_submission(sample_ids: list[str], masks: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, int]]) -> Table:
    """One row per sample image: its class-0 mask as row-major RLE, validated against its size."""
    missing = [i for i in sample_ids if i not in masks]
    if missing:
        raise ValueError(f"no prediction for sample image {missing[0]} ({len(missing)} missing in all)")
    rles = []
    for image_id in sample_ids:
        mask = masks[image_id][0] if masks[image_id].ndim == 3 else masks[image_id]
        if mask.shape != tuple(shapes[image_id]):
            raise ValueError(f"prediction for {image_id} is {mask.shape}, the image is {tuple(shapes[image_id])}")
        rle = rle_encode(mask, "C")
        validate_rle(rle, mask.size)
        rles.append(rle)
    return Table(list(CARVANA_COLUMNS), {"img": sample_ids, "rle_mask": rles})


def write_csv(frame: Table, path: Path) -> None:
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def mask_image(masks: np.ndarray, mode: str) -> np.ndarray:
    """(C, H, W) 0/1 masks as one uint8 mask image in the training convention."""
    if mode == "binary":
        return (masks[0] != 0).astype(np.uint8) * 255
    if mode != "index":
        raise ValueError(f"mask mode must be binary or index, got {mode!r}")
    out = np.zeros(masks.shape[1:], np.uint8)
    for c in range(masks.shape[0]):  # later (larger) classes win where two overlap
        out[masks[c] != 0] = c + 1
    return out


def write_png_masks(out_dir: Path, predictions: Iterable[tuple[str, np.ndarray]], mode: str, suffix: str = "") -> list[Path]:
    """PNG masks into ``out_dir``: built in a temp folder beside it and renamed into place, so a
    reader never sees half the masks; an existing non-empty ``out_dir`` is refused, not mixed into."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir}: output folder exists and is not empty; name a new folder")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written = []
    try:
        for image_id, masks in predictions:
            name = f"{Path(image_id).stem}{suffix}.png"
            if not cv2.imwrite(str(tmp / name), mask_image(masks, mode)):
                raise OSError(f"{tmp / name}: could not write the PNG")
            written.append(out_dir / name)
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def folder_rle_csv(sample: Path, masks: Mapping[str, np.ndarray]) -> Table:
    """A CSV of row-major RLE in the sample's layout: ``ImageId,EncodedPixels`` (class 1, one row per
    image) or ``ImageId,ClassId,EncodedPixels`` (1-based classes), the sample's rows and order."""
    frame = read_csv_table(sample)
    columns = list(frame.columns)
    if "ImageId" not in columns or "EncodedPixels" not in columns:
        raise ValueError(f"{sample}: expected columns ImageId,EncodedPixels or ImageId,ClassId,EncodedPixels, got {','.join(columns)}")
    rles = []
    for i, row in enumerate(frame.rows()):
        image_id = row[columns.index("ImageId")]
        if image_id not in masks:
            raise ValueError(f"{sample}:{i + 2}: no prediction for image {image_id}")
        class_id = int(row[columns.index("ClassId")]) if "ClassId" in columns else 1
        if not 1 <= class_id <= masks[image_id].shape[0]:
            raise ValueError(f"{sample}:{i + 2}: ClassId must be in 1..{masks[image_id].shape[0]}, got {class_id}")
        rles.append(rle_encode(masks[image_id][class_id - 1], "C"))
    frame.data["EncodedPixels"] = rles
    return frame


MaskFunction = Callable[[list[np.ndarray]], Iterable[np.ndarray]]


def _predict_all(images: Path, ids: list[str], masks_for: MaskFunction, batch_size: int) -> dict[str, np.ndarray]:
    """Masks per image at its own size; images of one size are batched together."""
    for image_id in ids:
        if not (images / image_id).is_file():
            raise FileNotFoundError(f"{images / image_id}: image {image_id} not found")
    by_shape: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id in ids:
        by_shape[image_shape(images / image_id)].append(image_id)
    out: dict[str, np.ndarray] = {}
    for group in by_shape.values():
        for i in range(0, len(group), batch_size):
            batch = group[i : i + batch_size]
            out.update(zip(batch, masks_for([read_rgb(images / b) for b in batch]), strict=True))
    return out


def predict_into(
    data: Mapping[str, str], images: Path, sample: Path | None, out: Path, masks_for: MaskFunction, batch_size: int = 8
) -> int:
    """Predict and write in the study's format (``data`` is the manifest's ``data`` entry); returns rows/files.

    carvana: ``out`` is the submission CSV (a sample is required); folder: ``out`` is a new folder of PNG
    masks, and with a sample ``<out>/submission.csv`` of row-major RLE is written too.
    """
    fmt = data.get("format")
    if fmt == "carvana":
        if sample is None:
            raise ValueError("carvana needs sample=sample_submission.csv (img,rle_mask) to know which images to predict")
        ids = read_carvana_sample(sample)
        masks = _predict_all(images, ids, masks_for, batch_size)
        frame = carvana_submission(ids, masks, {i: m.shape[-2:] for i, m in masks.items()})
        write_csv(frame, out)
        print(f"Wrote {out}: {len(frame)} rows, {sum(1 for r in frame['rle_mask'] if r)} with a mask")
        return len(frame)
    if fmt == "folder":
        ids = list_images(images) if sample is None else list(dict.fromkeys(read_csv_table(sample)["ImageId"]))
        masks = _predict_all(images, ids, masks_for, batch_size)
        frame = folder_rle_csv(sample, masks) if sample is not None else None  # checked before anything is written
        written = write_png_masks(out, masks.items(), str(data.get("mask_mode", "binary")))
        if frame is not None:
            write_csv(frame, out / "submission.csv")
        print(f"Wrote {len(written)} {data.get('mask_mode')} PNG masks into {out}" + (f" and {out / 'submission.csv'}" if frame is not None else ""))
        return len(written)
    raise ValueError(f"data format {fmt!r} has no prediction writer here (severstal and synthetic: ensembling.runtime.submission)")
