"""Image and mask resizing and normalisation, the same for training, OOF prediction and predict."""

from __future__ import annotations

import cv2
import numpy as np
import torch

MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
MULTIPLE = 32  # encoders halve the resolution 5 times


def scaled_size(shape: tuple[int, int], scale: float, multiple: int = 1) -> tuple[int, int]:
    """(height, width) of ``shape`` times ``scale``, rounded to a multiple (at least one multiple)."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if multiple < 1:
        raise ValueError(f"multiple must be an int >= 1, got {multiple}")
    # Halves go to the even count of multiples (as round() does): 1600 x 0.25 = 400 = 12.5 x 32 -> 384.
    return tuple(max(multiple, int(np.rint(side * scale / multiple)) * multiple) for side in shape)  # type: ignore[return-value]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (C, H, W) 0/1 masks by area; a non-empty mask stays non-empty at any scale.

    Keeping emptiness exact matters: the metric scores an empty pair 1 and a non-empty one by overlap.
    """
    if masks.shape[1:] == tuple(size):
        return masks
    out = np.zeros((masks.shape[0], *size), np.uint8)
    for c, mask in enumerate(masks):
        if not mask.any():
            continue
        fraction = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        out[c] = fraction >= 0.5
        if not out[c].any():
            out[c].flat[int(fraction.argmax())] = 1
    return out


def resize_probs(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, C, h, w) probabilities to another size, bilinear."""
    if tuple(probs.shape[-2:]) == tuple(size):
        return probs
    return torch.nn.functional.interpolate(probs, size=size, mode="bilinear", align_corners=False)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) RGB uint8 to a normalised float tensor (N, 3, H, W)."""
    x = (images.astype(np.float32) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
