"""A search interrupted mid-trial ends cleanly (exit 130, runs KILLED, lock gone, its Ray stopped), listens
only on loopback while it runs, and the same command goes on from the newest checkpoint.

Real subprocesses of ``python -m search.run`` on the synthetic data (16 images, 2 folds at
1/8 scale, 8 epochs, one trial), a real local Ray, a real SQLite MLflow store.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from pathlib import Path

import mlflow
import pytest
from searching import Search, cmdline, wait_for

pytestmark = pytest.mark.slow

EXTRA = ("trials=1", "train.epochs=8")  # Tune lets a trial run ~5 s after the signal: it must not finish meanwhile


def _inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    return ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))  # 4 words, each little-endian


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def listening(pids: list[int]) -> list[tuple[str, str]]:
    """(process, address:port) of every TCP socket in LISTEN state that one of these processes holds."""
    owners = {inode: pid for pid in pids for inode in _inodes(pid)}
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in owners:  # 0A: LISTEN
                host, port = local.split(":")
                found.append((_name(owners[inode]), f"{_address(host)}:{int(port, 16)}"))
    return found


def on_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def runs(search: Search) -> tuple[list, list]:
    client = mlflow.MlflowClient(tracking_uri=search.uri)
    experiment = client.get_experiment_by_name(search.study)
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in found if r.data.tags.get("kind") == "search"], [r for r in found if r.data.tags.get("kind") == "trial"]


def ended_cleanly(search: Search, log: str, name: str) -> None:
    assert f"Interrupted ({name}) with 1 trial(s) unfinished" in log, log
    assert "Next:" not in log and "Traceback" not in log
    assert not (search.study_dir / "search.lock").exists()
    assert search.our_pids() == [], [cmdline(pid) for pid in search.our_pids()]  # its Ray is stopped, all of it
    parents, trials = runs(search)
    assert [r.info.status for r in parents] == ["KILLED"] and [r.info.status for r in trials] == ["KILLED"]


def newest_epoch(search: Search) -> int:
    """The epoch of the newest checkpoint on disk (0-based, completed), the one written at the stop included."""
    states = search.study_dir.glob("ray-*/checkpoint_*/state.json")
    return max(json.loads(p.read_text())["epoch"] for p in states)


def test_ctrl_c_to_the_driver_ends_cleanly_on_loopback_and_the_rerun_goes_on_from_the_newest_checkpoint(tmp_path: Path) -> None:
    search = Search(tmp_path, extra=EXTRA)
    try:
        proc = search.start()
        wait_for(lambda: bool(search.reported()), proc)
        sockets = listening(search.our_pids())
        assert any("gcs_server" in who for who, _ in sockets) and len(sockets) >= 5, sockets
        assert [s for s in sockets if not on_loopback(s[1])] == [], sockets

        # the driver alone, about a second before the trial's next report: that report's checkpoint is then
        # written while the search stops, after Tune saved its state, and the rerun must still take it
        (trial_id,) = search.reported()
        results = search.study_dir / f"ray-{trial_id}" / "result.json"
        epoch_s = json.loads(results.read_text().splitlines()[-1])["time_this_iter_s"]
        time.sleep(max(0.0, results.stat().st_mtime + epoch_s - 1.0 - time.time()))
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=300) == 130, search.log(0)
        ended_cleanly(search, search.log(0), "SIGINT")
        epoch = newest_epoch(search)

        rc, log = search.run()
        assert rc == 0, log
        assert "Resuming study" in log
        assert search.finished() == [trial_id]
        rows = [json.loads(line) for line in (search.study_dir / f"ray-{trial_id}" / "result.json").read_text().splitlines()]
        restored = max(i for i, row in enumerate(rows) if row["iterations_since_restore"] == 1)
        assert restored > 0 and rows[restored]["epoch"] == epoch + 2, rows  # reported epochs count from 1: none trained twice
        assert rows[-1]["epoch"] == 8
        assert f"full: 127.0.0.1: 1 done ({trial_id})" in log  # the summary names what ran, before the resume too
        parents, trials = runs(search)
        assert [r.info.status for r in parents] == ["FINISHED"] and [r.info.status for r in trials] == ["FINISHED"]
    finally:
        search.close()


def test_sigterm_to_the_whole_process_group_ends_as_cleanly(tmp_path: Path) -> None:
    search = Search(tmp_path, extra=EXTRA)
    try:
        proc = search.start()
        wait_for(lambda: bool(search.reported()), proc)
        os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` and `kill -- -PGID` do: Ray's processes are not in it
        assert proc.wait(timeout=300) == 130, search.log(0)
        ended_cleanly(search, search.log(0), "SIGTERM")
    finally:
        search.close()
