"""Data sets read from the formats contests ship, behind one protocol and one registry.

A format is a :class:`DataFormat` subclass in its own module (``severstal.py``, ``carvana.py``,
``folder.py``, ``classes.py``, ``synthetic.py``), registered with ``@register_format``;
``core/data/__init__.py`` imports them, so a new format is one module and one import line. The
contract suite ``tests/core/data/test_format_contract.py`` runs every registered format through
the same checks, the way Optuna runs every sampler through one suite.

A format declares:

- ``Options``: a dataclass of its own ``data.<key>`` options (``data.images`` for synthetic,
  ``data.classes`` where it must be given); anything else is refused naming the valid ones;
- ``kind``: ``segmentation`` (masks per class) or ``classification`` (one label per image);
- ``order``: the pixel order of its RLE (``F`` column-major, ``C`` row-major);
- ``default_root(storage, options)``: where its data lives when ``data.root`` is not given (None: must
  be given);
- ``read(root, options, problems)``: the data, as a :class:`SegmentationData` (image ids, image
  reading, masks or labels, presence labels for folds), every label checked once, when read;
- ``submission``: the layout its predictions are written in (see ``core/data/predictions.py``).
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.data.images import image_shape, read_mask, read_rgb
from core.data.problems import Problems
from core.data.rle import rle_decode
from core.registry import Registry


@dataclass(frozen=True)
class SegmentationData:
    """A training set: image ids, where each image is, and its per-class masks (or its label).

    Masks come from one of two sources: ``rles`` (image id, 0-based class) -> RLE in ``order``, or
    ``mask_files`` image id -> a PNG mask read with ``mask_mode`` (``binary``: nonzero is class 1;
    ``index``: value k is class k). A classification set has ``labels_by_id`` instead (0-based class).
    """

    image_dir: Path
    image_ids: list[str]
    num_classes: int
    shape: tuple[int, int]  # (height, width) most images have: the reference for the training size
    rles: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)
    order: str = "F"
    test_dir: Path | None = None
    sample_submission: Path | None = None
    image_files: dict[str, Path] = field(default_factory=dict, repr=False)  # id -> file, when not image_dir/id
    mask_files: dict[str, Path] = field(default_factory=dict, repr=False)
    mask_mode: str = "binary"  # for mask_files: "binary" or "index"
    labels_by_id: dict[str, int] = field(default_factory=dict, repr=False)  # classification only
    class_names: tuple[str, ...] = ()
    format: str = ""
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # id -> (h, w) if known
    presence: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # id -> (C,) 0/1, if read
    sources: dict[str, str] = field(default_factory=dict, repr=False)  # id -> "labels.csv:LINE" naming it first
    # Multi-label classification: ``presence`` holds every image's (C,) 0/1 classes (a ``classes`` CSV with
    # several labels per image, or a segmentation set read as which classes each image has, data.task=presence).
    multi_label: bool = False

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def kind(self) -> str:
        return "classification" if self.labels_by_id or self.multi_label else "segmentation"

    def image_path(self, image_id: str) -> Path:
        return self.image_files.get(image_id) or self.image_dir / image_id

    def read_image(self, image_id: str) -> np.ndarray:
        """The image as an RGB uint8 array (H, W, 3)."""
        return read_rgb(self.image_path(image_id))

    def image_shape(self, image_id: str) -> tuple[int, int]:
        """(height, width) of one image, from its header (remembered)."""
        if image_id not in self.sizes:
            self.sizes[image_id] = image_shape(self.image_path(image_id))
        return self.sizes[image_id]

    def masks(self, image_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """All class masks of one image, uint8 0/1 of shape (C, H, W), at the image's own size."""
        height, width = shape or self.image_shape(image_id)
        out = np.zeros((self.num_classes, height, width), np.uint8)
        if image_id in self.mask_files:
            values = read_mask(self.mask_files[image_id], (height, width))
            if self.mask_mode == "binary":
                out[0] = values != 0
            else:
                for c in range(self.num_classes):
                    out[c] = values == c + 1
            return out
        for c in range(self.num_classes):
            rle = self.rles.get((image_id, c))
            if rle:
                out[c] = rle_decode(rle, (height, width), self.order)
        return out

    def labels(self) -> np.ndarray:
        """Presence of each class per image, (N, C) 0/1, for stratified folds."""
        index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        out = np.zeros((len(self.image_ids), self.num_classes), np.int64)
        if self.multi_label and not self.rles and not self.mask_files:  # a multi-label classes CSV
            for image_id in self.image_ids:
                out[index[image_id]] = self.presence[image_id]
            return out
        if self.labels_by_id:
            for image_id, c in self.labels_by_id.items():
                out[index[image_id], c] = 1
            return out
        if self.mask_files:
            for image_id in self.image_ids:
                present = self.presence.get(image_id)
                out[index[image_id]] = present if present is not None else self.masks(image_id).any(axis=(1, 2))
            return out
        for image_id, c in self.rles:
            out[index[image_id], c] = 1
        return out


# ---------------------------------------------------------------------------------------------
# The protocol


@dataclass(frozen=True)
class NoOptions:
    """A format without options of its own."""


class DataFormat(ABC):
    """One contest data format. Subclasses set the class attributes and implement ``read``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    kind: ClassVar[str] = "segmentation"
    order: ClassVar[str] = "F"
    submission: ClassVar[str] = "none"  # how predictions are written: see core/data/predictions.py

    def default_root(self, storage: Path, options: Any) -> Path | None:
        """Where the data is when ``data.root`` is not given; None: the user must name it."""
        return None

    @abstractmethod
    def read(self, root: Path, options: Any, problems: Problems) -> SegmentationData:
        """Read and check the training set under ``root``; bad rows go to ``problems``."""

    # -- options ------------------------------------------------------------------------------
    def option_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.Options)]

    def parse_options(self, given: dict[str, Any]) -> Any:
        """``data.<key>`` values into this format's Options; an unknown key names the valid ones."""
        valid = self.option_names()
        for key in given:
            if key not in valid:
                listed = ", ".join(f"data.{k}" for k in valid) or "none"
                raise ValueError(f"data.{key} is not an option of data format {self.name!r}; its options: {listed}")
        hints = typing.get_type_hints(self.Options)
        values = {}
        for key, value in given.items():
            hint = hints[key]
            if (hint is int and isinstance(value, bool)) or (hint in (int, float) and not isinstance(value, int | float)):
                raise ValueError(f"data.{key} must be {hint.__name__}, got {value!r}")
            if hint is str and not isinstance(value, str):
                raise ValueError(f"data.{key} must be text, got {value!r}")
            values[key] = value
        return self.Options(**values)

    def describe_options(self) -> list[tuple[str, str, str]]:
        """(data.key, default, help) per option, for ``python -m trainables.data``."""
        out = []
        for f in dataclasses.fields(self.Options):
            default = f.default if f.default is not dataclasses.MISSING else "(required)"
            out.append((f"data.{f.name}", repr(default), f.metadata.get("help", "")))
        return out


def read_label_csv(path: Path, columns: str, **kwargs: Any) -> Any:
    """A format's label file as a DataFrame of text cells; an empty or unparsable file is one error naming
    it and the columns it should have (pandas alone says "No columns to parse from file")."""
    import pandas as pd  # the exported kernel reads images and RLE from this package without pandas

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty; expected a header line {columns}, then one row per label") from None
    except pd.errors.ParserError as error:
        reason = str(error).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        raise ValueError(f"{path}: not a CSV with the columns {columns} ({reason})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; expected a CSV with the columns {columns}") from None


def option(default: Any, help: str) -> Any:
    """A dataclass field with the help line ``python -m trainables.data`` prints."""
    return field(default=default, metadata={"help": help})


# ---------------------------------------------------------------------------------------------
# Registry

FORMATS: Registry[DataFormat] = Registry("data format")
# The built-in formats, registered on first look-up rather than on ``import core.data``: the offline
# predictor imports images and RLE code from this package and must not pull in what the formats read with.
BUILTIN_FORMATS = ("carvana", "classes", "folder", "severstal", "synthetic")


def _load_builtins() -> None:
    import importlib

    for name in BUILTIN_FORMATS:
        importlib.import_module(f"core.data.{name}")


def list_formats() -> list[str]:
    _load_builtins()
    return FORMATS.names()


def get_format(name: str) -> DataFormat:
    _load_builtins()
    return FORMATS.get(name)


def register_format(cls: type[DataFormat]) -> type[DataFormat]:
    """Class decorator: register one instance of a format under its ``name``."""
    FORMATS.register(cls.name)(cls())
    return cls
