"""``folder``: ``images/`` + ``masks/`` sharing a stem, binary or index masks, images of mixed sizes.

Binary masks ({0,255} or {0,1}, as ISBI membranes) are one class; index masks (0 background, k = class
k, as NEU-Seg) have as many classes as their largest value, or ``data.classes`` when given (a value
above it is an error naming the file). Images of mixed sizes are resized to the training size and
predicted back at their own size; predictions are written as PNG masks in the same convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.data.formats import DataFormat, SegmentationData, option, register_format
from core.data.images import IMAGE_SUFFIXES, read_mask
from core.data.problems import Problems

MASK_SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff")
MODES = ("auto", "binary", "index")


def pair_files(
    image_dir: Path, mask_dir: Path, mask_suffix: str, problems: Problems
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Images and masks matched by stem (mask stem = image stem + mask_suffix); unmatched files are bad."""
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found (the folder format needs images/ and masks/)")
    images: dict[str, Path] = {}
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            problems.bad(path, f"image listed twice: {images[path.stem].name} has the same stem", path.name)
            continue
        images[path.stem] = path
    masks: dict[str, Path] = {}
    for path in sorted(mask_dir.iterdir()):
        if path.suffix.lower() not in MASK_SUFFIXES:
            continue
        stem = path.stem.removesuffix(mask_suffix) if mask_suffix else path.stem
        if stem not in images:
            problems.bad(path, f"mask without an image (no {stem}.* in {image_dir})")
            continue
        if stem in masks:
            problems.bad(path, f"second mask for image {images[stem].name} (first {masks[stem].name})", images[stem].name)
            continue
        masks[stem] = path
    for stem, path in images.items():
        if stem not in masks:
            problems.bad(path, f"image without a mask (no {stem}{mask_suffix}.* in {mask_dir})", path.name)
    return images, masks


@dataclass(frozen=True)
class FolderOptions:
    classes: int = option(0, "number of classes; 0: read from the masks (binary: 1, index: the largest value)")
    mode: str = option("auto", "mask convention: auto, binary ({0,255} or {0,1}) or index (0 background, k class k)")
    image_dir: str = option("images", "image subfolder of data.root")
    mask_dir: str = option("masks", "mask subfolder of data.root")
    mask_suffix: str = option("", "a mask's stem is the image's plus this (e.g. _mask)")

    def __post_init__(self) -> None:
        if not isinstance(self.classes, int) or self.classes < 0:
            raise ValueError(f"data.classes must be an integer >= 0 (0: read from the masks), got {self.classes!r}")
        if self.mode not in MODES:
            raise ValueError(f"data.mode must be one of {', '.join(MODES)}, got {self.mode!r}")


def read_mask_folder(
    root: Path, image_dir: Path, mask_dir: Path, options: FolderOptions, problems: Problems, name: str = "folder"
) -> SegmentationData:
    images, masks = pair_files(image_dir, mask_dir, options.mask_suffix, problems)
    skipped = problems.skipped_images
    stems = [s for s in images if s in masks and images[s].name not in skipped]
    values: dict[str, np.ndarray] = {}  # stem -> the values its mask holds
    sizes: dict[str, tuple[int, int]] = {}
    for stem in tqdm(stems, desc="reading masks", unit="mask", leave=False, disable=None):
        try:
            with Image.open(images[stem]) as image:
                width, height = image.size
            mask = read_mask(masks[stem], (height, width))
        except (OSError, ValueError) as error:
            problems.bad(masks[stem], str(error).split(": ", 1)[-1], images[stem].name)
            continue
        sizes[stem] = (height, width)
        values[stem] = np.unique(mask)
    stems = [s for s in stems if s in values]
    if not stems:
        raise ValueError(f"{root}: empty data set (no image with a readable mask in {image_dir} and {mask_dir})")
    seen = np.unique(np.concatenate(list(values.values())))
    mode = options.mode
    if mode == "auto":
        # {0,1} is also an index mask whose images all show class 1: data.classes > 1 says which
        values_seen = set(seen.tolist())
        binary = values_seen <= {0, 255} or (values_seen <= {0, 1} and options.classes in (0, 1))
        mode = "binary" if binary else "index"
    if mode == "binary":
        if options.classes not in (0, 1):
            raise ValueError(f"data.classes must be 1 (or 0) for binary masks, got {options.classes}")
        num_classes = 1
    else:
        num_classes = options.classes or int(seen.max())
        for stem in stems:
            if values[stem].max() > num_classes:
                problems.bad(masks[stem], f"unknown class id {int(values[stem].max())} (classes are 1..{num_classes})", images[stem].name)
        stems = [s for s in stems if values[s].max() <= num_classes]
        if num_classes < 1:
            raise ValueError(f"{mask_dir}: every mask is empty; give data.classes=K for index masks")
    ids = [images[s].name for s in stems]
    presence = {}
    for stem in stems:
        present = np.zeros(num_classes, np.int64)
        if mode == "binary":
            present[0] = values[stem].max() > 0
        else:
            for v in values[stem].tolist():
                if v:
                    present[v - 1] = 1
        presence[images[stem].name] = present
    shape_values, counts = np.unique(np.array([sizes[s] for s in stems]), axis=0, return_counts=True)
    shape = tuple(int(v) for v in shape_values[int(counts.argmax())])
    return SegmentationData(
        image_dir=image_dir,
        image_ids=ids,
        num_classes=num_classes,
        shape=shape,  # type: ignore[arg-type]
        order="C",
        mask_files={images[s].name: masks[s] for s in stems},
        mask_mode=mode,
        format=name,
        sizes={images[s].name: sizes[s] for s in stems},
        presence=presence,
    )


@register_format
class Folder(DataFormat):
    name = "folder"
    description = "images/ + masks/ sharing a stem; binary ({0,255}/{0,1}) or index (0..K) PNG masks; any sizes"
    Options = FolderOptions
    order = "C"
    submission = "png"

    def read(self, root: Path, options: FolderOptions, problems: Problems) -> SegmentationData:
        root = Path(root)
        return read_mask_folder(root, root / options.image_dir, root / options.mask_dir, options, problems)
