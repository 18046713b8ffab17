"""The parts of a clean interrupt that run without Ray: signals, the newest whole checkpoint, saved statuses.

The whole path (a real search interrupted, then resumed) is in test_interrupt_search.py.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyarrow.fs import LocalFileSystem

from search.outcome import trial_statuses
from search.session import Interrupts
from trainables.tune_edge import newest_checkpoint, write_manifest


def test_a_signal_outside_tune_stops_the_search_at_once_and_names_itself() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), Interrupts() as interrupts:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # the handler runs here at the latest
    assert interrupts.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before  # handlers given back


def test_inside_tune_the_first_signal_stops_tune_gracefully_and_a_second_at_once() -> None:
    stopped = []
    with Interrupts() as interrupts:
        with interrupts.fitting():
            signal.signal(signal.SIGUSR1, lambda sig, frame: stopped.append(sig))  # Tune's graceful stop
            os.kill(os.getpid(), signal.SIGHUP)
            assert stopped == [signal.SIGUSR1] and interrupts.name == "SIGHUP"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                signal.pause()
        with pytest.raises(KeyboardInterrupt), interrupts.fitting():  # the next stage does not start
            pass
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def _checkpoint(trial_dir: Path, index: int, epoch: int, whole: bool = True, manifest: bool = True) -> None:
    folder = trial_dir / f"checkpoint_{index:06d}"
    (folder / "fold0").mkdir(parents=True)
    (folder / "fold0" / "model.safetensors").write_bytes(b"w" * 100)
    (folder / "state.json").write_text(json.dumps({"epoch": epoch}))
    if manifest:
        write_manifest(folder)
    if not whole:  # a copy cut short by the stop
        (folder / "fold0" / "model.safetensors").write_bytes(b"w" * 10)


def test_a_resume_takes_the_newest_whole_checkpoint_even_one_tune_did_not_record(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 0, 0)  # the one Tune recorded
    _checkpoint(tmp_path, 1, 1)  # written while the search stopped
    _checkpoint(tmp_path, 2, 2, whole=False)
    _checkpoint(tmp_path, 3, 3, manifest=False)
    found = newest_checkpoint(LocalFileSystem(), str(tmp_path), "checkpoint_000000")
    assert found is not None and Path(found.path).name == "checkpoint_000001"
    assert newest_checkpoint(LocalFileSystem(), str(tmp_path), "checkpoint_000001") is None
    assert Path(newest_checkpoint(LocalFileSystem(), str(tmp_path)).path).name == "checkpoint_000001"
    assert newest_checkpoint(LocalFileSystem(), str(tmp_path / "none")) is None


@dataclass
class FakeTrial:
    trial_id: str
    status: str


@dataclass
class FakeAnalysis:
    trials: list[FakeTrial]


@dataclass
class FakeGrid:  # a ResultGrid after an interrupt: Tune marked its stopped trials TERMINATED in memory
    experiment_path: str
    _experiment_analysis: FakeAnalysis
    filesystem: LocalFileSystem = field(default_factory=LocalFileSystem)


def test_after_an_interrupt_the_statuses_are_those_tune_saved_before_stopping_the_trials(tmp_path: Path) -> None:
    saved = {"trial_data": [[json.dumps({"trial_id": "a", "status": "RUNNING"}), "{}"], [json.dumps({"trial_id": "b", "status": "TERMINATED"}), "{}"]]}
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")  # an older save
    (tmp_path / "experiment_state-2026-01-01_00-00-09.json").write_text(json.dumps(saved))
    grid = FakeGrid(str(tmp_path), FakeAnalysis([FakeTrial("a", "TERMINATED"), FakeTrial("b", "TERMINATED")]))
    assert trial_statuses(grid, interrupted=True) == {"a": "RUNNING", "b": "TERMINATED"}
    assert trial_statuses(grid) == {"a": "TERMINATED", "b": "TERMINATED"}
