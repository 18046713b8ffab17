"""time_budget=: the parsing, the screen's gate on a clock the test moves, and a real budgeted search (search/planner.py plans it)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml
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
def test_a_budgeted_search_plans_trains_selects_and_refits_and_says_how_it_spent_the_time(tmp_path: Path) -> None:
    search = Search(tmp_path, extra=("time_budget=4m",))
    try:
        rc, log = search.run(timeout=600)
        assert rc == 0, log
        assert "Plan for time_budget=240s" in log and "How the time went" in log, log
        plan = json.loads((search.study_dir / "plan.json").read_text())
        stages = plan["stages"]
        assert list(stages) == ["setup", "screen", "finalists", "select", "refit", "reserve"]
        assert stages["finalists"]["spent"] > 0 and stages["select"]["spent"] > 0
        epochs = max(1, stages["finalists"]["epochs"])
        complete = [t for t in search.finished() if json.loads((search.study_dir / "trials" / t / "metrics.json").read_text())["complete"]]
        assert complete, log
        for trial in complete:  # the planner's epochs reached the finalists as their plan, and a clock with them
            config = yaml.safe_load((search.study_dir / "trials" / trial / "config.yaml").read_text())
            assert config["train.epochs"] == epochs and 0 < config["train.time_limit"] < 240, config
        assert "the clock decided" in stages["finalists"]["outcome"] and "train.time_limit" in log, stages["finalists"]
        members = {m["trial_id"] for m in json.loads((search.study_dir / "ensemble.json").read_text())["members"]}
        assert members <= set(complete)
        if plan["export_models"] == "refit":
            for member in members:
                refit = json.loads((search.study_dir / "trials" / member / "refit" / "metrics.json").read_text())
                assert refit["epochs"] == stages["refit"]["epochs"] >= 1  # the curve may have peaked before the finalists ended
                assert "refit for" in stages["refit"]["outcome"], stages["refit"]
        else:
            assert "fold models are exported" in stages["refit"]["outcome"], stages["refit"]
        assert f"models={plan['export_models']}" in log
        # a budget that cannot hold one epoch is refused before any trial starts, saying what it needs
        (tmp_path / "small").mkdir()
        again = Search(tmp_path / "small", extra=("time_budget=1",))
        try:
            rc, log = again.run(timeout=300)
            assert rc == 2 and "time_budget=1s cannot train one epoch" in log and "give at least time_budget=" in log, log
            assert again.finished() == [] and not list(again.study_dir.glob("ray-*")), log
        finally:
            again.close()
    finally:
        search.close()
