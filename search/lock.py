"""One search per study at a time: a lock file in the study folder.

The lock is ``<study>/search.lock``, a small JSON file with the holder's pid, host, process start time,
its own start time and command. It is made complete under a temp name and linked into place, and a
link fails when the name exists, so two searches started at once cannot both take it (``O_EXCL`` on a
whole file). A lock whose holder is gone (same host, and no process with that pid and start time) was
left by a crash: it is taken over with a line saying so. A lock held on another host is never taken
over, since we cannot see whether its process lives: the error says which file to delete if it does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class StudyLocked(ValueError):
    """Another search holds the study; the message names the holder and the lock file."""


def process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (``/proc``), or None where it is gone.

    Together with the pid it tells a live holder from a new process that was given a dead one's pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat: starttime (after the command in parentheses)


def alive(pid: int, started: str | None) -> bool:
    """Whether the process that wrote a lock still runs on this host."""
    if Path("/proc/self/stat").exists():
        now = process_start(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"


class StudyLock:
    """``with StudyLock(path): ...`` holds the study's lock for the block; raises StudyLocked if held."""

    def __init__(self, path: Path, say: Any = print) -> None:
        self.path = Path(path)
        self.say = say
        self.held = False
        self.record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "process_start": process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:500],
        }

    def acquire(self) -> None:
        if self._link():
            return
        holder = self._read()
        if holder is None and self._link():  # its holder released it meanwhile
            return
        if holder is None or not self._stale(holder):
            raise StudyLocked(self._refusal(holder))
        if not self._take_over(holder):
            raise StudyLocked(self._refusal(self._read()))
        self.say(f"Took over the lock of a search that is gone ({_describe(holder)}): {self.path}")

    def release(self) -> None:
        """Remove the lock if it is still ours (a later search may have taken over a lock we lost)."""
        if self.held and self._read() == self.record:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _link(self) -> bool:
        """Write the whole record under a temp name, then link it to the lock name; False if it exists."""
        tmp = _own_file(self.path, "tmp")
        tmp.write_text(json.dumps(self.record) + "\n")
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self.held = True
        return True

    def _read(self) -> dict[str, Any] | None:
        """The holder's record; {} for a file that is not a lock record, None if there is no lock now."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _stale(self, holder: dict[str, Any]) -> bool:
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False
        return not alive(holder["pid"], holder.get("process_start"))

    def _take_over(self, stale: dict[str, Any]) -> bool:
        """Move the stale lock aside, check it is the one judged stale, then link ours (still exclusive)."""
        aside = _own_file(self.path, "stale")
        try:
            os.rename(self.path, aside)  # onto the empty file just made for it: nothing else is overwritten
        except FileNotFoundError:
            aside.unlink()
            return self._link()  # its owner or another search removed it meanwhile
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = {}
        if moved != stale:  # another search took it over between our read and our rename: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return self._link()

    def _refusal(self, holder: dict[str, Any] | None) -> str:
        if not holder:
            what = "a lock file that is not one of ours" if holder == {} else "another search"
            return f"study {self.path.parent} is locked by {what} ({self.path}); if no search runs on it, delete that file"
        return (
            f"study {self.path.parent} is being searched by {_describe(holder)} ({holder.get('command', '')}); "
            f"wait for it to end, or search another study (study=NAME); if that process is gone, delete {self.path}"
        )


def _own_file(lock: Path, kind: str) -> Path:
    """A new, uniquely named empty file beside the lock: what we later unlink is only ever ours."""
    fd, name = tempfile.mkstemp(prefix=f".{lock.name}.{kind}-", dir=lock.parent)
    os.close(fd)
    return Path(name)
