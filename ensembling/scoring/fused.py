"""A greedy step's per-pair counts from one read of each candidate's bytes (the dense path at scale).

For a chunk of images the current blend's uint16 sum ``base`` is built once, and with it ``need``:
per pixel, the smallest uint8 a candidate must add for the blend to reach the lowest threshold
(``clip(smin - base, 0, 255)``; 255 also stands for "never", a false alarm the exact test below drops).
Then each candidate costs one pass over its bytes, parallel over image-class pairs: blocks of pixels
are screened with a vectorizable uint8 compare against ``need`` (most real OOF is near 0, so most
blocks stop there), and only a block with a hit is binned exactly, into a per-pair histogram of the
thresholds passed (``counting.bin_table``), with the truth and the blend's maximum. Nothing the size
of the data is ever allocated: per chunk, ``need`` and the counts.

A pair with no pixel at or above the lowest threshold has an empty mask at every threshold; its
maximum is then reported as 0 (it only feeds the gate, which cannot change an empty mask), otherwise
it is exact. The counts equal ``counting.count_blend`` (tested).
"""

from __future__ import annotations

import os

import numpy as np

from ensembling.scoring.counting import bin_table, blend_levels, numba

if numba is not None and "NUMBA_THREADING_LAYER" not in os.environ:
    # GNU OpenMP's spinning threads stall every short parallel region when other processes share the cores
    # (2 threads ran 10x slower than 1 at a load average of 6 here); numba's own pool does not.
    numba.config.THREADING_LAYER = "workqueue"

def idle_threads() -> int:
    """Threads for a step: the cores not busy with other work (at least 1); NUMBA_NUM_THREADS, when set, decides.

    Every parallel region waits for its slowest thread, so a thread on a core another process holds costs more
    than it brings: on the 2-core machine here at a load average of 5, one thread ran a step in 0.6x the time of two.
    """
    if numba is None:
        return 1
    cores = numba.config.NUMBA_NUM_THREADS
    if "NUMBA_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return cores
    return max(1, min(cores, round(cores + 1 - os.getloadavg()[0])))  # + 1: this process's own share of the load


BLOCK = 256  # pixels screened at a time: 256 uint8 compares, a few vector instructions


def lowest_sum(table: np.ndarray) -> int:
    """The smallest blend sum that passes any threshold (len(table): none does)."""
    return int(np.argmax(table > 0)) if table[-1] > 0 else len(table)


def need_of(base: np.ndarray, smin: int, use_numba: bool = True) -> np.ndarray:
    """(pairs, blocks) uint8: the least a candidate must add somewhere in each block of ``base`` (pairs, pixels)
    to reach ``smin`` (255 also stands for never: the exact pass drops such a false alarm)."""
    pairs, pixels = base.shape
    blocks = -(-pixels // BLOCK)
    need = np.empty((pairs, blocks), np.uint8)
    if use_numba and numba is not None:
        _need_kernel(base, smin, need)
        return need
    padded = np.zeros((pairs, blocks * BLOCK), np.uint16)
    padded[:, :pixels] = base
    top = padded.reshape(pairs, blocks, BLOCK).max(axis=2).astype(np.int32)
    return np.clip(smin - top, 0, 255).astype(np.uint8)


if numba is not None:

    @numba.njit(inline="always")
    def _exact(b_row, c, t_row, j0, j1, table, smin, h_all, h_pos, best):  # pragma: no cover - compiled
        """Bin a block's pixels: a pixel in bin b (1..T) passes thresholds 0..b-1, counted at index b - 1."""
        for j in range(j0, j1):
            s = np.int32(b_row[j]) + np.int32(c[j])
            if s >= smin:
                b = table[s] - 1
                h_all[b] += 1
                if t_row[j]:
                    h_pos[b] += 1
                if s > best:
                    best = s
        return best

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _step_kernel(base, need, cand, truth, table, smin, levels, pred, inter, top):  # pragma: no cover - compiled
        """Into pred, inter (pairs, T) (zeroed here) and top (pairs,): the counts at each threshold and the max level."""
        for p in numba.prange(cand.shape[0]):
            c, h_all, h_pos = cand[p], pred[p], inter[p]
            h_all[:] = 0
            h_pos[:] = 0
            best = 0
            full = c.size // BLOCK
            # an OR bounds a block's max from above: a vector op per 32 pixels. The bound c.size // BLOCK lets
            # LLVM prove the index never wraps, which is what makes this loop vectorize (10x here).
            for k in range(full):
                m = np.uint8(0)
                for j in range(k * BLOCK, k * BLOCK + BLOCK):
                    m |= c[j]
                if m >= need[p, k]:
                    best = _exact(base[p], c, truth[p], k * BLOCK, k * BLOCK + BLOCK, table, smin, h_all, h_pos, best)
            if full * BLOCK < c.size:
                best = _exact(base[p], c, truth[p], full * BLOCK, c.size, table, smin, h_all, h_pos, best)
            for t in range(h_all.size - 2, -1, -1):  # passing threshold t = in bins t+1 .. T: a suffix sum
                h_all[t] += h_all[t + 1]
                h_pos[t] += h_pos[t + 1]
            top[p] = levels[best]


    @numba.njit(parallel=True, cache=True, nogil=True)
    def _add_member(base, member, count, first):  # pragma: no cover - compiled
        weight = np.uint16(count)
        for p in numba.prange(base.shape[0]):
            b, m = base[p], member[p]
            n = min(b.size, m.size)
            if first:
                for j in range(n):
                    b[j] = np.uint16(m[j] * weight)
            else:
                for j in range(n):
                    b[j] = np.uint16(b[j] + m[j] * weight)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _need_kernel(base, smin, need):  # pragma: no cover - compiled
        for p in numba.prange(base.shape[0]):
            b = base[p]
            full = b.size // BLOCK
            for k in range(full + (full * BLOCK < b.size)):
                top = np.uint16(0)
                if k < full:
                    for j in range(k * BLOCK, k * BLOCK + BLOCK):
                        top = max(top, b[j])
                else:
                    for j in range(full * BLOCK, b.size):
                        top = max(top, b[j])
                need[p, k] = min(max(smin - np.int32(top), 0), 255)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _truth_area(truth, area):  # pragma: no cover - compiled
        for p in numba.prange(truth.shape[0]):
            t = truth[p]
            full = t.size // BLOCK
            total = 0
            for k in range(full):
                part = np.uint16(0)
                for j in range(k * BLOCK, k * BLOCK + BLOCK):
                    part += np.uint16(min(t[j], 1))
                total += part
            for j in range(full * BLOCK, t.size):
                total += min(t[j], 1)
            area[p] = total


    @numba.njit(inline="always")
    def _add_block(b, m, t, j0, j1, weight, first):  # pragma: no cover - compiled
        top = np.uint16(0)
        positives = np.uint16(0)
        for j in range(j0, j1):
            v = np.uint16(m[j] * weight) if first else np.uint16(b[j] + m[j] * weight)
            b[j] = v
            top = max(top, v)
            positives += np.uint16(min(t[j], 1))
        return top, positives

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _add_last(base, member, count, first, truth, block_max, area):  # pragma: no cover - compiled
        """The last member into ``base``, and in the same pass each block's max of the sum and each pair's true pixels."""
        weight = np.uint16(count)
        for p in numba.prange(base.shape[0]):
            b, m, t = base[p], member[p], truth[p]
            full = b.size // BLOCK
            total = 0
            for k in range(full):  # the bound b.size // BLOCK lets the loop vectorize (see _step_kernel)
                top, positives = _add_block(b, m, t, k * BLOCK, k * BLOCK + BLOCK, weight, first)
                block_max[p, k] = top
                total += positives
            if full * BLOCK < b.size:
                top, positives = _add_block(b, m, t, full * BLOCK, b.size, weight, first)
                block_max[p, full] = top
                total += positives
            area[p] = total


def _step_numpy(base, need, cand, truth, table, smin, levels, pred, inter, top):  # type: ignore[no-untyped-def]
    """The same counts without numba (a few times slower): only the pixels at or above the lowest threshold."""
    s = base.astype(np.int32) + cand
    p, j = np.nonzero(s >= smin)
    width = pred.shape[1]
    index = p * width + table[s[p, j]].astype(np.int64) - 1
    hist_all = np.bincount(index, minlength=pred.size).reshape(pred.shape)
    hist_pos = np.bincount(index[truth[p, j] != 0], minlength=pred.size).reshape(pred.shape)
    pred[:] = np.cumsum(hist_all[:, ::-1], axis=1)[:, ::-1]
    inter[:] = np.cumsum(hist_pos[:, ::-1], axis=1)[:, ::-1]
    best = np.zeros(len(top), np.int64)
    np.maximum.at(best, p, s[p, j])
    top[:] = levels[best]


class StepChunk:
    """One chunk of images of a step: the blend's sum and ``need`` built once, then any number of candidates.

    ``members`` are (uint8 array of the chunk, count) pairs of the current blend (empty: none yet).
    """

    def __init__(
        self, members: list[tuple[np.ndarray, int]], truth: np.ndarray, thresholds: np.ndarray, use_numba: bool = True, workspace: dict | None = None
    ) -> None:
        n, classes = truth.shape[:2]
        self.shape, self.pairs = (n, classes), n * classes
        self.use_numba = use_numba and numba is not None
        truth = np.ascontiguousarray(truth).reshape(self.pairs, -1)
        self.truth = truth.view(np.uint8) if truth.dtype in (np.bool_, np.uint8) else (truth != 0).view(np.uint8)
        # Reused from chunk to chunk: a fresh array of this size costs more in page faults than the step reads.
        workspace = {} if workspace is None else workspace
        if workspace.get("base") is None or workspace["base"].shape != self.truth.shape:
            workspace["base"] = np.zeros(self.truth.shape, np.uint16)
            workspace["zeros"] = np.zeros(self.truth.shape, np.uint8)
        self.base, self.zeros = workspace["base"], workspace["zeros"]
        self.weight = sum(count for _, count in members)
        self.thresholds, self.bins = np.asarray(thresholds), len(thresholds) + 1
        self.tables: dict[int, tuple[np.ndarray, int, np.ndarray]] = {}
        self.truth_area = np.zeros(self.pairs, np.int64)  # the truth's area is read once per chunk, not per candidate
        blocks = -(-self.truth.shape[1] // BLOCK)
        self.block_max: np.ndarray | None = None
        flats = [(np.ascontiguousarray(member).reshape(self.pairs, -1), count) for member, count in members]
        if self.use_numba:
            # every member but the last added in a pass; the last one's pass also takes each block's max and the truth's area
            for i, (flat, count) in enumerate(flats[:-1]):
                _add_member(self.base, flat, count, i == 0)
            last, count = flats[-1] if flats else (self.zeros, 0)
            self.block_max = np.empty((self.pairs, blocks), np.uint16)
            _add_last(self.base, last, count, len(flats) <= 1, self.truth, self.block_max, self.truth_area)
        else:
            self.base.fill(0)
            for flat, count in flats:
                self.base += flat.astype(np.uint16) * np.uint16(count)
            self.truth_area[:] = (self.truth != 0).sum(axis=1)

    def _table(self, weight: int) -> tuple[np.ndarray, int, np.ndarray]:
        if weight not in self.tables:
            table = bin_table(weight, self.thresholds)
            smin = lowest_sum(table)
            if self.block_max is not None:
                need = np.clip(smin - self.block_max.astype(np.int32), 0, 255).astype(np.uint8)
            else:
                need = need_of(self.base, smin, self.use_numba)
            self.tables[weight] = (table, smin, need)
        return self.tables[weight]

    def count_into(self, cand: np.ndarray | None, pred: np.ndarray, inter: np.ndarray, top: np.ndarray) -> None:
        """Counts of (base + cand) / (weight + 1) (None: base / weight) into pred, inter (n, C, T) and top (n, C):
        the pixels passing each threshold, those also true, and the blend's max level (0 where nothing passes)."""
        weight = self.weight + (cand is not None)
        if weight == 0:
            raise ValueError("candidate None scores the blend as it is, which needs at least one member")
        table, smin, need = self._table(weight)
        levels = blend_levels(weight).astype(top.dtype)
        c = self.zeros if cand is None else np.ascontiguousarray(cand).reshape(self.pairs, -1)
        flat_pred, flat_inter, flat_top = pred.reshape(self.pairs, -1), inter.reshape(self.pairs, -1), top.reshape(self.pairs)
        assert np.shares_memory(flat_pred, pred) and np.shares_memory(flat_top, top), "the outputs must be contiguous"
        (_step_kernel if self.use_numba else _step_numpy)(self.base, need, c, self.truth, table, smin, levels, flat_pred, flat_inter, flat_top)

    def count(self, cand: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """pred, inter (n, C, T), truth area (n, C), max level (n, C) in new arrays (see ``count_into``)."""
        n, classes = self.shape
        pred = np.empty((n, classes, self.bins - 1), np.int32)
        inter = np.empty_like(pred)
        top = np.empty((n, classes), np.int64)
        self.count_into(cand, pred, inter, top)
        return pred, inter, self.truth_area.reshape(n, classes), top
