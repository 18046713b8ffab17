"""A two-stage study on a real three-node Ray cluster on loopback, and a heavy node lost mid-trial.

The head (127.0.0.2) is the prototyping box (``proto``), 127.0.0.3 and 127.0.0.4 heavy nodes. Screening trials
must run on the head and the promoted full trial on a heavy node (read back from the MLflow tags
of each child run); 127.0.0.4 is a second heavy node. While the full trial runs, its node is killed:
the trial resumes on the other heavy node from its last checkpoint, the study finishes, the selector reads
only complete trials, and Ray's checkpoints went to the ``ray.storage`` URI.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from core.store import read_trials
from ensembling.select import main as select_main
from search import run as search_run

pytestmark = pytest.mark.slow
STORE = 300 * 1024 * 1024
HEAVY = ("127.0.0.3", "127.0.0.4")


@pytest.fixture
def cluster():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] = "0"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"proto": 1}, "node_ip_address": "127.0.0.2", "object_store_memory": STORE},
    )
    heavy = {ip: cluster.add_node(num_cpus=1, resources={"heavy": 1}, node_ip_address=ip, object_store_memory=STORE) for ip in HEAVY}
    ray.init(address=cluster.address, _node_ip_address="127.0.0.2", include_dashboard=False)
    try:
        yield cluster, heavy
    finally:
        ray.shutdown()
        cluster.shutdown()


def kill_heavy_mid_trial(cluster: Cluster, heavy: dict, store: Path, events: list[str]) -> None:
    """Wait for the full trial's first checkpoint, then kill the node it runs on (Ray's node, not a process of it)."""
    deadline = time.time() + 240
    while time.time() < deadline:
        for result in store.glob("s/ray-*/result.json"):
            lines = result.read_text().splitlines()
            if lines and list(result.parent.glob("checkpoint_*")):
                ip = json.loads(lines[-1])["node_ip"]
                cluster.remove_node(heavy[ip], allow_graceful=False)
                events.append(f"killed {ip}")
                return
        time.sleep(0.5)
    events.append("no checkpoint of a full trial")


def test_two_stages_land_on_their_nodes_and_a_lost_node_is_survived(cluster, tmp_path: Path) -> None:
    head, heavy = cluster
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    events: list[str] = []
    killer = threading.Thread(target=kill_heavy_mid_trial, args=(head, heavy, tmp_path / "ray-store", events), daemon=True)
    killer.start()
    argv = [
        "space=quick", "study=s", f"storage={tmp_path / 's'}", f"mlflow.uri={uri}", "stage=both", "trials=2",
        "promote.k=1", "folds=2", "data.images=16", "train.epochs=4", "train.scale=0.25", "model.encoder_depth=3", "model.decoder_channels=[32,16,8]",
        "model.arch=Unet", "scheduler.grace_period=2", "screen.epochs=2",
        f"ray.storage=file://{tmp_path / 'ray-store'}",
    ]
    assert search_run.main(argv) == 0
    killer.join(timeout=10)
    assert len(events) == 1 and events[0].startswith("killed "), events
    killed = events[0].split()[1]
    survivor = next(ip for ip in HEAVY if ip != killed)

    study = tmp_path / "s" / "s"
    trials = read_trials(study)
    full = [t for t in trials if t.complete]
    assert len(full) == 1 and len([t for t in trials if not t.complete]) >= 1
    oof = full[0].oof()
    assert oof.shape[0] == 16 and full[0].folds == [0, 1] and np.asarray(oof).any()
    # the selector reads only the complete trial
    assert select_main([f"study={study}", "budget.seconds=1000", "budget.images=10"]) == 0
    assert "".join(os.listdir(study)).count("ensemble.json") == 1

    # Ray's checkpoints went to the ray.storage URI, the full stage and the screen apart
    store = tmp_path / "ray-store"
    assert list(store.glob("s/ray-*/checkpoint_*")) and (store / "s-screen").is_dir()

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("s")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("stage")]
    screens = [r for r in children if r.data.tags["stage"] == "screen"]
    fulls = [r for r in children if r.data.tags["stage"] == "full"]
    assert screens and all(r.data.tags["ray.node_ip"] == "127.0.0.2" for r in screens)
    assert all(r.data.tags["ray.node_kind"] == "proto" for r in screens)
    assert len(fulls) == 1
    assert fulls[0].data.tags["ray.nodes"] == f"{killed} -> {survivor}"  # resumed on the other heavy node
    assert fulls[0].data.tags["ray.node_id"] and fulls[0].data.tags["ray.node_kind"] == "heavy"
    parent = next(r for r in runs if r.data.tags.get("kind") == "search")
    note = parent.data.tags["mlflow.note.content"]
    assert "screen: 127.0.0.2 (proto)" in note and f"full: {killed} (heavy)" in note and f"full: {survivor} (heavy)" in note
