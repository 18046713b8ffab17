"""The search against a real Ray cluster (`ray start --head`) and a real MLflow tracking server.

Both listen on loopback addresses only; the test stops them whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import ray

from search import run as search_run

pytestmark = pytest.mark.slow
RAY_IP = "127.0.0.2"  # Ray swaps 127.0.0.1 for the machine's outward address; other loopbacks stay


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name)) if Path(sys.executable).with_name(name).exists() else name


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port("127.0.0.1")
    cmd = [venv_bin("mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("mlflow server did not become healthy") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    os.environ["RAY_AUTH_MODE"] = "disabled"
    port = free_port(RAY_IP)
    temp = Path(f"/tmp/rayt-{os.getpid()}")  # socket paths must stay short
    cmd = [venv_bin("ray"), "start", "--head", f"--node-ip-address={RAY_IP}", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=false", f"--temp-dir={temp}", "--object-store-memory=300000000"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=120)
    try:
        yield f"{RAY_IP}:{port}"
    finally:
        ray.shutdown()
        stop_ray_under(temp)  # not `ray stop`: that stops every Ray of the machine, not only this test's
        shutil.rmtree(temp, ignore_errors=True)


def stop_ray_under(temp: Path) -> None:
    """Kill the Ray processes of the cluster whose temp dir is ``temp`` (their command lines name it);
    its workers end with their raylet."""
    ours = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if str(temp).encode() in (proc / "cmdline").read_bytes() and int(proc.name) != os.getpid():
                ours.append(int(proc.name))
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in ours) and time.time() < deadline:
        time.sleep(0.2)


def test_search_on_a_cluster_logs_to_a_tracking_server(mlflow_server: str, ray_cluster: str, tmp_path: Path) -> None:
    argv = [
        "space=quick", "study=remote", f"storage={tmp_path}", "trials=1", "folds=2", "data.images=16",
        "train.epochs=1", "train.scale=0.125", f"ray.address={ray_cluster}", f"ray.node_ip={RAY_IP}",
        f"mlflow.uri={mlflow_server}",
    ]
    assert search_run.main(argv) == 0
    assert not ray.is_initialized()  # the driver disconnected when it ended
    # the search ran on the cluster, not in a Ray started by the driver: the cluster lists its (ended) job
    ray.init(address=ray_cluster)
    try:
        jobs = ray._private.state.jobs()
        ours = [j for j in jobs if j["DriverPid"] == os.getpid()]
        assert len(ours) == 2 and sum(j["IsDead"] for j in ours) == 1, jobs
    finally:
        ray.shutdown()
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("remote").experiment_id])
    trial_runs = [r for r in runs if "oof_score" in r.data.metrics]
    assert len(trial_runs) == 1 and trial_runs[0].info.status == "FINISHED"
    assert (tmp_path / "remote" / "trials").is_dir()
