"""Run-length encoding of binary masks, as Kaggle contests write them.

A string is pairs of ``start length``; starts are 1-based pixel numbers. The pixel order is the
contest's: ``"F"`` (column-major, top to bottom then left to right) for Severstal, ``"C"``
(row-major) for Carvana. Encoded output is canonical: runs sorted, touching runs merged, so two
equal masks always give the same string.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

ORDERS = ("F", "C")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NOT_DIGIT_OR_SPACE = re.compile(r"[^0-9 \t\n\r]")
_INT64_MAX = np.iinfo(np.int64).max  # numpy clamps a number past int64 here: the slow path names it


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"RLE order must be one of {ORDERS} ('F' column-major, 'C' row-major), got {order!r}")


def rle_encode(mask: np.ndarray, order: str = "F") -> str:
    """Encode a 2-D mask (any nonzero pixel is foreground) as a canonical RLE string ("" if empty).

    Vectorized: one transposed copy for column-major order (cv2's, several times numpy's speed on
    uint8), one comparison of neighbours and one search for the run edges.
    """
    _check_order(order)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {mask.shape}")
    if mask.dtype != np.uint8 or mask.max(initial=0) > 1:
        mask = (mask != 0).view(np.uint8)
    if order == "F":
        mask = cv2.transpose(np.ascontiguousarray(mask)) if mask.size else mask.T
    flat = np.ascontiguousarray(mask).reshape(-1).view(bool)
    if flat.size == 0:
        return ""
    # Edges between neighbours (0-based index of the pixel after the change), plus the image's ends.
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if flat[0]:
        edges = np.concatenate(([0], edges))
    if flat[-1]:
        edges = np.concatenate((edges, [flat.size]))
    runs = edges.astype(np.int64)
    runs[1::2] -= runs[0::2]
    runs[0::2] += 1  # the contest's starts are 1-based
    return " ".join(map(str, runs.tolist()))


def _parse_slow(text: str) -> np.ndarray:
    """Token by token, for a string the fast path refused: names the offending token."""
    tokens = text.split()
    # A plain regex, not int(): int() also takes "1_000" and "٣", and a token such as "--3" would
    # slip past a digits-after-the-sign check.
    bad = next((t for t in tokens if not _INTEGER.fullmatch(t)), None)
    if bad is not None:
        raise ValueError(f"RLE has a token that is not an integer: {bad!r}")
    try:
        return np.array([int(t) for t in tokens], dtype=np.int64)
    except OverflowError:
        raise ValueError(f"RLE has a number too large for any image: {max(tokens, key=len)!r}") from None


def _parse_values(text: str) -> np.ndarray:
    """The integers of an RLE string; digits and whitespace only take numpy's C parser."""
    if _NOT_DIGIT_OR_SPACE.search(text):
        return _parse_slow(text)
    values = np.fromstring(text, dtype=np.int64, sep=" ")
    return _parse_slow(text) if len(values) and values.max() == _INT64_MAX else values


def _runs(rle: str, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based starts and (exclusive) ends of an RLE's runs, checked against an image of n_pixels."""
    text = "" if rle is None or (isinstance(rle, float) and rle != rle) else str(rle).strip()
    if not text or text == "nan":
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    values = _parse_values(text)
    if len(values) % 2:
        raise ValueError(f"RLE must have an even count of numbers (start length pairs), got {len(values)}")
    starts, lengths = values[0::2], values[1::2]
    # Fast path first: every number in 1..n_pixels, so starts + lengths cannot wrap around int64.
    if len(values) and values.min() >= 1 and values.max() <= n_pixels:
        starts = starts - 1
        ends = starts + lengths
        if ends.max() <= n_pixels:
            return starts, ends
        starts = starts + 1
    if (starts < 1).any():
        raise ValueError(f"RLE starts are 1-based and must be >= 1, got {int(starts.min())}")
    if (lengths < 1).any():
        raise ValueError(f"RLE run lengths must be >= 1, got {int(lengths.min())}")
    # Compared without forming starts + lengths, which could wrap around int64 for absurd numbers.
    past = lengths > n_pixels + 1 - starts
    last = max(int(s) + int(n) - 1 for s, n in zip(starts[past], lengths[past], strict=True))
    raise ValueError(f"RLE run ends at pixel {last}, outside the image of {n_pixels} pixels")


def parse_rle(rle: str, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse an RLE string into 0-based starts and lengths, checking it against an image of n_pixels.

    Raises ValueError naming what is wrong: a token that is no integer, an odd count, a start below 1,
    a length below 1, or a run past the last pixel.
    """
    starts, ends = _runs(rle, n_pixels)
    return starts, ends - starts


def rle_decode(rle: str, shape: tuple[int, int], order: str = "F") -> np.ndarray:
    """Decode an RLE string into a uint8 0/1 mask of ``shape`` (height, width).

    The result is a view in the contest's pixel order (Fortran-ordered for "F"); overlapping runs
    (invalid in a submission, seen in hand-made files) still decode to 1, not 2.
    """
    _check_order(order)
    height, width = int(shape[0]), int(shape[1])
    n_pixels = height * width
    kernel = _compiled_decoder()
    if kernel is not None and isinstance(rle, str):
        flat = np.zeros(n_pixels, dtype=np.uint8)
        if kernel(np.frombuffer(rle.encode("ascii", "replace"), np.uint8), flat) == 0:
            return flat.reshape((height, width), order=order)
        # anything the compiled parser refuses takes the checked path below, which names what is wrong
    starts, ends = _runs(rle, n_pixels)
    # Room for whole 64-bit words past the last pixel, so the toggle fill needs no copy.
    flat = np.zeros(-(-n_pixels // 8) * 8, dtype=np.uint8)
    # Many runs over a short span (Severstal's one run per column): the toggle fill's cost is the span.
    many = len(starts) > 24 and len(starts) > 24 + (int(ends[-1]) - int(starts[0])) // 700
    if many and (starts[1:] >= ends[:-1]).all():
        _fill_by_toggles(flat, starts, ends)
    else:
        # Few runs: one slice write each beats any pass over the pixels. Overlapping or unsorted runs
        # (invalid in a submission, seen in hand-made files) come here too and still decode to 0/1.
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            flat[start:end] = 1
    return flat[:n_pixels].reshape((height, width), order=order)


_DECODER: list = []  # the compiled decoder once built; [None] where numba is missing


def _compiled_decoder():  # type: ignore[no-untyped-def]
    """A numba decoder (parse and fill in one compiled pass), or None without numba.

    Imported lazily: the exported kernel's predictor encodes only, and needs no numba.
    """
    if not _DECODER:
        try:
            import numba
        except ImportError:
            _DECODER.append(None)
        else:
            _DECODER.append(numba.njit(cache=True, nogil=True)(_decode_into))
    return _DECODER[0]


def _decode_into(text: np.ndarray, flat: np.ndarray) -> int:
    """Fill ``flat`` from the ASCII bytes of an RLE; 0 when done, 1 when the text needs the checked path
    (a character other than a digit or whitespace, an odd count, a zero, a run past the end)."""
    n_pixels = flat.shape[0]
    value, in_number, count, start = 0, False, 0, 0
    for i in range(text.shape[0] + 1):
        char = text[i] if i < text.shape[0] else 32
        if 48 <= char <= 57:
            value = value * 10 + (char - 48)
            if value > n_pixels:
                return 1
            in_number = True
        elif char == 32 or char == 9 or char == 10 or char == 13:
            if in_number:
                if value < 1:
                    return 1
                if count % 2 == 0:
                    start = value - 1
                else:
                    end = start + value
                    if end > n_pixels:
                        return 1
                    flat[start:end] = 1
                count += 1
                value, in_number = 0, False
        else:
            return 1
    return 1 if count % 2 else 0


_SPREAD = np.uint64(0x0101010101010101)  # a 0/1 byte copied into all 8 bytes of a word


def _fill_by_toggles(flat: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    """Set sorted, non-overlapping runs to 1 in a zeroed flat mask (length a multiple of 8), no loop.

    A byte is 1 at every run start and every run end, and the mask is its running XOR. The running
    XOR is taken 8 bytes at a time: within each 64-bit word by three shifts, then across words by one
    accumulate over the words' parities. Only the words from the first start to the last end are touched.
    """
    lo = int(starts[0]) // 8 * 8
    hi = -(-int(ends[-1]) // 8) * 8
    span = flat[lo:hi]
    span[starts - lo] = 1
    span[ends[ends < hi] - lo] ^= 1  # an end that meets the next start cancels it: touching runs stay one
    words = span.view("<u8")  # little-endian: byte k of a word is bits 8k..8k+7
    for shift in (8, 16, 32):
        words ^= words << np.uint64(shift)
    parity = (words >> np.uint64(56)).astype(np.uint8)
    words[1:] ^= np.bitwise_xor.accumulate(parity)[:-1].astype(np.uint64) * _SPREAD


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
