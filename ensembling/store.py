"""Reading a study's finished trials: their configs, scores, costs and memory-mapped OOF.

A trial folder is complete only when ``metrics.json`` exists (it is written last, atomically), so
folders of running, stopped or crashed trials are skipped without a word of doubt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainables.contract import StudyFolder, TrialFolder, open_array, read_json_file


@dataclass(frozen=True)
class TrialRecord:
    trial_id: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    cost: dict[str, Any]
    snapshot: str | None = None  # a further candidate of the same trial: snapshots/<name>/ (cyclic low, EMA)

    @property
    def candidate_id(self) -> str:
        """The trial id, or ``trial_id/snapshot`` for one of its snapshots."""
        return self.trial_id if self.snapshot is None else f"{self.trial_id}/{self.snapshot}"

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

    @property
    def folder(self) -> TrialFolder:
        """Where this candidate's OOF and weights are: the trial folder or its snapshot's."""
        trial = TrialFolder(self.path)
        return trial if self.snapshot is None else trial.snapshot(self.snapshot)

    def checkpoint(self, fold: int) -> Path:
        return self.folder.weights(fold)

    def oof(self) -> np.ndarray:
        """OOF probabilities, uint8 (N, C, h, w), memory-mapped: nothing is read until used."""
        return open_array(self.folder.oof)


def read_trial(path: Path) -> TrialRecord | None:
    """A finished trial, or None when its folder is incomplete."""
    folder = TrialFolder(path)
    if not folder.complete:
        return None
    return TrialRecord(
        trial_id=folder.trial_id,
        path=path,
        config=folder.read_config(),
        metrics=folder.read_metrics(),
        cost=folder.read_cost(),
    )


def read_trials(study_dir: str | Path) -> list[TrialRecord]:
    """Every finished trial of a study, in folder-name order."""
    records = (read_trial(folder.root) for folder in StudyFolder(Path(study_dir)).trial_folders())
    return [r for r in records if r is not None]


def with_snapshots(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Each trial followed by its complete snapshots (``metrics.json`` written), which share its config and cost."""
    out = []
    for trial in trials:
        out.append(trial)
        for snap in TrialFolder(trial.path).snapshots():
            if snap.complete and snap.oof.is_file():
                metrics = {**trial.metrics, **read_json_file(snap.metrics_json)}
                out.append(TrialRecord(trial.trial_id, trial.path, trial.config, metrics, trial.cost, snapshot=snap.trial_id))
    return out
