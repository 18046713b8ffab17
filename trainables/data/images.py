"""Reading image files: RGB pixels, sizes from headers, the image files of a folder.

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
