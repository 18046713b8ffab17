"""Run-length encoding of binary masks, as Kaggle contests write them.

A string is pairs of ``start length``; starts are 1-based pixel numbers. The pixel order is the
contest's: ``"F"`` (column-major, top to bottom then left to right) for Severstal, ``"C"``
(row-major) for Carvana. Encoded output is canonical: runs sorted, touching runs merged, so two
equal masks always give the same string.
"""

from __future__ import annotations

import re

import numpy as np

ORDERS = ("F", "C")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"RLE order must be one of {ORDERS} ('F' column-major, 'C' row-major), got {order!r}")


def rle_encode(mask: np.ndarray, order: str = "F") -> str:
    """Encode a 2-D mask (any nonzero pixel is foreground) as a canonical RLE string ("" if empty)."""
    _check_order(order)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {mask.shape}")
    flat = np.asarray(mask).ravel(order=order) != 0
    # Pad with a background pixel on each side so every run has a rising and a falling edge.
    padded = np.concatenate(([False], flat, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    # edges are 0-based indices into flat; +1 makes the contest's 1-based starts.
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[0::2] = starts + 1
    runs[1::2] = ends - starts
    return " ".join(map(str, runs.tolist()))


def parse_rle(rle: str, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse an RLE string into 0-based starts and lengths, checking it against an image of n_pixels.

    Raises ValueError naming what is wrong: a token that is no integer, an odd count, a start below 1,
    a length below 1, or a run past the last pixel.
    """
    text = "" if rle is None else str(rle).strip()
    if not text or text == "nan":
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tokens = text.split()
    # A plain regex, not int(): int() also takes "1_000" and "٣", and a token such as "--3" would
    # slip past a digits-after-the-sign check.
    bad = next((t for t in tokens if not _INTEGER.fullmatch(t)), None)
    if bad is not None:
        raise ValueError(f"RLE has a token that is not an integer: {bad!r}")
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except OverflowError:
        raise ValueError(f"RLE has a number too large for any image: {max(tokens, key=len)!r}") from None
    if len(values) % 2:
        raise ValueError(f"RLE must have an even count of numbers (start length pairs), got {len(values)}")
    starts, lengths = values[0::2], values[1::2]
    if (starts < 1).any():
        raise ValueError(f"RLE starts are 1-based and must be >= 1, got {int(starts.min())}")
    if (lengths < 1).any():
        raise ValueError(f"RLE run lengths must be >= 1, got {int(lengths.min())}")
    # Compared without forming starts + lengths, which could wrap around int64 for absurd numbers.
    past = lengths > n_pixels + 1 - starts
    if past.any():
        last = max(int(s) + int(n) - 1 for s, n in zip(starts[past], lengths[past], strict=True))
        raise ValueError(f"RLE run ends at pixel {last}, outside the image of {n_pixels} pixels")
    return starts - 1, lengths


def rle_decode(rle: str, shape: tuple[int, int], order: str = "F") -> np.ndarray:
    """Decode an RLE string into a uint8 0/1 mask of ``shape`` (height, width)."""
    _check_order(order)
    height, width = int(shape[0]), int(shape[1])
    starts, lengths = parse_rle(rle, height * width)
    # One slice write per run: a few thousand runs at most (one or two per column at 1600 columns),
    # several times faster than a running sum over all 409,600 pixels of a Severstal image. Overlapping
    # runs (invalid in a submission, seen in hand-made files) still decode to 1, not 2.
    flat = np.zeros(height * width, dtype=np.uint8)
    for start, end in zip(starts.tolist(), (starts + lengths).tolist(), strict=True):
        flat[start:end] = 1
    return flat.reshape((height, width), order=order)


def validate_rle(rle: str, n_pixels: int) -> None:
    """Check that an RLE is one a contest accepts: valid pairs, runs sorted and not overlapping."""
    starts, lengths = parse_rle(rle, n_pixels)
    if len(starts) > 1:
        ends = starts + lengths
        if (starts[1:] < ends[:-1]).any():
            i = int(np.flatnonzero(starts[1:] < ends[:-1])[0])
            raise ValueError(
                f"RLE runs must be sorted and must not overlap: run {i + 2} starts at {starts[i + 1] + 1} "
                f"before run {i + 1} ends at {ends[i]}"
            )
