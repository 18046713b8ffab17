"""Histogram scoring vs thresholding once per threshold, side by side on Severstal-scale OOF chunks.

    python bench/perf/bench_metric.py [images=256]

Scores a (N, 4, 64, 400) uint8 OOF array (Severstal's 256x1600 at the stored 1/4 scale) on the
default grid of 17 thresholds x 12 minimum areas, both ways, checks they agree, and prints seconds
and the ratio. Selection scores every candidate blend this way at every greedy step.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from core.metrics import MIN_AREA_FRACTIONS, THRESHOLDS, score_grid, threshold_levels
from ensembling.cli import COUNT, command, parse_args


def naive_grid(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Threshold the whole array once per threshold (the obvious way)."""
    _, c, h, w = probs.shape
    min_areas = MIN_AREA_FRACTIONS * h * w
    out = np.zeros((c, len(THRESHOLDS), len(min_areas)))
    truth_area = truth.sum(axis=(2, 3)).astype(np.float64)
    for t, level in enumerate(threshold_levels(THRESHOLDS)):
        pred = probs >= level
        area = pred.sum(axis=(2, 3)).astype(np.float64)
        inter = (pred & (truth != 0)).sum(axis=(2, 3)).astype(np.float64)
        for a, min_area in enumerate(min_areas):
            kept = area >= min_area
            total = area * kept + truth_area
            dice = np.where(total == 0, 1.0, 2 * inter * kept / np.maximum(total, 1))
            out[:, t, a] = dice.mean(axis=0)
    return out


def timed(fn, repeats: int = 3):  # type: ignore[no-untyped-def]
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2], result


USAGE = "python bench/perf/bench_metric.py [images=256]"


def main(argv: list[str]) -> int:
    return command(lambda: run(parse_args(argv, [], {"images": COUNT}, USAGE).get("images", 256)))


def run(images: int) -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((images, 4, 64, 400), np.uint8)
    truth[:, :, 20:40, 100:200] = rng.random((images, 4, 1, 1)) < 0.3
    noise = rng.integers(0, 120, truth.shape, dtype=np.uint8)
    probs = np.where(truth == 1, 255 - noise, noise).astype(np.uint8)
    score_grid(probs[:8], truth[:8]), naive_grid(probs[:8], truth[:8])  # warm-up
    fast_s, fast = timed(lambda: score_grid(probs, truth))
    slow_s, slow = timed(lambda: naive_grid(probs, truth))
    assert np.allclose(fast, slow), "the two ways disagree"
    print(f"{images} images x 4 classes x 64x400, grid {len(THRESHOLDS)}x{len(MIN_AREA_FRACTIONS)}")
    print(f"histogram: {fast_s:.2f} s   per-threshold: {slow_s:.2f} s   ratio {slow_s / fast_s:.1f}x")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
