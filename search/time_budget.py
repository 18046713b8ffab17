"""``time_budget=``: start no trial the search's wall-time budget cannot see finished.

A search given ``time_budget=6m`` (or ``400`` seconds, ``1.5h``) keeps launching trials while the time
left can hold one more: a trial's expected duration is the slowest seconds-per-epoch any trial of this
run has reported, times the trial's epochs, plus one epoch for the out-of-fold predictions at its end.
Until a trial has reported, trials start freely (the first wave fills the free slots). A trial already
running is never cut short: it trains its epochs and writes its folder, so every trial the budget
started feeds the selector. The clock starts when the command starts, and again when an interrupted
search is run again.

The rule (:func:`fits`) and the parsing are pure; :class:`TimeBudgetSearcher` is the thin Ray Tune
wrapper around the stage's searcher.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ray.tune.search import Searcher

UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(value: Any, key: str = "time_budget") -> float:
    """Seconds from ``400``, ``"90s"``, ``"6m"`` or ``"1.5h"``; 0 or None: no budget."""
    if value is None or value == 0:
        return 0.0
    if isinstance(value, bool):
        raise ValueError(f"{key} must be seconds or a duration like 90s, 6m or 1.5h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", str(value))
        if not match:
            raise ValueError(f"{key} must be seconds or a duration like 90s, 6m or 1.5h, got {value!r}")
        seconds = float(match.group(1)) * UNITS[match.group(2) or ""]
    if seconds < 0:
        raise ValueError(f"{key} must be >= 0 (0: no budget), got {value!r}")
    return seconds


def expected_trial_seconds(seconds_per_epoch: float, epochs: int) -> float:
    """A trial's epochs and, at its end, about one more epoch's time for its OOF predictions and folder."""
    return seconds_per_epoch * (epochs + 1)


def fits(elapsed: float, budget: float, seconds_per_epoch: float | None, epochs: int) -> bool:
    """Whether a trial started now should end inside the budget (no estimate yet: it may start)."""
    if budget <= 0:
        return True
    if elapsed >= budget:
        return False
    if seconds_per_epoch is None:
        return True
    return elapsed + expected_trial_seconds(seconds_per_epoch, epochs) <= budget


def _say(message: str) -> None:
    print(message, flush=True)


class _Samples(Searcher):
    """A searcher for a space with nothing to search: every trial gets the fixed configuration."""

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the fixed configuration comes with the stage's param_space

    def suggest(self, trial_id: str) -> dict | None:
        return {}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


class TimeBudgetSearcher(Searcher):
    """The stage's searcher, refusing a new trial once the budget cannot see it finish."""

    def __init__(self, searcher: Searcher | None, budget_s: float, epochs: int, say: Any = None, clock: Any = time.time) -> None:
        self.searcher = searcher or _Samples()
        super().__init__(metric=self.searcher.metric, mode=self.searcher.mode)
        self.budget_s, self.epochs, self.say, self.clock = budget_s, epochs, say or _say, clock
        self.started = clock()
        self.seconds_per_epoch: float | None = None
        self.stopped = False

    # the budget counts each run of the command: a restored searcher starts its clock again
    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.say = self.__dict__.get("say") or _say
        self.clock = self.__dict__.get("clock") or time.time
        self.started = self.clock()
        self.stopped = False

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | str | None:
        elapsed = self.clock() - self.started
        if not fits(elapsed, self.budget_s, self.seconds_per_epoch, self.epochs):
            if not self.stopped:
                per_trial = expected_trial_seconds(self.seconds_per_epoch or 0.0, self.epochs)
                self.say(
                    f"time_budget: {elapsed:.0f} s of {self.budget_s:.0f} s used and a trial takes about {per_trial:.0f} s: "
                    "no new trial starts; the running ones finish"
                )
            self.stopped = True
            return Searcher.FINISHED
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        epochs_done = result.get("iterations_since_restore") or 0
        seconds = result.get("time_since_restore") or 0.0
        if epochs_done >= 1 and seconds > 0:  # this run's own pace, not one restored from a checkpoint
            pace = seconds / epochs_done
            self.seconds_per_epoch = max(pace, self.seconds_per_epoch or 0.0)
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    # Tune saves a wrapper's own state (without the searcher it wraps, saved on its own), as for its ConcurrencyLimiter
    def get_state(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("searcher", "say", "clock")}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)
        self.started = self.clock()
        self.stopped = False
