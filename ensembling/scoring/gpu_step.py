"""A greedy step's counts on a GPU, for ``BlendScorer(device="cuda")`` (``select device=cuda|auto``).

Per group of images the candidates' uint8 OOF go to the device (or stay there: when every candidate
fits in a share of the free device memory they are copied once and every later step reads them
there), the blend's sum is built on the device, and ``ensembling.scoring.counting_gpu`` counts every candidate
in one launch (Triton's fused histogram, or plain torch where Triton is missing). The counts come back
as the CPU's fused pass gives them (``ensembling.scoring.fused``), and the tuner scores them on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from core.metrics import THRESHOLDS
from ensembling.scoring.counting import blend_levels

RESIDENT_SHARE = 0.6  # of the device's free memory the OOF may take to stay on it between steps


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """``auto``: cuda when a CUDA device is present, else cpu; ``cuda`` without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ValueError("device=cuda but torch sees no CUDA device; use device=cpu (or auto)")
    return device


class DeviceCounts:
    """The counts of ``BlendScorer`` groups on a torch device (``cuda``; ``cpu`` runs the same code, for tests)."""

    _last: DeviceCounts | None = None

    @classmethod
    def shared(cls, oofs: Sequence[np.ndarray], truth: np.ndarray, device: str = "cuda") -> DeviceCounts:
        """The last instance when it holds these very arrays: the nested estimate's scorers (one per fold) then
        share one copy of the OOF on the device instead of each making its own."""
        last = cls._last
        if last is None or last.oofs is not oofs or last.truth is not truth or str(last.device) != str(cls._device(device)):
            cls._last = None  # drop the old copy before making a new one
            cls._last = last = cls(oofs, truth, device)
        return last

    @staticmethod
    def _device(device: str):  # type: ignore[no-untyped-def]
        import torch

        return torch.device(device)

    def __init__(self, oofs: Sequence[np.ndarray], truth: np.ndarray, device: str = "cuda", path: str | None = None) -> None:
        import torch

        from ensembling.scoring.counting_gpu import PATHS

        self.torch, self.oofs, self.truth, self.device = torch, oofs, truth, torch.device(device)
        if path is None:
            try:
                import triton  # noqa: F401

                path = "triton (fused histogram)" if self.device.type == "cuda" else "torch (bincount)"
            except ImportError:
                path = "torch (bincount)"
        self.path, self.count = path, PATHS[path]
        self.resident: list | None = None
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if sum(o.nbytes for o in oofs) + truth.nbytes < RESIDENT_SHARE * free:
                self.resident = [torch.from_numpy(np.ascontiguousarray(o)).to(self.device) for o in oofs]

    def describe(self) -> str:
        where = "kept on the device" if self.resident is not None else "copied to the device each step"
        return f"{self.device} ({self.path}; OOF {where})"

    def _chunk(self, index: int, window: slice | np.ndarray):  # type: ignore[no-untyped-def]
        if self.resident is not None:
            rows = window if isinstance(window, slice) else self.torch.from_numpy(window).to(self.device)
            return self.resident[index][rows]
        return self.torch.from_numpy(np.ascontiguousarray(self.oofs[index][window])).to(self.device, non_blocking=True)

    def groups(
        self, windows: Iterator[slice | np.ndarray], counts: Mapping[int, int], candidates: Sequence[int | None], thresholds: np.ndarray
    ) -> Iterator[tuple[slice | np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per group: (window, pred (K, n, C, T), inter (K, n, C, T), truth area (n, C), max level (K, n, C))."""
        if not np.array_equal(np.asarray(thresholds), THRESHOLDS):
            raise ValueError("the GPU counts use the default threshold grid; use device=cpu for another grid")
        torch = self.torch
        weight = sum(counts.values())
        for window in windows:
            truth = torch.from_numpy(np.ascontiguousarray(np.asarray(self.truth[window]) != 0).view(np.uint8)).to(self.device)
            n, classes = truth.shape[:2]
            truth = truth.reshape(n * classes, -1)
            base = torch.zeros(truth.shape, dtype=torch.int32, device=self.device)
            for index, count in counts.items():
                base += self._chunk(index, window).reshape(truth.shape).to(torch.int32) * count
            pred = np.zeros((len(candidates), n, classes, len(THRESHOLDS)), np.int64)
            inter, top = np.zeros_like(pred), np.zeros((len(candidates), n, classes), np.int64)
            groups = [(weight, [k for k, c in enumerate(candidates) if c is None]), (weight + 1, [k for k, c in enumerate(candidates) if c is not None])]
            for total, positions in groups:
                if not positions:
                    continue
                if total == weight:  # the blend as it is: a candidate of zeros
                    cands = torch.zeros((1, *truth.shape), dtype=torch.uint8, device=self.device)
                else:
                    cands = torch.stack([self._chunk(candidates[k], window).reshape(truth.shape) for k in positions])  # type: ignore[index]
                hist_all, hist_pos, best = (t.cpu().numpy() for t in self.count(base, total, cands, truth))
                levels = blend_levels(total)
                for row, k in enumerate(positions):
                    row = row if total != weight else 0  # every None scores the one blend of zeros added
                    # passing threshold t = in bins t+1 .. T: a suffix sum, as the CPU's counts
                    pred[k] = np.cumsum(hist_all[row][:, :0:-1], axis=1)[:, ::-1].reshape(n, classes, -1)
                    inter[k] = np.cumsum(hist_pos[row][:, :0:-1], axis=1)[:, ::-1].reshape(n, classes, -1)
                    top[k] = levels[best[row]].reshape(n, classes)
            area = truth.sum(dim=1).cpu().numpy().reshape(n, classes)
            yield window, pred, inter, area, top
