"""Score weighted blends of trials' OOF predictions, a chunk of images at a time.

OOF arrays are memory-mapped uint8 (N, C, h, w); a blend is the weighted mean of members'
probabilities, quantized back to uint8 like every stored prediction. Scoring all candidates of a
greedy step in one pass reads each chunk of each member once, whatever the number of candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from core.metrics import MIN_AREA_FRACTIONS, THRESHOLDS, dice_sums, pair_counts, quantize, threshold_levels
from core.postprocess import PairStats, Tuner, image_probs_from
from ensembling.scoring.compact import CompactChunk, compact_chunk, count_compact
from ensembling.scoring.counting import blend_levels, count_blend
from ensembling.scoring.fused import StepChunk, idle_threads, numba

COMPACT_CHUNK = 256  # images gathered at a time: 256 x 4 x 64 x 400 is 26 MB per candidate read
STEP_CHUNK = 128  # images per fused read: few calls; the blend's uint16 sum (26 MB at 1/4 scale) is read only where a block can pass
STEP_GROUP = 1024  # images whose counts are gathered before the tuner scores them (few, large numpy calls)
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


class BlendScorer:
    """The greedy objective: the tuned score (every pair-level step, per class) of blends of OOF arrays.

    ``rows`` restricts scoring to some images (the nested estimate's K-1 folds). Two exact ways to count,
    chosen on first use (``path``): ``compact``, the pixels that can pass a threshold gathered once
    (``ensembling.scoring.compact``), when they are few; otherwise ``fused``, every pixel, with the current blend
    built once per chunk of images and each candidate's bytes read once (``ensembling.scoring.fused``). The
    reference pass (``fused=False``, ``ensembling.scoring.counting``) is kept for tests. Components are tuned once
    the members are chosen, not per candidate.
    """

    def __init__(
        self,
        oofs: Sequence[np.ndarray],
        truth: np.ndarray,
        tuner: Tuner,
        classifier: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        chunk: int = 8,
        compact: bool = True,
        fused: bool = True,
        device: str = "cpu",
        max_compact_bytes: int = 4 << 30,
        max_kept_share: float = 0.4,
    ) -> None:
        _check_shapes(oofs, truth, range(len(oofs)))
        self.oofs, self.truth, self.tuner, self.classifier, self.chunk = oofs, truth, tuner, classifier, chunk
        self.rows = np.arange(len(truth)) if rows is None else np.sort(np.asarray(rows))
        self.area_px = int(truth.shape[2] * truth.shape[3])
        self.compact, self.max_compact_bytes, self.max_kept_share = compact, max_compact_bytes, max_kept_share
        self.fused = fused  # the dense pass: one read per candidate (ensembling.scoring.fused), or the reference count_blend
        self.device = device  # cpu, or a torch device (cuda) counting the dense pass there (ensembling.scoring.gpu_step)
        self._device_counts = None
        if device != "cpu":
            from ensembling.scoring.gpu_step import DeviceCounts

            self.compact = False  # the device reads every pixel faster than the CPU gathers the few that matter
            self._device_counts = DeviceCounts.shared(oofs, truth, device)
        self._workspace: dict = {}
        self._chunks: list[CompactChunk] | None = None

    @property
    def path(self) -> str:
        """How a step counts, in words (gathers the compact pixels if not done yet)."""
        chunks = self.compact_chunks()
        if chunks is not None:
            kept = sum(c.values.shape[1] for c in chunks) / max(1, sum(c.kept_per_pair.size * c.pixels for c in chunks))
            return f"compact ({100 * kept:.2f}% of the pixels can pass a threshold, gathered once)"
        if self._device_counts is not None:
            return f"dense, on {self._device_counts.describe()}"
        return "dense, fused (each candidate's bytes read once a step)" if self.fused else "dense, reference (per chunk and candidate)"

    def compact_chunks(self) -> list[CompactChunk] | None:
        """The pixels that can matter (``ensembling.scoring.compact``), gathered on first use; None past the memory cap."""
        if self.compact and self._chunks is None:
            level = int(threshold_levels(self.tuner.threshold.grid).min())
            chunks, size = [], 0
            for window in tqdm(list(self._windows(COMPACT_CHUNK)), desc="gathering the pixels that can matter", unit="chunk", leave=False, disable=len(self.rows) < 2048):
                chunks.append(compact_chunk(self.oofs, self.truth, window, level))
                size += chunks[-1].nbytes
                kept = chunks[-1].values.shape[1] / (chunks[-1].kept_per_pair.size * chunks[-1].pixels)
                if size > self.max_compact_bytes or kept > self.max_kept_share:
                    # Too many pixels can matter (poorly calibrated models keep the background over the lowest
                    # threshold): the gather would cost more than it saves, so every step reads all pixels.
                    self.compact = False
                    return None
            self._chunks = chunks
        return self._chunks

    def _windows(self, size: int | None = None):  # type: ignore[no-untyped-def]
        contiguous = len(self.rows) and self.rows[-1] - self.rows[0] + 1 == len(self.rows)
        size = size or self.chunk
        for start in range(0, len(self.rows), size):
            index = self.rows[start : start + size]
            yield slice(int(index[0]), int(index[-1]) + 1) if contiguous else index

    def sums(self, counts: Mapping[int, int], candidates: Sequence[int | None]) -> list[np.ndarray]:
        """The tuner's sums for the blend ``counts`` plus one of each candidate (None: as it is)."""
        if None in candidates and not counts:
            raise ValueError("candidate None scores the blend as it is, which needs at least one member in counts")
        weight = sum(counts.values())
        if weight + 1 > 257:  # uint16 sums: 257 x 255 would overflow
            raise ValueError(f"a blend of {weight + 1} picks overflows the uint16 sums; lower max_steps or greedy.bags")
        totals: list[np.ndarray | None] = [None] * len(candidates)
        thresholds = self.tuner.threshold.grid
        chunks = self.compact_chunks()
        if numba is not None:
            numba.set_num_threads(idle_threads())  # this thread's parallel regions only; decided at every step
        if chunks is not None:
            return self._compact_sums(chunks, counts, candidates)
        if self._device_counts is not None:
            for group, pred, inter, area, top in self._device_counts.groups(self._windows(STEP_GROUP), counts, candidates, thresholds):
                classifier = None if self.classifier is None else self.classifier[group]
                for k in range(len(candidates)):
                    part = self.tuner.sums(PairStats(pred[k], inter[k], area, image_probs_from(top[k], classifier), self.area_px))
                    totals[k] = part if totals[k] is None else totals[k] + part
            return totals  # type: ignore[return-value]
        if self.fused:
            return self._fused_sums(counts, candidates)
        for window in self._windows():
            truth = np.asarray(self.truth[window])
            base = None
            for index, count in counts.items():
                part = np.asarray(self.oofs[index][window]).astype(np.uint16) * np.uint16(count)
                base = part if base is None else base + part
            classifier = None if self.classifier is None else self.classifier[window]
            for i, candidate in enumerate(candidates):
                cand = None if candidate is None else np.asarray(self.oofs[candidate][window])
                pred, inter, area, top = count_blend(base, weight + (candidate is not None), cand, truth, thresholds)
                stats = PairStats(pred, inter, area, image_probs_from(top, classifier), self.area_px)
                part = self.tuner.sums(stats)
                totals[i] = part if totals[i] is None else totals[i] + part
        return totals  # type: ignore[return-value]

    def _fused_sums(self, counts: Mapping[int, int], candidates: Sequence[int | None]) -> list[np.ndarray]:
        """The dense pass at memory speed: per chunk the blend is built once, then each candidate's bytes are read once;
        counts of ``STEP_GROUP`` images are gathered before the tuner scores them."""
        totals: list[np.ndarray | None] = [None] * len(candidates)
        thresholds = self.tuner.threshold.grid
        classes, x = self.truth.shape[1], len(thresholds)
        for group in self._windows(STEP_GROUP):
            index = np.arange(len(self.truth))[group] if isinstance(group, slice) else group
            n = len(index)
            shape = (len(candidates), n, classes, x)
            if self._workspace.get("group_shape") != shape:  # reused from group to group and step to step: no page faults
                self._workspace.update(group_shape=shape, pred=np.zeros(shape, np.int32), inter=np.zeros(shape, np.int32),
                                       area=np.zeros(shape[1:3], np.int64), top=np.zeros(shape[:3], np.int64))
            pred, inter, area, top = (self._workspace[key] for key in ("pred", "inter", "area", "top"))
            for start in range(0, n, STEP_CHUNK):
                part = index[start : start + STEP_CHUNK]
                window = slice(int(part[0]), int(part[-1]) + 1) if part[-1] - part[0] + 1 == len(part) else part
                members = [(np.asarray(self.oofs[i][window]), c) for i, c in counts.items()]
                step = StepChunk(members, np.asarray(self.truth[window]), thresholds, workspace=self._workspace)
                rows = slice(start, start + len(part))
                area[rows] = step.truth_area.reshape(len(part), classes)
                for k, candidate in enumerate(candidates):
                    step.count_into(None if candidate is None else np.asarray(self.oofs[candidate][window]), pred[k, rows], inter[k, rows], top[k, rows])
            classifier = None if self.classifier is None else self.classifier[group]
            for k in range(len(candidates)):
                part = self.tuner.sums(PairStats(pred[k], inter[k], area, image_probs_from(top[k], classifier), self.area_px))
                totals[k] = part if totals[k] is None else totals[k] + part
        return totals  # type: ignore[return-value]

    def _compact_sums(self, chunks: list[CompactChunk], counts: Mapping[int, int], candidates: Sequence[int | None]) -> list[np.ndarray]:
        weight = sum(counts.values())
        totals: list[np.ndarray | None] = [None] * len(candidates)
        groups = [(weight, [i for i, c in enumerate(candidates) if c is None]), (weight + 1, [i for i, c in enumerate(candidates) if c is not None])]
        for chunk in chunks:
            base = None
            for index, count in counts.items():
                part = chunk.values[index].astype(np.uint16) * np.uint16(count)
                base = part if base is None else base + part
            classifier = None if self.classifier is None else self.classifier[chunk.window]
            for total_weight, positions in groups:
                if not positions:
                    continue
                rows = np.array([-1 if candidates[i] is None else candidates[i] for i in positions])
                for i, (pred, inter, area, top) in zip(positions, count_compact(chunk, base, total_weight, rows, self.tuner.threshold.grid), strict=True):
                    part = self.tuner.sums(PairStats(pred, inter, area, image_probs_from(top, classifier), self.area_px))
                    totals[i] = part if totals[i] is None else totals[i] + part
        return totals  # type: ignore[return-value]

    def scores(self, counts: Mapping[int, int], candidates: Sequence[int | None]) -> list[float]:
        return [float(self.tuner.best(s)[1].mean()) for s in self.sums(counts, candidates)]

    def blend_chunks(self, counts: Mapping[int, int]):  # type: ignore[no-untyped-def]
        """(probs_u8, truth, classifier) chunks of the blend ``counts``: the input of component tuning."""
        weight = sum(counts.values())
        table = blend_levels(weight)
        for window in self._windows():
            total = sum(np.asarray(self.oofs[i][window]).astype(np.uint16) * np.uint16(c) for i, c in counts.items())
            classifier = None if self.classifier is None else self.classifier[window]
            yield table[total], np.asarray(self.truth[window]), classifier
