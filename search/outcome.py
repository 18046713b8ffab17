"""How a search ended: the finished trials, the failed ones with their error files, the unfinished.

Only a complete trial folder counts as finished (its ``metrics.json`` is written last), so a trial
that died after a good epoch is never ranked. A failed trial is named with the first line of its
error and Tune's ``error.txt`` in the study (``<study>/ray-<trial_id>/error.txt``). Trials neither
finished nor failed were stopped by an interruption: the same command continues them.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyarrow.fs import FileSelector

from core.store import TrialRecord, read_trials
from search.resume import EXPERIMENT_STATE, RAY_TRIAL_PREFIX, trial_id_of

ERROR_TXT = "error.txt"  # Ray Tune's name for a trial's last error, in its trial folder


@dataclass
class FailedTrial:
    trial_id: str
    error: str
    error_file: Path


@dataclass
class Outcome:
    finished: list[TrialRecord]
    failed: list[FailedTrial] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    interrupted: str = ""  # the signal that stopped the search (SIGINT, SIGTERM, SIGHUP), if one did

    @property
    def status(self) -> int:
        """Exit status: 0 with a trial to select from, 130 when interrupted (resume it), else 1."""
        if self.unfinished or self.interrupted:
            return 130
        return 0 if self.finished else 1


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip().splitlines()
    lines = [line for line in text if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:200]


def outcome(study_dir: Path, grid: Any, interrupted: bool = False) -> Outcome:
    """Read a Tune ResultGrid and the study folder into what the summary reports."""
    finished = read_trials(study_dir)
    done = {t.trial_id for t in finished}
    statuses = trial_statuses(grid, interrupted)
    failed, unfinished = [], []
    for result in grid:
        trial_id = trial_id_of(result.path)
        if trial_id in done:
            continue
        if result.error is not None or statuses.get(trial_id) == "ERROR":
            failed.append(FailedTrial(trial_id, _first_line(result.error), Path(result.path) / ERROR_TXT))
        elif statuses.get(trial_id) not in (None, "TERMINATED"):
            unfinished.append(trial_id)
    return Outcome(finished=finished, failed=failed, unfinished=unfinished)


def trial_statuses(grid: Any, interrupted: bool = False) -> dict[str, str]:
    """Each trial's Tune status; after an interrupt, as Tune saved it just before stopping the trials.

    Stopping an interrupted search marks its running trials TERMINATED in memory, like the trials ASHA
    stopped; the experiment state Tune saved first still says RUNNING for them, and a resume reads that.
    """
    statuses = {t.trial_id: t.status for t in getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or []}
    return {**statuses, **saved_statuses(grid)} if interrupted else statuses


def saved_statuses(grid: Any) -> dict[str, str]:
    """trial id -> status in the newest ``experiment_state-*.json`` of the grid's experiment ({} if unreadable)."""
    try:
        fs, folder = grid.filesystem, grid.experiment_path
        names = [i.path for i in fs.get_file_info(FileSelector(folder)) if fnmatch.fnmatch(posixpath.basename(i.path), EXPERIMENT_STATE)]
        if not names:
            return {}
        with fs.open_input_stream(max(names)) as stream:
            states = [json.loads(state) for state, _ in json.loads(stream.read())["trial_data"]]
        return {state["trial_id"]: state["status"] for state in states}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def error_files(study_dir: Path, outcome: Outcome) -> str:
    """Where to look when no trial finished: the error files, or the study's Tune folders."""
    files = [str(f.error_file) for f in outcome.failed if f.error_file.is_file()]
    return ", ".join(files[:3]) + (" ..." if len(files) > 3 else "") if files else f"{study_dir}/{RAY_TRIAL_PREFIX}*/{ERROR_TXT}"
