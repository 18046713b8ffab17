"""``classes``: image classification, labels from a CSV, a folder per class, or a file-name prefix.

- ``csv``: ``labels.csv`` (or ``data.csv=NAME``) with columns ``image,label`` over ``images/``;
- ``folders``: ``<root>/<class>/*.jpg``, the class is the folder's name;
- ``prefix``: ``<root>/<class>_<n>.jpg`` as NEU-DET (``crazing_12.jpg``), the class is the text before
  the last ``_``.

``source=auto`` picks the CSV when it is there, else the prefix when the root holds images, else a
folder per class, except where only one subfolder holds images (NEU-DET's ``IMAGES/`` beside
``ANNOTATIONS/``): that folder is read by prefix.

Class ids are the sorted class names' positions. Folds are StratifiedKFold on the class.

``data.multi_label=true`` (csv only): an image may have several classes, the ``label`` cell holding them
separated by spaces (``"scratch rust"``) and an empty cell meaning none; folds are then multilabel-
stratified as a segmentation set's, and trials train one sigmoid per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.formats import DataFormat, SegmentationData, option, read_label_csv, register_format
from core.data.images import IMAGE_SUFFIXES
from core.data.problems import Problems

SOURCES = ("auto", "csv", "folders", "prefix")


@dataclass(frozen=True)
class ClassesOptions:
    source: str = option("auto", "where labels come from: auto, csv, folders or prefix")
    csv: str = option("labels.csv", "the label file for source=csv (columns image,label)")
    image_dir: str = option("images", "image subfolder for source=csv")
    classes: int = option(0, "number of classes; 0: as many as the labels name (else they must match)")
    multi_label: bool = option(False, "csv only: several space-separated labels per image (an empty label: none)")

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data.source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not isinstance(self.classes, int) or self.classes < 0:
            raise ValueError(f"data.classes must be an integer >= 0, got {self.classes!r}")
        if not isinstance(self.multi_label, bool):
            raise ValueError(f"data.multi_label must be true or false, got {self.multi_label!r}")
        if self.multi_label and self.source not in ("auto", "csv"):
            raise ValueError(
                f"data.multi_label=true reads several labels per image from a CSV; data.source={self.source} has one per image"
            )


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _from_csv(root: Path, options: ClassesOptions, problems: Problems) -> tuple[Path, dict[str, str]]:
    path, image_dir = root / options.csv, root / options.image_dir
    frame = read_label_csv(path, "image,label")
    for column in ("image", "label"):
        if column not in frame.columns:
            raise ValueError(f"{path}: expected columns image,label, got {','.join(map(str, frame.columns))}")
    labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    for i, (image, label) in enumerate(zip(frame["image"], frame["label"], strict=True)):
        where = f"{path}:{i + 2}"
        if image in lines:
            problems.bad(where, f"image {image} listed twice (first on line {lines[image]})", image)
            continue
        lines[image] = i + 2
        if not label.strip() and not options.multi_label:
            problems.bad(where, f"empty label for {image}", image)
        elif not (image_dir / image).is_file():
            problems.bad(where, f"image {image} not found in {image_dir}", "", FileNotFoundError)
        else:
            labels[image] = label.strip()
    return image_dir, labels


def _from_folders(root: Path) -> tuple[Path, dict[str, str]]:
    labels = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in _images(folder):
            labels[f"{folder.name}/{path.name}"] = folder.name
    return root, labels


def _from_prefix(root: Path, problems: Problems) -> tuple[Path, dict[str, str]]:
    labels = {}
    for path in _images(root):
        prefix, sep, _ = path.stem.rpartition("_")
        if not sep or not prefix:
            problems.bad(path, "file name has no class prefix (expected <class>_<n>, e.g. crazing_12.jpg)", path.name)
            continue
        labels[path.name] = prefix
    return root, labels


@register_format
class Classes(DataFormat):
    name = "classes"
    description = "classification: labels.csv (image,label), a folder per class, or a file-name prefix (crazing_12.jpg)"
    Options = ClassesOptions
    kind = "classification"
    order = "C"
    submission = "none"

    def read(self, root: Path, options: ClassesOptions, problems: Problems) -> SegmentationData:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: data folder not found")
        source = options.source
        prefix_root = root
        if source == "auto":
            folders = [p for p in sorted(root.iterdir()) if p.is_dir() and _images(p)]
            if (root / options.csv).is_file():
                source = "csv"
            elif _images(root) or not folders:
                source = "prefix"
            elif len(folders) == 1:  # one image folder beside others (NEU-DET: IMAGES/ and ANNOTATIONS/)
                source, prefix_root = "prefix", folders[0]
            else:
                source = "folders"
        if options.multi_label and source != "csv":
            raise ValueError(
                f"{root}: data.multi_label=true needs the label file {options.csv} (columns image,label; labels separated by spaces)"
            )
        if source == "csv":
            image_dir, labels = _from_csv(root, options, problems)
        elif source == "folders":
            image_dir, labels = _from_folders(root)
        else:
            image_dir, labels = _from_prefix(prefix_root, problems)
        skipped = problems.skipped_images
        labels = {k: v for k, v in labels.items() if k not in skipped}
        if not labels:
            raise ValueError(f"{root}: empty data set (no labelled image found, labels from {source})")
        sets = {k: v.split() if options.multi_label else [v] for k, v in labels.items()}
        names = tuple(sorted({name for names in sets.values() for name in names}))
        if not names:
            raise ValueError(
                f"{root}: no image has a label in {options.csv}; multi-label data needs some labelled images"
            )
        if options.classes and options.classes != len(names):
            raise ValueError(
                f"{root}: data.classes={options.classes}, but the labels name {len(names)} classes: {', '.join(names)}"
            )
        index = {name: i for i, name in enumerate(names)}
        ids = sorted(labels)
        from core.data.images import image_shape

        first = image_shape(image_dir / ids[0])
        if options.multi_label:
            presence = {}
            for i in ids:
                row = np.zeros(len(names), np.int64)
                row[[index[name] for name in sets[i]]] = 1
                presence[i] = row
            return SegmentationData(
                image_dir=image_dir,
                image_ids=ids,
                num_classes=len(names),
                shape=first,
                order="C",
                class_names=names,
                format="classes",
                presence=presence,
                multi_label=True,
            )
        return SegmentationData(
            image_dir=image_dir,
            image_ids=ids,
            num_classes=len(names),
            shape=first,
            order="C",
            labels_by_id={i: index[labels[i]] for i in ids},
            class_names=names,
            format="classes",
        )
