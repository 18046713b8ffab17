"""Stages and placement: screening overrides, promotion, node kinds, and the no-node error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.contract import TrialFolder
from core.store import read_trials
from search.config import load_plan
from search.placement import PlacementError, check_fits, demand, nodes_of, stage_kind
from search.stages import full_run, promoted, screen_plan, stage_runs, tune_location

BASE = ["space=quick", "folds=3", "train.scale=0.5", "train.epochs=4"]


def node(address: str, **resources: float) -> dict:
    return {"Alive": True, "NodeManagerAddress": address, "Resources": {"CPU": 2.0, **resources}}


CLUSTER = nodes_of([node("127.0.0.2", proto=1.0), node("127.0.0.3", heavy=1.0, GPU=1.0), {**node("x"), "Alive": False}])


def test_auto_placement_uses_the_kinds_only_when_the_cluster_declares_them() -> None:
    assert [n.address for n in CLUSTER] == ["127.0.0.2", "127.0.0.3"]  # the dead node is not counted
    assert stage_kind("screen", "auto", CLUSTER) == "proto"
    assert stage_kind("full", "auto", CLUSTER) == "heavy"
    assert stage_kind("full", "auto", nodes_of([node("127.0.0.2")])) is None  # a laptop: anywhere
    assert stage_kind("full", "none", CLUSTER) is None
    assert stage_kind("full", "bigmem", CLUSTER) == "bigmem"


def test_a_trial_fits_only_on_a_node_with_all_it_needs() -> None:
    check_fits("full", demand({"cpu": 2, "gpu": 0.5}, "heavy"), CLUSTER)
    check_fits("screen", demand({"cpu": 1, "gpu": 0}, "proto"), CLUSTER)
    with pytest.raises(PlacementError, match=r"full trial, which needs \{CPU: 1, GPU: 0.5, heavy: 0.01\}.*--kind heavy"):
        check_fits("full", demand({"cpu": 1, "gpu": 0.5}, "heavy"), nodes_of([node("127.0.0.2", proto=1.0)]))
    with pytest.raises(PlacementError, match="screen trial"):  # proto has no GPU
        check_fits("screen", demand({"cpu": 1, "gpu": 1}, "proto"), CLUSTER)
    warning = check_fits("full", demand({"cpu": 1}, "heavy"), nodes_of([node("127.0.0.2")]), wait_for_nodes=True)
    assert warning is not None and warning.startswith("warning: ") and "autoscaler" in warning


def test_screen_plan_trains_one_fold_smaller_and_shorter() -> None:
    plan = load_plan([*BASE, "stage=screen", "screen.scale=0.5", "screen.epochs=2"])
    screen = screen_plan(plan)
    assert screen.fixed["train.folds"] == [0]
    assert screen.fixed["train.scale"] == pytest.approx(0.25)
    assert screen.fixed["train.epochs"] == 2
    assert "train.folds" not in plan.fixed  # the full stage keeps every fold
    assert [s.name for s in stage_runs(plan, [])] == ["screen"]
    assert stage_runs(plan, [])[0].asha


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("stage=fast", "stage must be one of screen, full, both"),
        ("promote.k=0", "promote.k must be >= 1"),
        ("screen.folds=[5]", "screen.folds must be a non-empty list of folds in 0..2"),
        ("screen.folds=[0,1,2]", "leave out at least one"),
        ("screen.scale=2", r"screen.scale multiplies train.scale and must be in \(0, 1\]"),
        ("storage=s3://bucket/studies", "ray.storage=s3://bucket/studies"),
    ],
)
def test_bad_stage_settings_are_one_line_errors(word: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_plan([*BASE, word])


def write_trial(study: Path, trial_id: str, score: float, complete: bool, **config: object) -> None:
    folder = study / "trials" / trial_id
    folder.mkdir(parents=True)
    flat = {"model.arch": "Unet", "model.encoder": "resnet18", "train.lr": 1e-3, "train.folds": [0], "seed": 0, **config}
    trial = TrialFolder(folder)
    trial.write_config(flat)
    folds = [0] if not complete else [0, 1, 2]
    np.save(trial.oof, np.zeros((4, 1, 8, 8), np.uint8))
    for k in folds:
        trial.weights(k).parent.mkdir(parents=True)
        save_file({"w": torch.zeros(2)}, str(trial.weights(k)))
    trial.write_cost({"ms_per_image": 1.0, "ms_per_image_all_folds": 1.0, "device": "cpu", "reference_ms": 1.0})
    trial.write_metrics({"oof_score": score, "ms_per_image": 1.0, "complete": complete, "folds": folds, "folds_hash": "h"})


def test_the_best_k_distinct_screened_configs_not_yet_trained_are_promoted(tmp_path: Path) -> None:
    write_trial(tmp_path, "a", 0.9, False, **{"model.arch": "FPN"})
    write_trial(tmp_path, "b", 0.8, False, **{"model.arch": "FPN"})  # the same configuration as a
    write_trial(tmp_path, "c", 0.7, False, **{"train.lr": 2e-3})
    write_trial(tmp_path, "d", 0.6, False, **{"model.encoder": "mobilenet_v2"})
    write_trial(tmp_path, "e", 0.95, False, **{"train.lr": 5e-3})
    write_trial(tmp_path, "e-full", 0.97, True, **{"train.lr": 5e-3, "train.folds": None})  # already promoted
    space = tmp_path / "arch_lr.yaml"  # a space of its own: what quick searches may change
    space.write_text(
        "description: which decoder, encoder and learning rate\n"
        "settings: {folds: 3, train.epochs: 4}\n"
        "search:\n"
        "  model.arch: {choice: [Unet, FPN]}\n"
        "  model.encoder: {choice: [resnet18, mobilenet_v2]}\n"
        "  train.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
    )
    plan = load_plan([f"space={space}", "stage=full", "promote.k=2"])
    trials = read_trials(tmp_path)
    points = promoted(plan, trials)
    assert points == [
        {"model.arch": "FPN", "model.encoder": "resnet18", "train.lr": 1e-3},
        {"model.arch": "Unet", "model.encoder": "resnet18", "train.lr": 2e-3},
    ]
    run = full_run(plan, trials)
    assert run.from_screen and run.num_samples == 2 and not run.asha
    assert not full_run(plan, [t for t in trials if t.complete]).from_screen  # no screen: Optuna samples


def test_tune_keeps_the_stages_apart_and_passes_a_storage_uri_through(tmp_path: Path) -> None:
    plan = load_plan([*BASE, "study=s"])
    assert tune_location(plan, tmp_path / "s", "full") == (str(tmp_path), "s")
    assert tune_location(plan, tmp_path / "s", "screen") == (str(tmp_path / "s"), "tune-screen")
    plan = load_plan([*BASE, "study=s", "ray.storage=s3://bucket/runs/"])
    assert tune_location(plan, tmp_path / "s", "full") == ("s3://bucket/runs", "s")
    assert tune_location(plan, tmp_path / "s", "screen") == ("s3://bucket/runs", "s-screen")


def test_fractional_gpus_come_from_the_space_or_the_command_line(tmp_path: Path) -> None:
    from search.tuner import _resources

    space = tmp_path / "gpu.yaml"
    space.write_text("settings:\n  ray.gpus_per_trial: 0.25\n  ray.cpus_per_trial: 2\nsearch:\n  train.lr: {loguniform: [1.0e-4, 1.0e-3]}\n")
    plan = load_plan([f"space={space}"])
    assert demand(_resources(plan), "heavy") == {"cpu": 2.0, "gpu": 0.25, "heavy": 0.01}
    plan = load_plan([f"space={space}", "ray.gpus_per_trial=0.5"])
    assert _resources(plan)["gpu"] == 0.5
    check_fits("full", demand(_resources(plan), "heavy"), CLUSTER)  # half of 127.0.0.3's GPU


def test_cpus_left_to_the_search_are_shared_on_the_stages_own_nodes() -> None:
    from search.placement import auto_cpus

    nodes = nodes_of([node("127.0.0.2", proto=1.0), {**node("127.0.0.3", heavy=1.0), "Resources": {"CPU": 8.0, "heavy": 1.0}}])
    assert auto_cpus(nodes, "heavy", trials=2) == 4.0  # 8 heavy CPUs for 2 trials
    assert auto_cpus(nodes, "heavy", trials=1) == 8.0
    assert auto_cpus(nodes, "proto", trials=4) == 1.0
    assert auto_cpus(nodes, None, trials=1) == 8.0  # 10 CPUs in all, but no node has more than 8
