"""Per-pair counts of a blend at every threshold: the reference the fast paths are tested against.

Selection counts with ``ensembling.scoring.fused`` (the dense pass, one read per candidate) or
``ensembling.scoring.compact``; this module keeps the straightforward pass per chunk and candidate
(``BlendScorer(fused=False)``), and the lookup tables every path shares.

A blend of members with integer counts (weights = counts / W) is ``s = sum(count_i * u8_i)`` per pixel;
its stored probability is ``round(s / W)``. One lookup table maps ``s`` straight to the number of
thresholds the pixel passes, so a pair's counts at every threshold are one histogram of ``T + 1``
bins, plus one of the true pixels and the pair's maximum. With numba this is one fused pass over the
candidate's bytes (parallel over pairs); without it, the same numbers from numpy at a few times the cost.
"""

from __future__ import annotations

import numpy as np

from core.metrics import threshold_levels

try:  # an optional accelerator: the numpy path gives the same numbers
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None


def blend_levels(weight: int) -> np.ndarray:
    """uint8 level of ``s / weight`` for every reachable sum s, rounded half to even like numpy's rint."""
    return np.rint(np.arange(255 * weight + 1, dtype=np.float64) / weight).astype(np.uint8)


def bin_table(weight: int, thresholds: np.ndarray) -> np.ndarray:
    """For every sum s: how many thresholds its level passes (0 .. T)."""
    levels = blend_levels(weight).astype(np.int64)
    return (levels[:, None] >= threshold_levels(thresholds)[None, :]).sum(axis=1).astype(np.uint8)


if numba is not None:

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _count_numba(base, cand, truth, table, smin, hist_all, hist_pos, max_sum):  # pragma: no cover - compiled
        """Two passes per pair: a vectorized max; the histogram only where some pixel passes the lowest
        threshold, and there only over those pixels (real OOF is mostly near 0, so most of a step is pass one)."""
        pairs, pixels = cand.shape
        for p in numba.prange(pairs):
            top = 0
            for j in range(pixels):
                s = base[p, j] + cand[p, j]
                top = max(top, s)
            max_sum[p] = top
            positives = 0
            for j in range(pixels):
                positives += truth[p, j]
            if top < smin:  # every pixel is under every threshold
                hist_all[p, 0] = pixels
                hist_pos[p, 0] = positives
                continue
            above = 0
            for j in range(pixels):
                s = base[p, j] + cand[p, j]
                if s >= smin:
                    b = table[s]
                    hist_all[p, b] += 1
                    above += 1
                    if truth[p, j]:
                        hist_pos[p, b] += 1
            hist_all[p, 0] = pixels - above
            placed = 0
            for b in range(1, hist_pos.shape[1]):
                placed += hist_pos[p, b]
            hist_pos[p, 0] = positives - placed


def count_blend(
    base: np.ndarray | None, weight: int, cand: np.ndarray | None, truth: np.ndarray, thresholds: np.ndarray, use_numba: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts of the blend ``(base + cand) / weight`` for (n, C, h, w) arrays.

    ``base`` is the uint16 sum of count x member (None: no members yet), ``cand`` one more member's uint8
    (None: the blend as it is), ``weight`` the total count including ``cand``. Returns pred (n, C, T) and
    inter (n, C, T) at each threshold, truth area (n, C) and the blend's max level (n, C).
    """
    n, classes = truth.shape[:2]
    pairs = n * classes
    thresholds = np.asarray(thresholds)
    bins = len(thresholds) + 1
    table = bin_table(weight, thresholds)
    truth2 = np.ascontiguousarray(truth).reshape(pairs, -1)
    zeros = None
    if base is None or cand is None:
        zeros = np.zeros(truth2.shape, np.uint16 if cand is None else np.uint8)
    base2 = (zeros.astype(np.uint16) if base is None else np.ascontiguousarray(base).reshape(pairs, -1))
    cand2 = zeros.astype(np.uint8) if cand is None else np.ascontiguousarray(cand).reshape(pairs, -1)
    if numba is not None and use_numba:
        hist_all = np.zeros((pairs, bins), np.int64)
        hist_pos = np.zeros((pairs, bins), np.int64)
        max_sum = np.zeros(pairs, np.int64)
        smin = int(np.argmax(table > 0)) if table[-1] > 0 else len(table)  # the lowest sum passing any threshold
        truth_u8 = truth2.view(np.uint8) if truth2.dtype == np.bool_ else (truth2 != 0).view(np.uint8)
        _count_numba(base2, cand2, truth_u8, table, smin, hist_all, hist_pos, max_sum)
    else:
        s = base2.astype(np.int64) + cand2
        index = np.arange(pairs)[:, None] * bins + table[s]
        hist_all = np.bincount(index.ravel(), minlength=pairs * bins).reshape(pairs, bins)
        hist_pos = np.bincount(index[truth2 != 0], minlength=pairs * bins).reshape(pairs, bins)
        max_sum = s.max(axis=1)
    # pixels passing threshold t = pixels in bins t+1 .. T: a reversed cumulative sum.
    at_least_all = np.cumsum(hist_all[:, ::-1], axis=1)[:, ::-1][:, 1:]
    at_least_pos = np.cumsum(hist_pos[:, ::-1], axis=1)[:, ::-1][:, 1:]
    max_level = blend_levels(weight)[max_sum]
    return (
        at_least_all.reshape(n, classes, -1),
        at_least_pos.reshape(n, classes, -1),
        hist_pos.sum(axis=1).reshape(n, classes),
        max_level.reshape(n, classes),
    )
