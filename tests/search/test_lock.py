"""The study lock: one search per study, stale locks of dead processes taken over, foreign ones kept."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from search.lock import StudyLock, StudyLocked, process_start


def dead_pid() -> int:
    """The pid of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "search.lock"
    with StudyLock(path):
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(StudyLocked, match=rf"is being searched by pid {os.getpid()} on .* delete {path}"):
            StudyLock(path).acquire()
    assert not path.exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "search.lock"
    pid = dead_pid()
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "process_start": "1", "since": "then"}))
    said: list[str] = []
    with StudyLock(path, say=said.append):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert said == [f"Took over the lock of a search that is gone (pid {pid} on {socket.gethostname()} since then): {path}"]


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path: Path) -> None:
    """Our own pid with another start time is a new process that was given a dead holder's pid."""
    path = tmp_path / "search.lock"
    path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "process_start": "0", "since": "then"}))
    with StudyLock(path, say=lambda _: None):
        assert json.loads(path.read_text())["process_start"] == process_start(os.getpid())


def test_a_live_holder_and_another_host_are_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "search.lock"
    live = {"pid": os.getppid(), "host": socket.gethostname(), "process_start": process_start(os.getppid()), "since": "now"}
    path.write_text(json.dumps(live))
    with pytest.raises(StudyLocked, match=f"pid {os.getppid()}"):
        StudyLock(path).acquire()
    path.write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere", "since": "now"}))
    with pytest.raises(StudyLocked, match="on elsewhere"):
        StudyLock(path).acquire()
    path.write_text("garbage")
    with pytest.raises(StudyLocked, match="not one of ours"):
        StudyLock(path).acquire()
    assert path.read_text() == "garbage"


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    path = tmp_path / "search.lock"
    lock = StudyLock(path)
    lock.acquire()
    path.write_text(json.dumps({"pid": 1, "host": "other"}))  # taken over meanwhile
    lock.release()
    assert path.exists()


def test_the_lock_touches_no_file_but_its_own(tmp_path: Path) -> None:
    # a file named as the old fixed temp names were: it must survive acquire, take-over and release
    for kind in ("tmp", "stale"):
        (tmp_path / f".search.lock.{kind}-{os.getpid()}").write_text("a user's file")
    path = tmp_path / "search.lock"
    path.write_text(json.dumps({"pid": 2**22 + 17, "host": socket.gethostname(), "process_start": "0"}))  # a dead holder
    lock = StudyLock(path, say=lambda _: None)
    lock.acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f".search.lock.stale-{os.getpid()}", f".search.lock.tmp-{os.getpid()}"]
    assert all((tmp_path / name).read_text() == "a user's file" for name in names)
