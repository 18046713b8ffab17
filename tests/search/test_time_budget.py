"""time_budget=: the parsing, the rule, the searcher wrapper on a clock the test moves, and a real search."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from ray.tune.search import Searcher
from searching import Search

from search.time_budget import TimeBudgetSearcher, expected_trial_seconds, fits, parse_budget


def test_budgets_read_as_seconds_and_a_bad_one_is_one_line() -> None:
    assert [parse_budget(v) for v in (None, 0, 400, 2.5, "90s", "6m", "1.5h", "10min", " 30 ")] == [0, 0, 400, 2.5, 90, 360, 5400, 600, 30]
    for bad in ("soon", "-5m", "6 hours", True, -3):
        with pytest.raises(ValueError, match="time_budget must be"):
            parse_budget(bad)


def test_a_trial_starts_only_when_the_time_left_holds_it() -> None:
    assert fits(10, 0, 100, 10)  # no budget
    assert fits(0, 300, None, 10)  # no estimate yet: the first wave starts
    assert not fits(300, 300, None, 10)  # the budget is spent
    assert expected_trial_seconds(20, 10) == 220  # ten epochs and one for the OOF predictions
    assert fits(80, 300, 20, 10) and not fits(81, 300, 20, 10)


class Recorder(Searcher):
    def __init__(self) -> None:
        super().__init__(metric="score", mode="max")
        self.suggested: list[str] = []

    def suggest(self, trial_id: str) -> dict:
        self.suggested.append(trial_id)
        return {"train.lr": 0.001 * len(self.suggested)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def test_the_searcher_stops_suggesting_once_a_trial_would_overrun_and_says_so_once() -> None:
    now = [1000.0]
    said: list[str] = []
    searcher = TimeBudgetSearcher(Recorder(), budget_s=300, epochs=10, say=said.append, clock=lambda: now[0])
    assert searcher.suggest("a") == {"train.lr": 0.001} and searcher.suggest("b") == {"train.lr": 0.002}
    now[0] += 40
    searcher.on_trial_result("a", {"iterations_since_restore": 2, "time_since_restore": 30.0})  # 15 s an epoch
    searcher.on_trial_result("b", {"iterations_since_restore": 2, "time_since_restore": 40.0})  # 20 s: the slower counts
    assert searcher.seconds_per_epoch == 20
    assert searcher.suggest("c") == {"train.lr": 0.003}  # 40 + 220 <= 300
    now[0] += 41  # 81 + 220 > 300
    assert searcher.suggest("d") == Searcher.FINISHED and searcher.suggest("e") == Searcher.FINISHED
    assert searcher.searcher.suggested == ["a", "b", "c"]
    assert len(said) == 1 and "81 s of 300 s used" in said[0] and "about 220 s" in said[0]


def test_a_restored_searcher_starts_its_clock_again() -> None:
    searcher = TimeBudgetSearcher(Recorder(), budget_s=100, epochs=2)
    searcher.started -= 500  # a run that spent its budget, then was interrupted
    assert searcher.suggest("a") == Searcher.FINISHED
    again = pickle.loads(pickle.dumps(searcher))
    assert again.suggest("b") == {"train.lr": 0.001}
    fresh = TimeBudgetSearcher(Recorder(), budget_s=100, epochs=2)
    fresh.set_state(searcher.get_state())  # as Tune's restore sets a wrapper's saved state
    assert "searcher" not in searcher.get_state() and fresh.suggest("c") == {"train.lr": 0.001}


def test_without_a_search_space_every_trial_gets_the_fixed_configuration() -> None:
    searcher = TimeBudgetSearcher(None, budget_s=100, epochs=2, say=lambda _: None)
    assert searcher.set_search_properties(None, None, {"train.lr": 0.001})
    assert searcher.suggest("a") == {}


@pytest.mark.slow
def test_a_search_with_a_budget_finishes_every_trial_it_started_and_starts_no_more(tmp_path: Path) -> None:
    # six trials asked; one at a time, each ~ tens of seconds: a 1 s budget lets only the first wave start
    search = Search(tmp_path, extra=("trials=6", "ray.max_concurrent=1", "time_budget=1", "scheduler.grace_period=2"))
    try:
        rc, log = search.run()
        assert rc == 0, log
        assert "time_budget:" in log and "no new trial starts" in log, log
        finished = search.finished()
        assert 1 <= len(finished) < 6, log
        assert {p.name.removeprefix("ray-") for p in search.study_dir.glob("ray-*")} == set(finished)  # none cut short
    finally:
        search.close()
