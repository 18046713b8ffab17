"""Start Ray on one node of the cluster with the resource that says what kind of machine it is.

``cluster.yaml`` runs this on every node (``ray up`` takes one node type with the local provider,
so the kind comes from here): the prototyping box gets ``{"proto": 1}``, a GPU node ``{"heavy": 1}``.
The kind is ``--kind proto|heavy|auto`` (auto: heavy when the node has a GPU), and ``--hosts`` maps
addresses to kinds for a mixed list of workers (``--hosts 10.0.0.5=proto,10.0.0.6=heavy``). The
head also starts the MLflow tracking server (``--mlflow HOST:PORT``), its store and artifacts in
``--mlflow-root``, and waits until it answers. Every other word is passed on to ``ray start``.

    python -m search.node_start --head --kind proto --mlflow 127.0.0.1:5000 -- --port=6379
    python -m search.node_start --kind heavy -- --address=$RAY_HEAD_IP:6379
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

KINDS = ("proto", "heavy")


def gpu_count() -> int:
    """GPUs on this node, from nvidia-smi (no torch import: this runs before anything is set up)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def own_address() -> str | None:
    """The address this node was reached at: ``ray up`` connects over ssh, which names it."""
    parts = os.environ.get("SSH_CONNECTION", "").split()
    return parts[2] if len(parts) == 4 else None


def parse_hosts(text: str) -> dict[str, str]:
    hosts = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, kind = item.partition("=")
        if not sep or kind not in KINDS:
            raise ValueError(f"--hosts: {item!r} must look like ADDRESS=KIND with KIND one of {', '.join(KINDS)}")
        hosts[host] = kind
    return hosts


def node_kind(kind: str, hosts: dict[str, str], address: str | None, gpus: int) -> str:
    """The node's kind: the host map wins, then --kind; auto is heavy with a GPU, proto without."""
    if address in hosts:
        return hosts[address]
    if kind == "auto":
        return "heavy" if gpus > 0 else "proto"
    return kind


def ray_start_command(head: bool, kind: str, address: str | None, extra: list[str]) -> list[str]:
    ray = str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").exists() else "ray"
    cmd = [ray, "start", f"--resources={json.dumps({kind: 1})}"]
    if head:
        cmd.append("--head")
        if not any(word.startswith("--dashboard-host") for word in extra):
            cmd.append(f"--dashboard-host={address or '0.0.0.0'}")  # `ray job submit` reaches it there
        bootstrap = Path("~/ray_bootstrap_config.yaml").expanduser()  # written by `ray up`
        if bootstrap.is_file():
            cmd.append(f"--autoscaling-config={bootstrap}")
    if address and not any(word.startswith("--node-ip-address") for word in extra):
        cmd.append(f"--node-ip-address={address}")
    return cmd + extra


def start_mlflow(where: str, root: Path) -> subprocess.Popen:
    host, _, port = where.rpartition(":")
    root.mkdir(parents=True, exist_ok=True)
    mlflow = str(Path(sys.executable).with_name("mlflow")) if Path(sys.executable).with_name("mlflow").exists() else "mlflow"
    cmd = [mlflow, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"), "--host", host, "--port", port, "--workers", "2"]
    log = open(root / "server.log", "ab")  # noqa: SIM115 - the server outlives this process
    # training runs need no server-side jobs (GenAI scorers): seven fewer processes on the head
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    (root / "server.pid").write_text(str(server.pid))
    return server


def wait_healthy(url: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                return
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"the MLflow server exited with status {server.returncode}; see its server.log") from None
            if time.time() > deadline:
                raise RuntimeError(f"the MLflow server at {url} did not answer /health within {seconds:.0f} s") from None
            time.sleep(1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.node_start", description=__doc__.splitlines()[0])
    parser.add_argument("--head", action="store_true", help="start the head node (and the MLflow server)")
    parser.add_argument("--kind", default="auto", choices=[*KINDS, "auto"])
    parser.add_argument("--hosts", default="", help="ADDRESS=KIND,... overrides --kind for these addresses")
    parser.add_argument("--address", default=None, help="this node's address (default: the one ssh reached)")
    parser.add_argument("--mlflow", default="", help="HOST:PORT of the tracking server the head starts")
    parser.add_argument("--mlflow-root", default="~/kvs-mlflow", help="its sqlite store and artifacts")
    parser.add_argument("--dry-run", action="store_true", help="print the ray start command only")
    args, extra = parser.parse_known_args(argv)
    extra = [word for word in extra if word != "--"]
    try:
        hosts = parse_hosts(args.hosts)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    address = args.address or own_address()
    kind = node_kind(args.kind, hosts, address, gpu_count() if args.kind == "auto" else 0)
    cmd = ray_start_command(args.head, kind, address, extra)
    print(f"node {address or '(this machine)'}: kind {kind}; {' '.join(cmd)}", flush=True)
    if args.dry_run:
        return 0
    server = None
    if args.head and args.mlflow:
        server = start_mlflow(args.mlflow, Path(args.mlflow_root).expanduser())
    status = subprocess.run(cmd, check=False).returncode
    if status == 0 and server is not None:
        wait_healthy(f"http://{args.mlflow}", server, 120)
        print(f"MLflow tracking server: http://{args.mlflow}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
