"""ASHA rungs written on every result and read back by a restored scheduler: it prunes as before."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from search.rungs import ResumableASHA


def scheduler(path: Path, max_t: int = 8) -> ResumableASHA:
    return ResumableASHA(path, time_attr="epoch", metric="score", mode="max", max_t=max_t, grace_period=1, reduction_factor=2)


def trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id)


def test_a_restored_scheduler_prunes_against_the_saved_rungs(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.json"
    first = scheduler(path)
    for name, score in [("a", 0.9), ("b", 0.8), ("c", 0.7)]:
        first.on_trial_add(None, trial(name))
        first.on_trial_result(None, trial(name), {"epoch": 1, "score": score})
    saved = json.loads(path.read_text())
    assert saved["brackets"][0][-1]["recorded"] == {"a": 0.9, "b": 0.8, "c": 0.7}  # the milestone-1 rung
    assert saved["trial_bracket"] == {"a": 0, "b": 0, "c": 0}

    # a fresh scheduler (as Tune unpickles it on restore) loads them: a weak trial is stopped at once
    restored, fresh = scheduler(path), scheduler(tmp_path / "other.json")
    for s in (restored, fresh):
        s.on_trial_add(None, trial("d"))
    assert restored.on_trial_result(None, trial("d"), {"epoch": 1, "score": 0.1}) == TrialScheduler.STOP
    assert fresh.on_trial_result(None, trial("d"), {"epoch": 1, "score": 0.1}) == TrialScheduler.CONTINUE
    assert restored._num_stopped == saved["num_stopped"] + 1


def test_rungs_of_another_schedule_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.json"
    first = scheduler(path, max_t=8)
    first.on_trial_add(None, trial("a"))
    first.on_trial_result(None, trial("a"), {"epoch": 1, "score": 0.5})
    other = scheduler(path, max_t=4)
    with pytest.raises(ValueError, match=r"scheduler.json: ASHA rungs were saved for milestones \[\[8, 4, 2, 1\]\], this search has \[\[4, 2, 1\]\]"):
        other.on_trial_add(None, trial("b"))
