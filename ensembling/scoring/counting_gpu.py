"""The greedy step's counts on a GPU: every candidate's per-pair histograms of the blend in one launch.

Two paths over tensors already on the device (``base``: int16 sum of the blend's members, (pairs, P);
``cands``: uint8 (K, pairs, P); ``truth``: uint8 (pairs, P)); each returns, per candidate, the histogram
of ``T + 1`` threshold bins over all pixels and over the true ones, and each pair's maximum sum:

- ``torch (bincount)``: plain torch ops; every op writes a full-size intermediate (the naive step);
- ``triton (fused histogram)``: one program per (candidate, pair) reads each byte once and keeps its
  histogram in registers (``tl.histogram``): the step runs at memory speed.

Used by ``bench/perf/bench_greedy.py gpu``; needs no Ray. ``reference_counts`` is the CPU answer they must equal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.metrics import THRESHOLDS
from ensembling.scoring.counting import bin_table

BINS = len(THRESHOLDS) + 1


def reference_counts(base: np.ndarray, weight: int, cand: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CPU histograms (pairs, BINS) of all and true pixels, and the max sum, for one candidate."""
    table = bin_table(weight, THRESHOLDS)
    s = base.astype(np.int64) + cand
    pairs = s.shape[0]
    index = np.arange(pairs)[:, None] * BINS + table[s]
    hist_all = np.bincount(index.ravel(), minlength=pairs * BINS).reshape(pairs, BINS)
    hist_pos = np.bincount(index[truth != 0], minlength=pairs * BINS).reshape(pairs, BINS)
    return hist_all, hist_pos, s.max(axis=1)


def torch_counts(base: torch.Tensor, weight: int, cands: torch.Tensor, truth: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    table = torch.from_numpy(bin_table(weight, THRESHOLDS).astype(np.int64)).to(base.device)
    pairs = base.shape[0]
    offsets = torch.arange(pairs, device=base.device)[:, None] * (2 * BINS) + truth.long() * BINS
    alls, poss, tops = [], [], []
    for cand in cands:
        parts = []
        for start in range(0, pairs, chunk):  # bounded intermediates: 8 bytes a pixel each
            rows = slice(start, start + chunk)
            s = base[rows].long() + cand[rows].long()
            n = s.shape[0]
            hist = torch.bincount((offsets[rows] - start * 2 * BINS + table[s]).flatten(), minlength=n * 2 * BINS).view(n, 2, BINS)
            parts.append((hist.sum(dim=1), hist[:, 1], s.amax(dim=1)))
        alls.append(torch.cat([p[0] for p in parts]))
        poss.append(torch.cat([p[1] for p in parts]))
        tops.append(torch.cat([p[2] for p in parts]))
    return torch.stack(alls), torch.stack(poss), torch.stack(tops)


def _triton_kernel():  # type: ignore[no-untyped-def]
    import triton
    import triton.language as tl

    @triton.jit
    def count_kernel(base_ptr, cand_ptr, truth_ptr, table_ptr, hist_ptr, top_ptr, pairs, pixels,
                     BINS: tl.constexpr, NB: tl.constexpr, BLOCK: tl.constexpr):
        pair = tl.program_id(0)
        k = tl.program_id(1)
        row = pair.to(tl.int64) * pixels
        crow = (k.to(tl.int64) * pairs + pair) * pixels
        hist = tl.zeros([NB], dtype=tl.int32)
        top = tl.zeros([BLOCK], dtype=tl.int32)
        for start in range(0, pixels, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            inside = offs < pixels
            s = tl.load(base_ptr + row + offs, mask=inside, other=0).to(tl.int32) + tl.load(cand_ptr + crow + offs, mask=inside, other=0).to(tl.int32)
            b = tl.load(table_ptr + s, mask=inside, other=0).to(tl.int32)
            t = tl.load(truth_ptr + row + offs, mask=inside, other=0).to(tl.int32)
            key = tl.where(inside, b + t * BINS, NB - 1)  # padding goes to a bin nobody reads
            hist += tl.histogram(key, NB)
            top = tl.maximum(top, s)
        out = (k.to(tl.int64) * pairs + pair) * NB
        tl.store(hist_ptr + out + tl.arange(0, NB), hist)
        tl.store(top_ptr + k.to(tl.int64) * pairs + pair, tl.max(top, axis=0))

    return count_kernel


_KERNEL = None


def triton_counts(base: torch.Tensor, weight: int, cands: torch.Tensor, truth: torch.Tensor, block: int = 2048) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _triton_kernel()
    k, pairs, pixels = cands.shape
    nb = 64  # a power of two >= 2 * BINS + 1
    table = torch.from_numpy(bin_table(weight, THRESHOLDS).astype(np.int32)).to(base.device)
    hist = torch.empty((k, pairs, nb), dtype=torch.int32, device=base.device)
    top = torch.empty((k, pairs), dtype=torch.int32, device=base.device)
    _KERNEL[(pairs, k)](base.contiguous(), cands.contiguous(), truth.contiguous(), table, hist, top, pairs, pixels, BINS=BINS, NB=nb, BLOCK=block)
    positives = hist[..., BINS : 2 * BINS]
    return hist[..., :BINS] + positives, positives, top


PATHS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {
    "torch (bincount)": torch_counts,
    "triton (fused histogram)": triton_counts,
}


def device_copy_bandwidth(device: torch.device, nbytes: int = 1 << 31, repeats: int = 5) -> float:
    """Bytes per second a device-to-device copy moves (reads + writes), best of a few."""
    import time

    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    del src, dst
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return 2 * nbytes / best
