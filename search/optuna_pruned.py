"""Optuna that hears about ASHA: a trial the scheduler stopped early is told to Optuna as PRUNED.

Ray's ``OptunaSearch.on_trial_complete`` tells Optuna COMPLETE with the last reported score whenever
a result comes with the completion, and a trial that ASHA stops always comes with its last
(truncated) result. TPE then counts an epoch-1 score as a finished trial's, which biases it toward
configurations that look good early. Here a trial is COMPLETE only when its final result carries
``final_key`` (a trial of this project reports ``oof_score`` only after its last epoch, once its
folder is written); any other completion without an error is PRUNED, with the scores it reported on
the way as Optuna's intermediate values, as Optuna's own pruners would leave it.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)

FINAL_KEY = "oof_score"  # reported by a trial only once it has trained every epoch and written its folder


class PrunedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna PRUNED for a trial stopped before its final report."""

    def __init__(self, *args: Any, final_key: str = FINAL_KEY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._final_key = final_key

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An epoch without validation (train.val_every) reports no score: nothing to tell Optuna."""
        if isinstance(self.metric, str) and self.metric not in result:
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error or not result or self._final_key in result or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        # stopped by the scheduler (or the user) before its final report
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        try:
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        except Exception as exc:  # as Ray's own: a bad value must not end the search
            logger.warning(exc)
        self._completed_trials.add(trial_id)

    @property
    def study(self) -> Any:
        """The Optuna study (for a summary or a test)."""
        return self._ot_study
