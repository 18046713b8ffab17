"""Helpers for tests that run ``python -m search.run`` in a subprocess and interrupt it.

Each search runs in its own session (process group) with its own Ray temp folder on a short path
and a marker in its environment, so a test can kill exactly the processes it started (the driver,
Ray's processes and the trial workers) and nothing of another Ray on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY_SPACE = """\
description: a tiny search for the tests of resume, retry and the study lock
settings:
  trials: 3
  folds: 2
  data.images: 16
  train.epochs: 2
  train.batch_size: 4
  train.scale: 0.125
  train.threads: 1
  model.arch: Unet
  model.encoder: resnet18
  model.encoder_depth: 3
  tta: none
  scheduler.grace_period: 2
search:
  train.lr: {loguniform: [5.0e-4, 5.0e-3]}
"""


class Search:
    """One study searched by subprocesses that share a storage folder, MLflow store and Ray temp folder."""

    def __init__(self, root: Path, study: str = "s", extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.space = root / "tiny.yaml"
        self.space.write_text(TINY_SPACE)
        self.storage = root / "studies"
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.study = study
        self.marker = f"kvs-test-{os.getpid()}-{id(self)}"
        self.ray_tmp = Path(f"/tmp/rt{os.getpid() % 100000}-{id(self) % 1000}")  # Ray's socket paths must stay short
        self.argv = [f"space={self.space}", f"study={study}", f"storage={self.storage}", f"mlflow.uri={self.uri}", *extra]
        self.procs: list[subprocess.Popen] = []

    @property
    def study_dir(self) -> Path:
        return self.storage / self.study

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "RAY_TMPDIR": str(self.ray_tmp),
            "RAY_AUTH_MODE": "disabled",
            "OMP_NUM_THREADS": "1",
            "TUNE_GLOBAL_CHECKPOINT_S": "1",  # Tune saves its state every second: the kill below finds a recent one
            "KVS_TEST_MARKER": self.marker,
        }

    def start(self, *more: str) -> subprocess.Popen:
        self.ray_tmp.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"search-{len(self.procs)}.log", "w")  # noqa: SIM115 (the process owns it)
        proc = subprocess.Popen(
            [sys.executable, "-m", "search.run", *self.argv, *more],
            cwd=self.root, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, *more: str, timeout: float = 400) -> tuple[int, str]:
        proc = self.start(*more)
        rc = proc.wait(timeout=timeout)
        return rc, self.log(len(self.procs) - 1)

    def log(self, index: int) -> str:
        return (self.root / f"search-{index}.log").read_text()

    def our_pids(self) -> list[int]:
        """Every live process with this search's marker in its environment (driver, Ray, workers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if f"KVS_TEST_MARKER={self.marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def kill_all(self) -> None:
        for pid in self.our_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        self.kill_all()
        subprocess.run(["rm", "-rf", str(self.ray_tmp)], check=False)

    # what the study holds
    def finished(self) -> list[str]:
        trials = self.study_dir / "trials"
        return sorted(p.name for p in trials.iterdir() if (p / "metrics.json").is_file()) if trials.is_dir() else []

    def reported(self) -> list[str]:
        """Unfinished trials whose first report (with its checkpoint) the driver has processed."""
        done = set(self.finished())
        return sorted(
            p.parent.name.removeprefix("ray-")
            for p in self.study_dir.glob("ray-*/result.json")
            if p.stat().st_size > 0 and p.parent.name.removeprefix("ray-") not in done
        )

    def saved_with_checkpoint(self) -> list[str]:
        """Unfinished trials whose checkpoint is in Tune's newest saved experiment state (so a resume uses it)."""
        states = sorted(self.study_dir.glob("experiment_state-*.json"))
        try:
            trials = json.loads(states[-1].read_text())["trial_data"] if states else []
        except (OSError, ValueError, KeyError):
            return []
        done = set(self.finished())
        found = []
        for state, metadata in trials:
            trial_id = json.loads(state)["trial_id"]
            if "checkpoint_0" in metadata and trial_id not in done:
                found.append(trial_id)
        return sorted(found)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the search ended (status {proc.returncode}) before the condition held")
        if time.time() > deadline:
            raise AssertionError("timed out waiting for the search")
        time.sleep(0.3)


def process_group(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return -1


TRIAL_WORKERS = ("ray::ImplicitFunc", "ray::IDLE")  # the processes that train a trial (or wait to)


def kill_when(search: Search, proc: subprocess.Popen, condition: Callable[[], bool], spare: tuple[subprocess.Popen, ...] = ()) -> None:
    """SIGKILL ``proc``'s process group and its trial workers at a moment the condition holds.

    The condition is checked on a frozen search: every process of it (but those of ``spare``) is stopped
    with SIGSTOP, the condition read again, and then the group and the trial workers killed and Ray's
    other processes resumed (to see the driver gone), or everything resumed and the wait goes on.
    Without the freeze a trial could finish between the check and the kill; a worker resumed after it
    could finish its trial before hearing that the driver died.
    """
    spared = {p.pid for p in spare}
    deadline = time.time() + 300
    while True:
        wait_for(condition, proc, timeout=max(1.0, deadline - time.time()))
        frozen = [pid for pid in search.our_pids() if process_group(pid) not in spared]
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        held = condition()
        if held:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in frozen:
            # Ray's own processes go on, to see the driver gone and clean up; a trial worker dies with the
            # driver (resumed, it could finish its trial in the moment before it hears the driver died)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if held and cmdline(pid).startswith(TRIAL_WORKERS) else signal.SIGCONT)
        if held:
            proc.wait(timeout=30)
            return


def children(pid: int) -> list[int]:
    """All descendants of a process, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
