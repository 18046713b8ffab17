"""The task protocol: what the one training loop needs from masks and from image labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from core.config import TrialConfig
from core.contract import TrialFolder
from core.data.cache import DiskCache
from core.data.study import Study
from trainables.loop import FoldRun

# (images, targets) on the device -> what the model trains on (classification: smoothed, mixed targets)
Prepare = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Task(Protocol):
    """One output kind of a study. ``score`` returns a state (segmentation: its tuned post-processing)
    that ``picture`` draws with; everything else is plain arrays and the trial folder."""

    name: str
    study: Study
    dataset: type  # the torch Dataset class of a fold's loaders
    labels: bool  # cost is measured on label outputs (``measure_cost(labels=True)``)

    def check(self) -> None:
        """Refuse a study this task cannot train on, naming the fix."""

    def cache(self, size: tuple[int, int]) -> DiskCache:
        """The study's decoded training inputs at ``size`` (built on first use, shared by every trial)."""

    def loss(self, cfg: TrialConfig) -> Callable:
        """The training and validation loss."""

    def prepare(self, cfg: TrialConfig, fold: int, epoch: int) -> Prepare | None:
        """What turns each training batch of ``fold`` at ``epoch`` into the model's targets (None: as read)."""

    def evaluate(self, model: torch.nn.Module, run: FoldRun, loss_fn: Callable, tta: str, device: torch.device, dtype: torch.dtype | None) -> tuple[np.ndarray, float]:
        """One fold's validation predictions in the OOF layout, and the mean validation loss."""

    def score(self, runs: list[FoldRun], probs: list[np.ndarray]) -> tuple[Any, dict[str, Any]]:
        """The pooled validation score (``score``, per class ``score_class<k>``, the rest for the record)."""

    def candidate_fields(self) -> dict[str, Any]:
        """What every candidate's ``metrics.json`` holds beyond the shared fields."""

    def write_oof(self, path: Path, runs: list[FoldRun], probs: list[np.ndarray]) -> None:
        """``oof.npy`` in folds.csv order, under a temp name then renamed (``core/contract.py``)."""

    def picture(self, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], state: Any) -> None:
        """The worst and best validation images, into the trial's pictures folder."""
