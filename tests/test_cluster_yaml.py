"""cluster.yaml and cluster-aws.yaml pass the checks `ray up` runs before it touches a machine."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.providers import _get_node_provider_cls
from ray.autoscaler._private.util import prepare_config, validate_config

from search.node_start import main as node_start
from search.node_start import node_kind, parse_hosts

ROOT = Path(__file__).resolve().parents[1]


def ray_up_checks(config: dict) -> dict:
    """What `ray up` does first: fill the provider's defaults, validate against Ray's schema, load the provider."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    _get_node_provider_cls(prepared["provider"])
    return prepared


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-aws.yaml"])
def test_cluster_files_pass_rays_validation(name: str) -> None:
    config = yaml.safe_load((ROOT / name).read_text())
    prepared = ray_up_checks(config)
    commands = " ".join(prepared["head_start_ray_commands"] + prepared["worker_start_ray_commands"])
    assert "search.node_start --head --kind proto" in commands
    assert "--mlflow" in commands  # the head starts the tracking server
    if name == "cluster-aws.yaml":
        types = prepared["available_node_types"]
        assert types[prepared["head_node_type"]]["resources"] == {"proto": 1}
        assert {"heavy": 1} in [t["resources"] for t in types.values()]


def test_rays_validation_catches_a_typo_so_the_test_above_can_fail() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["worker_start_ray_comands"] = config.pop("worker_start_ray_commands")
    with pytest.raises(Exception, match="worker_start_ray_comands"):
        ray_up_checks(config)


def test_node_kind_from_the_host_map_the_flag_or_the_gpus() -> None:
    hosts = parse_hosts("10.0.0.5=proto, 10.0.0.6=heavy")
    assert node_kind("heavy", hosts, "10.0.0.5", gpus=0) == "proto"
    assert node_kind("proto", hosts, "10.0.0.9", gpus=4) == "proto"
    assert node_kind("auto", hosts, "10.0.0.9", gpus=1) == "heavy"
    assert node_kind("auto", {}, None, gpus=0) == "proto"
    with pytest.raises(ValueError, match="ADDRESS=KIND"):
        parse_hosts("10.0.0.5=gpu")


def test_node_start_builds_the_ray_start_command(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "127.0.0.2 50000 127.0.0.3 22")
    assert node_start(["--kind", "heavy", "--dry-run", "--", "--address=127.0.0.2:6379"]) == 0
    out = capsys.readouterr().out
    assert "node 127.0.0.3: kind heavy" in out
    assert '--resources={"heavy": 1}' in out and "--node-ip-address=127.0.0.3" in out and "--address=127.0.0.2:6379" in out
    assert node_start(["--hosts", "127.0.0.3=gpu", "--dry-run"]) == 2
