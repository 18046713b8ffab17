"""Reading a study's finished trials: their configs, scores, costs and memory-mapped OOF.

A trial folder is complete only when ``metrics.json`` exists (it is written last, atomically), so
folders of running, stopped or crashed trials are skipped without a word of doubt. A complete folder
whose files are damaged (a truncated OOF, unreadable metrics, a fold's weights deleted or cut short) is
never used: :func:`scan_trials` returns it as a problem that names the file and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.contract import (
    CLASS_OOF_DTYPE,
    CLASSIFICATION,
    DamagedFile,
    StudyFolder,
    TrialFolder,
    check_weights,
    open_array,
    read_json_file,
)

if TYPE_CHECKING:
    from core.data.study import Study


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

    @property
    def oof_dtype(self) -> Any:
        """uint8 masks (N, C, h, w), or float16 labels (N, K) for a classification trial (core/contract.py);
        None where metrics.json names no kind (either is read)."""
        kind = self.metrics.get("kind")
        return CLASS_OOF_DTYPE if kind == CLASSIFICATION else None if kind is None else np.uint8

    def oof(self) -> np.ndarray:
        """OOF probabilities, uint8 (N, C, h, w) or float16 (N, K) labels, memory-mapped: nothing is read until used."""
        return open_oof(self.folder.oof, dtype=self.oof_dtype)


def open_oof(path: Path, shape: tuple[int, ...] | None = None, dtype: Any = None) -> np.ndarray:
    """A checked OOF array of ``dtype``; None (a trial whose metrics.json names no kind: older or made by hand)
    takes uint8 (masks, or a classifier's levels), else a classifier's float16."""
    if dtype is not None:
        return open_array(path, shape, dtype)
    try:
        return open_array(path, shape)
    except DamagedFile as error:
        if "C-ordered uint8" not in str(error):
            raise
        try:
            return open_array(path, shape, CLASS_OOF_DTYPE)
        except DamagedFile as second:
            if "C-ordered float16" in str(second):
                raise error from None  # neither dtype: say what masks expect
            raise


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


def check_trial(record: TrialRecord, oof_shape: tuple[int, ...] | None = None) -> None:
    """Raise :class:`DamagedFile` or FileNotFoundError naming the first file of the trial that cannot be used:
    the OOF (header, dtype, shape, size), every fold's weights (a safetensors header that fits the file)."""
    open_oof(record.folder.oof, oof_shape, dtype=record.oof_dtype)
    for fold in record.folds:
        check_weights(record.checkpoint(fold))


@dataclass
class Scan:
    """The usable finished trials of a study, and one line per finished trial that was skipped as damaged."""

    records: list[TrialRecord]
    problems: list[str]


def scan_trials(study_dir: str | Path, oof_shape: tuple[int, ...] | None = None) -> Scan:
    """Every finished trial of a study, in folder-name order, each checked; damaged ones become problems."""
    scan = Scan([], [])
    for folder in StudyFolder(Path(study_dir)).trial_folders():
        try:
            record = read_trial(folder.root)
            if record is not None:
                check_trial(record, oof_shape)
        except (DamagedFile, FileNotFoundError) as error:
            scan.problems.append(f"skipped trial {folder.trial_id}: {error}")
            continue
        if record is not None:
            scan.records.append(record)
    return scan


def read_trials(study_dir: str | Path) -> list[TrialRecord]:
    """Every finished, undamaged trial of a study, in folder-name order (see :func:`scan_trials` for the rest)."""
    return scan_trials(study_dir).records


def with_snapshots(trials: list[TrialRecord], problems: list[str] | None = None, oof_shape: tuple[int, ...] | None = None) -> list[TrialRecord]:
    """Each trial followed by its complete snapshots (``metrics.json`` written), which share its config and cost.

    A damaged snapshot is checked like a trial and left out, with a line in ``problems``."""
    out = []
    for trial in trials:
        out.append(trial)
        for snap in TrialFolder(trial.path).snapshots():
            if not snap.complete:
                continue
            try:
                metrics = {**trial.metrics, **read_json_file(snap.metrics_json)}
                record = TrialRecord(trial.trial_id, trial.path, trial.config, metrics, trial.cost, snapshot=snap.trial_id)
                check_trial(record, oof_shape)
            except (DamagedFile, FileNotFoundError) as error:
                if problems is not None:
                    problems.append(f"skipped snapshot {trial.trial_id}/{snap.trial_id}: {error}")
                continue
            out.append(record)
    return out


def usable_records(scan: Scan, study: Study) -> list[TrialRecord]:
    """The scanned trials that finished every fold of this study's split (its folds hash), without a word."""
    return [t for t in scan.records if t.complete and t.metrics.get("folds_hash") == study.folds_hash]


def usable_trials(study: Study, only: list[str] | None = None) -> list[TrialRecord]:
    """Finished, undamaged trials that predicted every image of this study's split (of ``only``, trial ids, if given).

    Each damaged trial is skipped with a line naming the file and what is wrong; only when nothing usable
    is left is it an error. An id of ``only`` that is no usable trial is an error naming the usable ones.
    """
    scan = scan_trials(study.root)
    for problem in scan.problems:
        print(problem, flush=True)
    trials = usable_records(scan, study)
    if not trials:
        damaged = f" ({len(scan.problems)} damaged, listed above)" if scan.problems else ""
        raise ValueError(
            f"{study.root}: no usable finished trial covers every fold of this split{damaged}; "
            "run `python -m search.run` with train.folds unset first"
        )
    if only is None:
        return trials
    usable = {t.trial_id: t for t in trials}
    missing = [t for t in only if t not in usable]
    if missing:
        raise ValueError(f"trials={','.join(only)}: {', '.join(missing)} is no usable finished trial of {study.root} "
                         f"(usable: {', '.join(sorted(usable))})")
    return [usable[t] for t in dict.fromkeys(only)]
