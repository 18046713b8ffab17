"""The Ray a local search starts: every port on loopback, in a session of its own, stopped exactly.

Ray 2.60 binds its servers (GCS, raylet, the driver's and the workers' gRPC ports, the dashboard
agent, the metrics exporters) to 127.0.0.1 only when the node's address is 127.0.0.1, and it swaps
127.0.0.1 for the machine's outward address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's
switch for a one-machine Ray, read in ``ray/_private/services.py:get_node_ip_address``). With both,
nothing of the search listens beyond loopback.

The head runs as ``ray start --head --block`` in a session (process group) of its own, so a signal
to the driver's group (a terminal's Ctrl-C, ``timeout``, ``kill -- -PGID``) reaches only the driver:
it stops the trials, keeps their checkpoints, and then stops this Ray. Were Ray's processes in the
driver's group, the GCS would die first and the driver hang. If the driver is killed outright, the
kernel sends the head SIGTERM (``PR_SET_PDEATHSIG``) and Ray's own handler stops its processes.
Only the processes of that session are ever stopped, never another Ray on the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
ONE_MACHINE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keep 127.0.0.1 as the node's address
ADDRESS_FILE = "ray_current_cluster"  # ray start writes the GCS address here once the head is up
PR_SET_PDEATHSIG = 1


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the driver dies (Linux; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def session_members(sid: int) -> list[int]:
    """The live processes of session ``sid`` (read from /proc), this process excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # after the command: state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


@dataclass
class LocalRay:
    """A started head: ``ray.init(address=local.address)`` joins it, ``local.stop()`` ends it."""

    process: subprocess.Popen
    address: str
    temp_dir: Path

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the head (Ray stops its processes), then SIGKILL to whatever of its session is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        deadline = time.monotonic() + timeout
        while session_members(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in session_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _command(node_ip: str, temp_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        f"--node-ip-address={node_ip}", f"--port={free_port()}",
        # the defaults (10001, 52365) are fixed ports: a second search on the machine would collide
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]


def start_local_ray(node_ip: str = LOOPBACK, timeout: float = 120.0) -> LocalRay:
    """Start a Ray head on ``node_ip`` in its own session; returns once it takes drivers."""
    # Ray's socket paths live under its temp folder and must stay short: /tmp or RAY_TMPDIR, not a deep cwd
    base = Path(os.environ.get("RAY_TMPDIR") or "/tmp")
    base.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix="kvs-ray-", dir=base))
    env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **(ONE_MACHINE if node_ip == LOOPBACK else {})}
    # the metrics servers of the dashboard and the autoscaler default to fixed ports (44227, 44217) too
    env.update({"DASHBOARD_METRIC_PORT": str(free_port()), "AUTOSCALER_METRIC_PORT": str(free_port())})
    env.pop("RAY_ADDRESS", None)
    log = open(temp_dir / "ray-start.log", "w")  # noqa: SIM115 (the head writes it while it lives)
    process = subprocess.Popen(
        _command(node_ip, temp_dir), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_die_with_parent,
    )
    log.close()
    local = LocalRay(process, "", temp_dir)
    try:
        local.address = _wait_for_address(local, node_ip, timeout)
    except BaseException:  # an interrupt while it starts, too: no Ray is left behind
        local.stop()
        raise
    return local


def _wait_for_address(local: LocalRay, node_ip: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not _address(local.temp_dir):
        if local.process.poll() is not None or time.monotonic() > deadline:
            tail = (local.temp_dir / "ray-start.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"the local Ray did not start within {timeout:.0f} s (ray start --head on {node_ip}): {' | '.join(tail)}")
        time.sleep(0.2)
    return _address(local.temp_dir)


def _address(temp_dir: Path) -> str:
    try:
        return (temp_dir / ADDRESS_FILE).read_text().strip()
    except OSError:
        return ""
