"""Built-in synthetic steel data in the Severstal Kaggle layout, the project's default dataset.

Contest data cannot ship with the project, so studies, tests and demos run on this. The four classes
keep Severstal's balance (class 3 dominant, class 2 rare, half the images clean) and differ enough
in shape and look that a tiny CNN learns them in an epoch or two, so trials really differ.
Each image has its own generator seeded by (seed, split, index): equal arguments give byte-identical
CSVs and pixel-identical JPEGs, and changing ``n_test`` leaves train untouched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.data.formats import DataFormat, SegmentationData, option, register_format
from core.data.problems import Problems
from core.data.rle import rle_encode
from core.data.severstal import read_severstal

MARKER = "synthetic.json"
FORMAT_VERSION = 1  # bump when the drawing changes, so cached folders are rebuilt
DEFECT_RATE = 0.5  # P(an image has any defect); Severstal's train set had ~53%
# P(class | defective image); with "class 3 if none drawn" that gives, over all images,
# about 12% class 1, 6.5% class 2, 43% class 3 and 12.5% class 4.
CLASS_PROBS = {1: 0.24, 2: 0.13, 3: 0.72, 4: 0.25}
# (minimum, multiple) per argument; sizes are multiples of 32 so a 5-level encoder divides them
RULES = {"n_train": (8, 1), "n_test": (1, 1), "height": (64, 32), "width": (64, 32), "seed": (0, 1)}


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Defect-free steel: a level, a left-right gradient, vertical streaks and pixel noise.

    Everything but the noise is constant down a column, so a column median of clean pixels
    recovers the background (the tests rely on that to check that defects alter pixels).
    """
    x = np.linspace(-1.0, 1.0, width)
    level = rng.uniform(105, 135) + rng.uniform(-12, 12) * x
    streaks = np.convolve(rng.normal(0, 7, width), np.ones(3) / 3, mode="same")
    noise = rng.normal(0, 5, (height, width))
    return level[None, :] + streaks[None, :] + noise


def _box(shape: tuple[int, ...], cy: float, cx: float, hy: float, hx: float) -> tuple:
    """Box of half-size (hy, hx) around (cy, cx) and its coordinates: a shape costs its box, not the image."""
    spans = zip((cy, cx), (hy, hx), shape, strict=True)
    box = tuple(slice(max(int(c - h), 0), min(int(c + h) + 2, n)) for c, h, n in spans)
    yy, xx = np.mgrid[box].astype(np.float64)
    return box, yy, xx


def bright_spots(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: a few small bright round pits, radius 2-5 px at 128 rows, brightest at the centre."""
    height, width = image.shape
    out, mask = image.copy(), np.zeros(image.shape, bool)
    for _ in range(rng.integers(3, 7)):
        radius = max(2.0, rng.uniform(2, 5) * height / 128)
        cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
        box, yy, xx = _box(image.shape, cy, cx, radius, radius)
        d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2
        disk = d2 <= 1
        # at least half the amplitude at the rim, so every mask pixel is visibly brighter
        out[box][disk] += rng.uniform(55, 85) * (1 - 0.5 * d2[disk])
        mask[box] |= disk
    return out, mask


def dark_cracks(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class 2: one or two thin (2 px) dark vertical cracks, 25-50% of the height, slightly jagged."""
    height, width = image.shape
    mask = np.zeros(image.shape, bool)
    for _ in range(rng.integers(1, 3)):
        length = int(rng.uniform(0.25, 0.5) * height)
        y0 = int(rng.integers(0, height - length + 1))
        drift = np.cumsum(rng.normal(0, 0.35, length))
        xs = np.clip(np.rint(rng.uniform(0.05, 0.95) * width + drift), 0, width - 2).astype(int)
        ys = np.arange(y0, y0 + length)
        mask[ys, xs] = mask[ys, xs + 1] = True
    out = image.copy()
    out[mask] -= rng.uniform(55, 75)
    return out, mask


def scratch_band(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class 3: a long horizontal band with ragged edges, brighter and striped across the background's
    vertical streaks, so texture as well as level tells it apart."""
    height, width = image.shape
    length = int(rng.uniform(0.25, 0.7) * width)
    x0 = int(rng.integers(0, width - length + 1))
    cy = rng.uniform(0.2, 0.8) * height
    t = np.linspace(0, 1, length)
    # lens-shaped outline (thin ends, full height mid-way), a slow bend, and ragged edges
    half = rng.uniform(0.07, 0.2) * height * (0.35 + 0.65 * np.sin(np.pi * t))
    bend = rng.uniform(0, 0.08) * height * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 6.3))
    top, bottom = np.full(width, np.inf), np.full(width, -np.inf)
    for edge, sign in ((top, -1), (bottom, 1)):
        ragged = np.convolve(rng.normal(0, 1.5, length), np.ones(3) / 3, mode="same")
        edge[x0 : x0 + length] = cy + bend + sign * half + ragged
    yy = np.arange(height, dtype=np.float64)[:, None]
    mask = (yy >= top[None, :]) & (yy <= bottom[None, :])
    stripes = np.convolve(rng.normal(0, 12, height), np.ones(2) / 2, mode="same")
    # stripes only brighten: a thin band must not average out to the background level
    texture = rng.uniform(18, 26) + np.abs(stripes)[:, None] + rng.normal(0, 6, image.shape)
    out = image.copy()
    out[mask] += texture[mask]
    return out, mask


def dark_blob(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class 4: one large dark blob, an ellipse whose rim is bent by a few random harmonics."""
    height, width = image.shape
    ry, rx = rng.uniform(0.2, 0.4) * height, rng.uniform(0.05, 0.12) * width
    cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.1, 0.9) * width
    box, yy, xx = _box(image.shape, cy, cx, 1.4 * ry, 1.4 * rx)  # the rim reaches at most 1.36 radii
    dy, dx = (yy - cy) / ry, (xx - cx) / rx
    theta = np.arctan2(dy, dx)
    rim = 1 + sum(rng.uniform(0, 0.12) * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    mask = np.zeros(image.shape, bool)
    mask[box] = np.hypot(dy, dx) <= rim
    out = image.copy()
    # darkened, with a coarser grain than the background so the blob is not a flat hole
    out[mask] = out[mask] * rng.uniform(0.35, 0.55) + rng.normal(0, 6, int(mask.sum()))
    return out, mask


# Large defects first, so the small ones drawn on top stay visible where they overlap.
DRAWERS = {3: scratch_band, 4: dark_blob, 2: dark_cracks, 1: bright_spots}


def _place(draw: Callable, rng: np.random.Generator, image: np.ndarray, taken: np.ndarray) -> tuple:
    """Draw a defect, redrawing (up to 9 times) one that lands on another: overlaps stay rare, as in Severstal."""
    for _ in range(10):
        out, mask = draw(rng, image)
        if not (mask & taken).any():
            break
    return out, mask


def make_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image: (uint8 HxW grey image, uint8 4xHxW 0/1 masks, class c at index c-1)."""
    image = background(rng, height, width)
    masks = np.zeros((4, height, width), np.uint8)
    if rng.random() < DEFECT_RATE:
        drawn = [c for c in (1, 2, 3, 4) if rng.random() < CLASS_PROBS[c]] or [3]
        for cls, draw in DRAWERS.items():
            if cls in drawn:
                image, masks[cls - 1] = _place(draw, rng, image, masks.any(axis=0))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), masks


def _check(name: str, value: int, minimum: int, multiple: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < minimum or value % multiple:
        rule = f">= {minimum}" + (f" and a multiple of {multiple}" if multiple > 1 else "")
        raise ValueError(f"{name} must be an integer {rule}, got {value!r}")


def _write_split(folder: Path, prefix: str, split: int, n: int, params: dict) -> list[str]:
    """Write n JPEGs into folder and return their train.csv rows (one per image and present class)."""
    folder.mkdir(parents=True)
    rows = []
    for index in range(n):
        rng = np.random.default_rng([params["seed"], split, index])
        image, masks = make_image(rng, params["height"], params["width"])
        name = f"{prefix}{index:05d}.jpg"
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if not cv2.imwrite(str(folder / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"cv2 could not write {folder / name}")
        rows += [f"{name},{c + 1},{rle_encode(m, order='F')}" for c, m in enumerate(masks) if m.any()]
    return rows


def _build(tmp: Path, params: dict) -> None:
    header = "ImageId,ClassId,EncodedPixels\n"
    train = _write_split(tmp / "train_images", "syn", 0, params["n_train"], params)
    test = _write_split(tmp / "test_images", "tst", 1, params["n_test"], params)
    (tmp / "train.csv").write_text(header + "".join(row + "\n" for row in train))
    (tmp / "test_truth.csv").write_text(header + "".join(row + "\n" for row in test))
    # Kaggle's final Severstal sample: every test image x class, "1 1" as placeholder.
    names = sorted(p.name for p in (tmp / "test_images").iterdir())
    sample = [f"{name},1 1,{cls}\n" for name in names for cls in (1, 2, 3, 4)]
    (tmp / "sample_submission.csv").write_text("ImageId,EncodedPixels,ClassId\n" + "".join(sample))
    (tmp / MARKER).write_text(json.dumps(params, indent=2) + "\n")


def _cached(root: Path, params: dict) -> bool:
    try:
        return (root / "train.csv").is_file() and json.loads((root / MARKER).read_text()) == params
    except (OSError, ValueError):
        return False


def write_synthetic(
    root: str | os.PathLike,
    n_train: int = 96,
    n_test: int = 24,
    height: int = 128,
    width: int = 512,
    seed: int = 0,
) -> Path:
    """Write the synthetic dataset into root, or reuse it if root already holds these parameters.

    The folder is built beside root and renamed into place, so a reader (or a second Ray worker
    writing the same data) never sees a half-written dataset. A non-empty root that is not synthetic
    data is never replaced.
    """
    given = {"n_train": n_train, "n_test": n_test, "height": height, "width": width, "seed": seed}
    for name, (minimum, multiple) in RULES.items():
        _check(name, given[name], minimum, multiple)
    params = {"version": FORMAT_VERSION} | {k: int(v) for k, v in given.items()}
    root = Path(root)
    if _cached(root, params):
        return root
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        raise ValueError(f"{root} is not empty and holds no {MARKER}; pass an empty or new folder for the data")
    tmp, old = (root.with_name(f"{root.name}.{kind}-{os.getpid()}") for kind in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _build(tmp, params)
        if not _cached(root, params):  # else another process finished the same data first
            if root.is_dir() and any(root.iterdir()):
                os.replace(root, old)
            try:
                os.replace(tmp, root)
            except OSError:  # root appeared since the check: fine if it is the same data
                if not _cached(root, params):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return root


def read_synthetic(
    root: str | Path, num_classes: int = 4, images: int = 96, seed: int = 0, problems: Problems | None = None
) -> SegmentationData:
    """The built-in synthetic steel set, generated into ``root`` once (a cache) and read as Severstal.

    Images have Severstal's own size (256 x 1600), so the default run exercises the full-size path.
    """
    if num_classes != 4:
        raise ValueError(f"data.classes must be 4 for the synthetic steel set, got {num_classes}")
    write_synthetic(root, n_train=images, height=256, width=1600, seed=seed)
    data = read_severstal(root, num_classes, problems)
    return dataclasses.replace(data, format="synthetic")


@dataclass(frozen=True)
class SyntheticOptions:
    images: int = option(96, f"training images to generate (>= {RULES['n_train'][0]})")
    classes: int = option(4, "must be 4: the generator draws Severstal's four defect classes")

    def __post_init__(self) -> None:
        _check("data.images", self.images, *RULES["n_train"])
        if self.classes != 4:
            raise ValueError(f"data.classes must be 4 for the synthetic steel set, got {self.classes!r}")


@register_format
class Synthetic(DataFormat):
    name = "synthetic"
    description = "the built-in synthetic steel set (Severstal layout, 256x1600), generated under storage once"
    Options = SyntheticOptions
    order = "F"
    submission = "severstal"
    FOLDER = "_data"  # under the storage folder: <storage>/_data/synthetic-<images>

    def default_root(self, storage: Path, options: SyntheticOptions) -> Path:
        return Path(storage) / self.FOLDER / f"synthetic-{options.images}"

    def read(self, root: Path, options: SyntheticOptions, problems: Problems) -> SegmentationData:
        return read_synthetic(root, options.classes, options.images, problems=problems)
