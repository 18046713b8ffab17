"""ASHA whose rungs outlive the driver: a resumed search prunes against the scores it had seen.

Ray Tune saves the searcher with the experiment but not the scheduler, and restores the scheduler
that was pickled when the search began: every rung empty. This scheduler writes its rungs to
``<study>/scheduler.json`` (atomically) after every result and reads them back the first time a
restored search adds a trial. The file is plain JSON: per bracket, per milestone, trial id -> score
(already signed so that larger is better, as ASHA keeps it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from core.atomic import write_json


def rungs_state(scheduler: ASHAScheduler) -> dict[str, Any]:
    """What a resume needs: each bracket's recorded scores, each live trial's bracket, the stop count."""
    brackets = scheduler._brackets
    return {
        "brackets": [[{"milestone": m, "recorded": dict(r)} for m, r in b._rungs] for b in brackets],
        "trial_bracket": {tid: brackets.index(b) for tid, b in scheduler._trial_info.items()},
        "num_stopped": scheduler._num_stopped,
    }


def apply_rungs_state(scheduler: ASHAScheduler, state: dict[str, Any], where: str = "") -> None:
    """Load saved rungs into a scheduler built with the same grace period, max_t and reduction factor."""
    saved = state.get("brackets", [])
    mine = [[m for m, _ in b._rungs] for b in scheduler._brackets]
    theirs = [[rung["milestone"] for rung in bracket] for bracket in saved]
    if mine != theirs:
        raise ValueError(
            f"{where}ASHA rungs were saved for milestones {theirs}, this search has {mine}; resume with the "
            "settings the study began with (scheduler.*, train.epochs), or start a new study (resume=false)"
        )
    for bracket, rungs in zip(scheduler._brackets, saved, strict=True):
        for (_, recorded), rung in zip(bracket._rungs, rungs, strict=True):
            recorded.clear()
            recorded.update({str(k): float(v) for k, v in rung["recorded"].items()})
    scheduler._num_stopped = int(state.get("num_stopped", 0))


class ResumableASHA(ASHAScheduler):
    """ASHAScheduler that keeps its rungs in a JSON file and continues from it after a restore."""

    def __init__(self, state_path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state_path = str(state_path)
        self._loaded = False
        self._saved_bracket: dict[str, int] = {}

    def _load_once(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = Path(self._state_path)
        if path.is_file():
            try:
                state = json.loads(path.read_text())
            except ValueError as error:
                raise ValueError(f"{path}: not valid JSON ({error}); delete it to resume with empty ASHA rungs") from None
            apply_rungs_state(self, state, f"{path}: ")
            self._saved_bracket = {str(k): int(v) for k, v in state.get("trial_bracket", {}).items()}

    def save_rungs(self) -> None:
        write_json(self._state_path, rungs_state(self))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._load_once()
        index = self._saved_bracket.get(trial.trial_id)
        if index is not None and index < len(self._brackets):
            self._trial_info[trial.trial_id] = self._brackets[index]
        else:
            super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._load_once()
        action = super().on_trial_result(tune_controller, trial, result)
        self.save_rungs()
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if trial.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, trial, result)
        self.save_rungs()

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._trial_info.pop(trial.trial_id, None)
        self.save_rungs()

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._trial_info.pop(trial.trial_id, None)
        self.save_rungs()
