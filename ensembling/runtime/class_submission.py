"""A classification submission in the sample's layout, validated before it is written.

The sample's first column names the test images (``image.jpg``, or a stem the image folder has with an
image extension). The other columns decide the layout:

- ``probs``: one column per class name (every class, any order): each image's probability of each class;
- ``label``: one other column: the class name (single-label), or the names of the present classes
  separated by spaces (multi-label; empty when none).

Validation: every image of the sample exactly once and no other, the sample's column order, known class
names only, probabilities finite and in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import write_with
from core.data.table import Table, read_csv_table

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ClassLayout:
    source: str
    columns: list[str]
    id_column: str
    ids: list[str]
    kind: str  # "probs" or "label"

    @property
    def label_column(self) -> str:
        return self.columns[1]


def read_class_sample(path: str | os.PathLike, class_names: list[str]) -> ClassLayout:
    """The sample's layout; an unknown layout or a repeated image is one error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: sample submission not found")
    frame = read_csv_table(path)  # every cell as text; no pandas in the exported kernel
    columns = [str(c) for c in frame.columns]
    if len(columns) < 2:
        raise ValueError(f"{path}: expected an image id column then a label column or one column per class ({', '.join(class_names)}), got {columns}")
    rest = columns[1:]
    if set(rest) == set(class_names) and len(rest) == len(class_names):
        kind = "probs"
    elif len(rest) == 1 and rest[0] not in class_names:
        kind = "label"
    else:
        raise ValueError(f"{path}: columns after {columns[0]!r} must be one label column or one column per class "
                         f"({', '.join(class_names)}), got {rest}")
    ids = [str(i) for i in frame[columns[0]]]
    seen: dict[str, int] = {}
    for i, image_id in enumerate(ids):
        if not image_id:
            raise ValueError(f"{path}: line {i + 2}: empty image id")
        if image_id in seen:
            raise ValueError(f"{path}: line {i + 2}: image {image_id!r} is listed again (first on line {seen[image_id] + 2})")
        seen[image_id] = i
    return ClassLayout(str(path), columns, columns[0], ids, kind)


def image_file(images: Path, image_id: str) -> Path:
    """The file of an image id: ``images/id``, or ``images/id.<ext>`` for a stem."""
    direct = images / image_id
    if direct.is_file():
        return direct
    for suffix in IMAGE_SUFFIXES:
        for candidate in (images / f"{image_id}{suffix}", images / f"{image_id}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{direct}: image {image_id} not found (nor with an image extension {', '.join(IMAGE_SUFFIXES)})")


def build_class_submission(layout: ClassLayout, class_names: list[str], probs: dict[str, np.ndarray], decisions: dict[str, np.ndarray], multi_label: bool) -> Table:
    """Rows in the sample's order; ``probs`` and ``decisions`` are (K,) per image id."""
    rows = []
    for image_id in layout.ids:
        if layout.kind == "probs":
            row = {layout.id_column: image_id, **{name: float(p) for name, p in zip(class_names, probs[image_id], strict=True)}}
        else:
            chosen = [name for name, d in zip(class_names, decisions[image_id], strict=True) if d]
            row = {layout.id_column: image_id, layout.label_column: " ".join(chosen) if multi_label else chosen[0]}
        rows.append(row)
    return Table(layout.columns, {c: [row[c] for row in rows] for c in layout.columns})


def validate_class_submission(frame: Table, layout: ClassLayout, class_names: list[str], multi_label: bool) -> None:
    """Every sample image once, the sample's columns, known classes, probabilities in [0, 1]."""
    where = f"submission for {layout.source}"
    if list(frame.columns) != layout.columns:
        raise ValueError(f"{where}: columns {list(frame.columns)}, expected the sample's {layout.columns}")
    ids = list(frame[layout.id_column])
    if len(ids) != len(set(ids)) or sorted(ids) != sorted(layout.ids):
        missing = sorted(set(layout.ids) - set(ids))
        raise ValueError(f"{where}: every sample image exactly once is required; {len(ids)} rows, missing {missing[:3]}")
    if layout.kind == "probs":
        values = np.array([frame[name] for name in class_names], np.float64).T.reshape(len(ids), len(class_names))
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            i, k = np.argwhere(bad)[0]
            raise ValueError(f"{where}: image {ids[i]!r} class {class_names[k]!r}: probability {values[i, k]!r} is not in [0, 1]")
        return
    known = set(class_names)
    for image_id, text in zip(ids, frame[layout.label_column], strict=True):
        names = str(text).split() if multi_label else [str(text)]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"{where}: image {image_id!r}: class {unknown[0]!r} is not one the model predicts ({', '.join(class_names)})")


def write_class_submission(frame: Table, path: str | os.PathLike) -> None:
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))
