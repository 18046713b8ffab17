"""Reading image files: RGB pixels, mask files, sizes from headers, the image files of a folder.

Every format and the predictor read images through here, so an unreadable file is one clear line.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8; a missing or unreadable file is a one-line error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image (expected a JPEG or PNG file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    with Image.open(path) as image:
        width, height = image.size
    return height, width


def verify_image(path: Path) -> tuple[int, int]:
    """Decode every pixel once: a missing, unreadable or truncated file raises one line naming it.

    cv2 returns a half-grey picture for a truncated JPEG with only a warning on stderr; PIL refuses it.
    Returns (height, width).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:  # PIL: UnidentifiedImageError is an OSError
        raise ValueError(f"{path}: not a readable image ({error})") from None
    return height, width


def list_images(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_mask(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask file as a 2-D uint8 array of its values (palette PNGs give their indices)."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "1", "I", "I;16"):
                image = image.convert("L")
            values = np.array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: not a readable mask image ({error})") from None
    if values.ndim != 2:
        raise ValueError(f"{path}: a mask must have one channel, got shape {values.shape}")
    if values.dtype != np.uint8:
        if values.max(initial=0) > 255:
            raise ValueError(f"{path}: mask values must be 0..255, got {int(values.max())}")
        values = values.astype(np.uint8)
    if shape is not None and values.shape != tuple(shape):
        raise ValueError(f"{path}: mask is {values.shape[1]}x{values.shape[0]}, its image is {shape[1]}x{shape[0]} (width x height)")
    return values
