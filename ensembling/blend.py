"""Score weighted blends of trials' OOF predictions, a chunk of images at a time.

OOF arrays are memory-mapped uint8 (N, C, h, w); a blend is the weighted mean of members'
probabilities, quantized back to uint8 like every stored prediction. Scoring all candidates of a
greedy step in one pass reads each chunk of each member once, whatever the number of candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from trainables.metrics import MIN_AREA_FRACTIONS, THRESHOLDS, dice_sums, pair_counts, quantize

CHUNK = 32  # images per read: 32 x 4 classes x 64 x 400 uint8 is 3 MB per member at Severstal's 1/4 scale


def blend_chunk(oofs: Sequence[np.ndarray], counts: Mapping[int, int], rows: slice) -> np.ndarray:
    """Weighted sum (float32) of members' probabilities for one chunk; weights are member counts."""
    if not counts:
        raise ValueError("a blend needs at least one member, got empty counts")
    parts = (np.asarray(oofs[index][rows], np.float32) * count for index, count in counts.items())
    return sum(parts)  # type: ignore[return-value]


def candidate_grids(
    oofs: Sequence[np.ndarray],
    truth: np.ndarray,
    counts: Mapping[int, int],
    candidates: Sequence[int | None],
    chunk: int = CHUNK,
) -> list[np.ndarray]:
    """Score grid (C, T, A) of the blend ``counts`` plus one more of each candidate (None: add nothing)."""
    _check_shapes(oofs, truth, [*counts, *(c for c in candidates if c is not None)])
    if None in candidates and not counts:
        raise ValueError("candidate None scores the blend as it is, which needs at least one member in counts")
    n, _, h, w = truth.shape
    min_areas = MIN_AREA_FRACTIONS * h * w
    weight = sum(counts.values())
    sums: list[np.ndarray | None] = [None] * len(candidates)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        # With no members yet, a candidate is scored alone: (0 + extra) / (0 + 1).
        base = blend_chunk(oofs, counts, rows) if counts else np.float32(0)
        truth_chunk = np.asarray(truth[rows])
        for i, candidate in enumerate(candidates):
            if candidate is None:
                probs = base / weight
            else:
                probs = (base + np.asarray(oofs[candidate][rows], np.float32)) / (weight + 1)
            part = dice_sums(pair_counts(quantize(probs / 255), truth_chunk, THRESHOLDS), min_areas)
            sums[i] = part if sums[i] is None else sums[i] + part
    return [s / n for s in sums]  # type: ignore[operator]


def _check_shapes(oofs: Sequence[np.ndarray], truth: np.ndarray, used: Sequence[int]) -> None:
    """Every OOF read must match the truth, or extra rows would be silently ignored."""
    for index in sorted(set(used)):
        if not 0 <= index < len(oofs):
            raise ValueError(f"candidate {index} is out of range: there are {len(oofs)} OOF arrays")
        if oofs[index].shape != truth.shape:
            raise ValueError(
                f"OOF {index} has shape {oofs[index].shape} but the truth has {truth.shape}; "
                "was it written for another split or oof_scale?"
            )
