"""Only the pixels that can matter: the union, over every candidate, of pixels at the lowest threshold or above.

A blend's level is ``round(sum(count x u8) / total)``; it reaches the lowest threshold level L only if some
member's u8 reaches L. So a pixel where every candidate is under L is under every threshold in every
blend, and only its count matters. Real OOF is mostly near 0, so this union is a small share of the
pixels; it is gathered once (one pass over every candidate) and each greedy step reads only it: the
same counts as the dense pass (tested), from a fraction of the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ensembling.scoring.counting import bin_table, numba


@dataclass
class CompactChunk:
    window: slice | np.ndarray  # the images of the chunk
    shape: tuple[int, int]  # (images, classes)
    pair: np.ndarray  # (m,) int64: image x classes + class of each kept pixel
    values: np.ndarray  # (K, m) uint8: every candidate's value there
    truth: np.ndarray  # (m,) uint8 0/1
    kept_per_pair: np.ndarray  # (pairs,) kept pixels
    kept_positives: np.ndarray  # (pairs,) kept true pixels
    truth_area: np.ndarray  # (pairs,) all true pixels
    pixels: int  # per pair

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.pair.nbytes + self.truth.nbytes


def compact_chunk(oofs: Sequence[np.ndarray], truth: np.ndarray, window: slice | np.ndarray, level: int) -> CompactChunk:
    t = np.asarray(truth[window])
    n, classes = t.shape[:2]
    flat_truth = t.reshape(n * classes, -1)
    keep = np.zeros(flat_truth.shape, bool)
    for oof in oofs:
        keep |= np.asarray(oof[window]).reshape(keep.shape) >= level
    where = np.flatnonzero(keep.ravel())
    pixels = flat_truth.shape[1]
    values = np.stack([np.asarray(oof[window]).reshape(-1)[where] for oof in oofs]) if len(where) else np.zeros((len(oofs), 0), np.uint8)
    kept_truth = (flat_truth.ravel()[where] != 0).astype(np.uint8)
    pair = where // pixels
    return CompactChunk(
        window=window,
        shape=(n, classes),
        pair=pair,
        values=values,
        truth=kept_truth,
        kept_per_pair=keep.sum(axis=1),
        kept_positives=np.bincount(pair, weights=kept_truth, minlength=n * classes).astype(np.int64),
        truth_area=(flat_truth != 0).sum(axis=1),
        pixels=pixels,
    )


if numba is not None:

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _count_compact(base, values, truth, pair, table, hist_all, hist_pos, max_sum):  # pragma: no cover - compiled
        candidates, m = values.shape
        for k in numba.prange(candidates):
            for j in range(m):
                s = base[j] + values[k, j]
                b = table[s]
                p = pair[j]
                hist_all[k, p, b] += 1
                if truth[j]:
                    hist_pos[k, p, b] += 1
                if s > max_sum[k, p]:
                    max_sum[k, p] = s


def count_compact(chunk: CompactChunk, base: np.ndarray | None, weight: int, rows: np.ndarray, thresholds: np.ndarray, use_numba: bool = True):  # type: ignore[no-untyped-def]
    """Per candidate row of ``rows`` (values' rows, or -1 for none): pred, inter (n, C, T), truth area, max level."""
    n, classes = chunk.shape
    pairs, bins, m = n * classes, len(thresholds) + 1, chunk.values.shape[1]
    table = bin_table(weight, thresholds)
    base = np.zeros(m, np.uint16) if base is None else base
    cand = np.stack([chunk.values[r] if r >= 0 else np.zeros(m, np.uint8) for r in rows]) if len(rows) else np.zeros((0, m), np.uint8)
    hist_all = np.zeros((len(rows), pairs, bins), np.int64)
    hist_pos = np.zeros_like(hist_all)
    max_sum = np.zeros((len(rows), pairs), np.int64)
    if numba is not None and use_numba:
        _count_compact(base, cand, chunk.truth, chunk.pair, table, hist_all, hist_pos, max_sum)
    else:
        for k in range(len(rows)):
            s = base.astype(np.int64) + cand[k]
            index = chunk.pair * bins + table[s]
            hist_all[k] = np.bincount(index, minlength=pairs * bins).reshape(pairs, bins)
            hist_pos[k] = np.bincount(index[chunk.truth != 0], minlength=pairs * bins).reshape(pairs, bins)
            np.maximum.at(max_sum[k], chunk.pair, s)
    hist_all[:, :, 0] += chunk.pixels - chunk.kept_per_pair  # the pixels left out are under every threshold
    hist_pos[:, :, 0] += chunk.truth_area - chunk.kept_positives
    at_least_all = np.cumsum(hist_all[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    at_least_pos = np.cumsum(hist_pos[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    levels = np.rint(np.arange(255 * weight + 1) / weight).astype(np.int64)
    # a pair with no kept pixel has an empty mask at every threshold: its max only has to stay under them
    top = levels[max_sum]
    return [
        (at_least_all[k].reshape(n, classes, -1), at_least_pos[k].reshape(n, classes, -1), chunk.truth_area.reshape(n, classes), top[k].reshape(n, classes))
        for k in range(len(rows))
    ]
