"""Reading a study's finished trials: their configs, scores, costs and memory-mapped OOF.

A trial folder is complete only when ``metrics.json`` exists (it is written last, atomically), so
folders of running, stopped or crashed trials are skipped without a word of doubt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml


@dataclass(frozen=True)
class TrialRecord:
    trial_id: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    cost: dict[str, Any]

    @property
    def score(self) -> float:
        return float(self.metrics["oof_score"])

    @property
    def ms_per_image(self) -> float:
        """Milliseconds per test image for every fold model of the trial, with its TTA."""
        return float(self.cost["ms_per_image_all_folds"])

    @property
    def complete(self) -> bool:
        """True when the trial predicted every image of the split (it trained every fold)."""
        return bool(self.metrics.get("complete"))

    @property
    def folds(self) -> list[int]:
        return list(self.metrics["folds"])

    def oof(self) -> np.ndarray:
        """OOF probabilities, uint8 (N, C, h, w), memory-mapped: nothing is read until used."""
        return np.load(self.path / "oof.npy", mmap_mode="r")


def read_trial(path: Path) -> TrialRecord | None:
    """A finished trial, or None when its folder is incomplete."""
    if not (path / "metrics.json").is_file():
        return None
    return TrialRecord(
        trial_id=path.name,
        path=path,
        config=yaml.safe_load((path / "config.yaml").read_text()),
        metrics=json.loads((path / "metrics.json").read_text()),
        cost=json.loads((path / "cost.json").read_text()),
    )


def read_trials(study_dir: str | Path) -> list[TrialRecord]:
    """Every finished trial of a study, in folder-name order."""
    folder = Path(study_dir) / "trials"
    if not folder.is_dir():
        return []
    records = (read_trial(p) for p in sorted(folder.iterdir()) if p.is_dir())
    return [r for r in records if r is not None]
