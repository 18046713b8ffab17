"""Severstal-style submission files: read the sample's layout, fill it with RLEs, check, write atomically.

Two layouts exist. The first Severstal release keyed rows by ``ImageId_ClassId`` (``0002cc93b.jpg_1``);
the final one has separate ``ImageId`` and ``ClassId`` columns in any order. The sample submission
decides the layout, the row order and the column order, so an output is always a copy of the sample
with its placeholder ``EncodedPixels`` replaced. Class ids here are the contest's, 1-based.

Only the standard library's ``csv``: the exported kernel runs this with torch, segmentation-models-pytorch,
numpy and OpenCV alone (no pandas). ``validate_submission`` and ``write_submission`` also take a pandas
DataFrame (anything with ``columns``, ``[column]``, ``len`` and ``to_csv``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import write_with
from core.data.rle import validate_rle
from core.data.table import Table, read_csv_table

PIXELS = "EncodedPixels"
PAIR = "ImageId_ClassId"
IMAGE, CLASS = "ImageId", "ClassId"
LAYOUTS = {"pairs": frozenset({PAIR, PIXELS}), "columns": frozenset({IMAGE, CLASS, PIXELS})}
_POSITIVE_INT = re.compile(r"[0-9]+")

Key = tuple[str, int]
IMAGE_ROW = 0  # ClassId 0: the sample lists each image once and every class is to be predicted


@dataclass(frozen=True)
class SampleLayout:
    """What a sample submission fixes: its layout kind, column order and (image, class) row order."""

    kind: str  # "pairs" (ImageId_ClassId) or "columns" (ImageId, ClassId)
    columns: tuple[str, ...]
    keys: list[Key]

    def image_ids(self) -> list[str]:
        """Unique image ids in first-seen order."""
        return list(dict.fromkeys(image for image, _ in self.keys))

    def class_ids(self) -> list[int]:
        return sorted({cls for _, cls in self.keys})

    def for_classes(self, class_ids: list[int]) -> SampleLayout:
        """Expand a per-image sample (ClassId 0 on every row, as Kaggle's final Severstal sample was)
        into one row per image and class, in the sample's image order; other samples are kept."""
        if any(cls != IMAGE_ROW for _, cls in self.keys):
            return self
        keys = [(image, cls) for image in self.image_ids() for cls in class_ids]
        return SampleLayout(kind=self.kind, columns=self.columns, keys=keys)


def _read_csv(path: Path) -> Table:
    return read_csv_table(path)


def _detect_kind(columns: list[str], source: str) -> str:
    for kind, names in LAYOUTS.items():
        if len(columns) == len(names) and set(columns) == names:
            return kind
    raise ValueError(
        f"{source}: expected columns {PAIR},{PIXELS} or {IMAGE},{CLASS},{PIXELS} (any order), got {columns}"
    )


def _class_id(text: str) -> int | None:
    """The class id in ``text`` if it is a positive integer, else None."""
    text = text.strip()
    return int(text) if _POSITIVE_INT.fullmatch(text) and int(text) > 0 else None


def _line(i: int) -> int:
    return i + 2  # data row i (0-based) sits below the header, on 1-based file line i + 2


def _parse_keys(frame: Any, kind: str, source: str) -> list[Key]:
    """The (image, class) key of every row, with the first malformed row reported by file line."""
    keys: list[Key] = []
    if kind == "pairs":
        for i, pair in enumerate(str(v) for v in frame[PAIR]):
            image, sep, suffix = pair.rpartition("_")
            cls = _class_id(suffix) if sep else None
            if not image or cls is None:
                raise ValueError(
                    f"{source}: line {_line(i)}: {PAIR} must look like '<image>_<class>' with a positive "
                    f"integer class, e.g. '0002cc93b.jpg_1', got {pair!r}"
                )
            keys.append((image, cls))
        return keys
    for i, (image, text) in enumerate(zip((str(v) for v in frame[IMAGE]), (str(v) for v in frame[CLASS]), strict=True)):
        cls = IMAGE_ROW if text.strip() == "0" else _class_id(text)
        if cls is None:
            raise ValueError(f"{source}: line {_line(i)}: {CLASS} must be a positive integer, got {text!r}")
        if not image:
            raise ValueError(f"{source}: line {_line(i)}: {IMAGE} is empty")
        keys.append((image, cls))
    placeholders = [i for i, (_, cls) in enumerate(keys) if cls == IMAGE_ROW]
    if placeholders and len(placeholders) != len(keys):
        i = placeholders[0] if keys[0][1] != IMAGE_ROW else next(i for i, (_, c) in enumerate(keys) if c != IMAGE_ROW)
        raise ValueError(
            f"{source}: line {_line(i)}: {CLASS} 0 (one row per image) must be on every row or on none"
        )
    return keys


def _check_unique(keys: list[Key], source: str) -> None:
    seen: dict[Key, int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise ValueError(
                f"{source}: duplicate key {key} on line {_line(i)} (first on line {_line(seen[key])}); "
                "each (image, class) pair must appear once"
            )
        seen[key] = i


def _check_same_keys(keys: list[Key], expected: list[Key], source: str) -> None:
    have, want = set(keys), set(expected)
    missing = [key for key in expected if key not in have]
    if missing:
        raise ValueError(f"{source}: missing key {missing[0]} ({len(missing)} missing in all) listed in the sample")
    extra = [key for key in keys if key not in want]
    if extra:
        raise ValueError(f"{source}: extra key {extra[0]} ({len(extra)} in all) that the sample does not list")


def read_sample(path: str | os.PathLike) -> SampleLayout:
    """Read a sample submission; its placeholder EncodedPixels are ignored."""
    path = Path(path)
    frame = _read_csv(path)
    columns = [str(c) for c in frame.columns]
    kind = _detect_kind(columns, path.name)
    if not len(frame):
        raise ValueError(f"{path.name}: the sample lists no rows; it must list every (image, class) to predict")
    keys = _parse_keys(frame, kind, path.name)
    _check_unique(keys, path.name)
    return SampleLayout(kind=kind, columns=tuple(columns), keys=keys)


def build_submission(layout: SampleLayout, rles: Mapping[Key, str]) -> Table:
    """One row per sample key, in the sample's row and column order. Keys of ``rles`` the sample
    does not list are not written (the sample decides what is scored)."""
    missing = [key for key in layout.keys if key not in rles]
    if missing:
        raise ValueError(
            f"no RLE for sample key {missing[0]} ({len(missing)} missing in all); pass '' for an empty mask"
        )
    pixels = [rles[key] or "" for key in layout.keys]
    if layout.kind == "pairs":
        data = {PAIR: [f"{image}_{cls}" for image, cls in layout.keys], PIXELS: pixels}
    else:
        data = {IMAGE: [image for image, _ in layout.keys], CLASS: [cls for _, cls in layout.keys], PIXELS: pixels}
    return Table(list(layout.columns), data)


def _pixels_text(value: object) -> str:
    """An EncodedPixels cell as text; None and NaN (how pandas may hold an empty cell) are empty."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def validate_submission(
    frame: Any, layout: SampleLayout, image_shapes: Mapping[str, tuple[int, int]]
) -> None:
    """Check a submission as the contest would before scoring it: the sample's columns and keys,
    each once, and every mask empty or a valid RLE for its image's (height, width)."""
    source = "submission"
    columns = [str(c) for c in frame.columns]
    if set(columns) != set(layout.columns) or len(columns) != len(layout.columns):
        raise ValueError(f"{source}: columns must be the sample's {list(layout.columns)}, got {columns}")
    keys = _parse_keys(frame, layout.kind, source)
    _check_unique(keys, source)
    _check_same_keys(keys, layout.keys, source)
    for (image, cls), value in zip(keys, frame[PIXELS], strict=True):
        rle = _pixels_text(value)
        if not rle:
            continue
        if image not in image_shapes:
            raise ValueError(f"{source}: no shape for image {image!r}; pass image_shapes for every image")
        height, width = image_shapes[image]
        try:
            validate_rle(rle, height * width)
        except ValueError as error:
            raise ValueError(
                f"{source}: image {image!r} class {cls}: {error} (image shape {(height, width)})"
            ) from None


def write_submission(frame: Any, path: str | os.PathLike) -> None:
    """Write CSV beside the target then rename, so a reader never sees half a file."""
    # "" and NaN masks both come out as empty cells
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def read_submission(path: str | os.PathLike, layout: SampleLayout) -> dict[Key, str]:
    """RLE per sample key from a submission in either layout (its own header decides which),
    checked to list exactly the sample's keys; returned in the sample's row order."""
    path = Path(path)
    frame = _read_csv(path)
    kind = _detect_kind([str(c) for c in frame.columns], path.name)
    keys = _parse_keys(frame, kind, path.name)
    _check_unique(keys, path.name)
    _check_same_keys(keys, layout.keys, path.name)
    by_key = dict(zip(keys, (text.strip() for text in frame[PIXELS]), strict=True))
    return {key: by_key[key] for key in layout.keys}
