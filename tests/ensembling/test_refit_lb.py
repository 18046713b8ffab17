"""Refit on every image, export either models, and the leaderboard record with its CV-vs-LB plot."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from ensembling_helpers import copy_study, one_line_error
from safetensors.torch import load_file

from ensembling import export, lb, predict, refit


@pytest.fixture(scope="module")
def refit_study(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = copy_study(tiny_study, tmp_path_factory.mktemp("refit"))
    assert refit.main([f"study={study}", "threads=1"]) == 0
    return study


def test_refit_trains_each_member_once_on_every_image(refit_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((refit_study / "ensemble.json").read_text())
    for member in manifest["members"]:
        trial = refit_study / "trials" / member["trial_id"]
        metrics = json.loads((trial / "refit" / "metrics.json").read_text())
        assert metrics["images"] == 16 and metrics["epochs"] == 1 and metrics["config"] == member["config"]
        refit_state, fold_state = load_file(trial / "refit" / "model.safetensors"), load_file(trial / "fold0" / "model.safetensors")
        assert refit_state.keys() == fold_state.keys()
        assert any(not (refit_state[k] == fold_state[k]).all() for k in refit_state)  # trained anew, not a copy
    assert refit.main([f"study={refit_study}"]) == 0  # again: kept, not retrained
    assert "already refit, kept" in capsys.readouterr().out


def test_export_takes_refit_or_fold_models_and_lb_records_both(refit_study: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    subs = {}
    for models in ("folds", "refit"):
        out = tmp_path / f"export-{models}"
        assert export.main([f"study={refit_study}", f"out={out}", f"models={models}"]) == 0
        manifest = json.loads((out / "ensemble.json").read_text())
        assert manifest["models"] == models
        assert {len(m["checkpoints"]) for m in manifest["members"]} == ({2} if models == "folds" else {1})
        subs[models] = tmp_path / f"{models}.csv"
        args = [f"model={out}", f"images={tiny_data / 'test_images'}", f"sample={tiny_data / 'sample_submission.csv'}", f"out={subs[models]}"]
        assert predict.main(args) == 0
    ids = {m: json.loads(Path(f"{s}.ensemble.json").read_text())["ensemble_id"] for m, s in subs.items()}
    assert ids["folds"] != ids["refit"]
    assert lb.main([f"study={refit_study}", f"submission={subs['folds']}", "public=0.81", "private=0.8"]) == 0
    assert lb.main([f"study={refit_study}", f"submission={subs['refit']}", "public=0.83"]) == 0
    assert lb.main([f"study={refit_study}", f"submission={subs['refit']}", "public=0.84"]) == 0  # the same file again: replaced
    rows = json.loads((refit_study / "leaderboard.json").read_text())
    assert [(r["ensemble_id"], r["public"], r["private"]) for r in rows] == [(ids["folds"], 0.81, 0.8), (ids["refit"], 0.84, None)]
    manifest = json.loads((refit_study / "ensemble.json").read_text())
    assert rows[0]["oof_score"] == pytest.approx(manifest["oof_score"])
    mlflow.set_tracking_uri(yaml.safe_load((refit_study / "study.yaml").read_text())["mlflow"]["uri"])
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'leaderboard'")
    assert sorted(runs["metrics.public"]) == [0.81, 0.83, 0.84] and set(runs["tags.ensemble_id"]) == set(ids.values())
    plot = tmp_path / "cv_vs_lb.png"
    capsys.readouterr()
    assert lb.main([f"study={refit_study}", f"plot={plot}"]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 2 public and 1 private score, each against the optimistic OOF and against the nested estimate
    assert manifest["nested_score"] is not None
    assert f"Wrote {plot}: 6 point(s)" in capsys.readouterr().out


def test_lb_refuses_what_it_cannot_match(refit_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = tmp_path / "sub.csv"
    sub.write_text("ImageId_ClassId,EncodedPixels\n")
    assert lb.main([f"study={refit_study}", f"submission={sub}", "public=0.9"]) == 2
    assert "no sidecar naming the ensemble" in one_line_error(capsys)
    assert lb.main([f"study={refit_study}", f"submission={sub}", "public=0.9", "ensemble=nope"]) == 2
    assert "ensemble=nope: not an export of" in one_line_error(capsys)
    assert lb.main([f"study={refit_study}", f"submission={sub}", "public=abc"]) == 2
    assert "public must be a number >= 0, got 'abc'" in one_line_error(capsys)
    assert lb.main([f"study={refit_study}", f"plot={tmp_path}"]) == 2
    assert "is a folder; name a file" in one_line_error(capsys)


@pytest.mark.slow
def test_refit_through_ray_writes_the_same_files(tiny_study: Path, tmp_path: Path) -> None:
    study = copy_study(tiny_study, tmp_path)
    # its own interpreter: a Ray started inside the test process leaves later in-process Ray runs unable to start
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ensembling.refit", f"study={study}", "ray.address=local", "threads=1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((study / "ensemble.json").read_text())
    for member in manifest["members"]:
        metrics = json.loads((study / "trials" / member["trial_id"] / "refit" / "metrics.json").read_text())
        assert metrics["images"] == 16 and (study / "trials" / member["trial_id"] / "refit" / "model.safetensors").is_file()


def test_a_clocked_member_refits_for_the_epochs_its_clock_trained(tmp_path: Path) -> None:
    from ensembling.refit import clocked_epochs

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"epoch": 7, "oof_score": 0.9}))
    assert clocked_epochs({"train.epochs": 3, "train.time_limit": 60.0}, metrics) == 7  # not its plan of 3
    assert clocked_epochs({"train.epochs": 3}, metrics) == 0  # no limit: its own train.epochs
    assert clocked_epochs({"train.epochs": 3, "train.time_limit": 60.0}, tmp_path / "missing.json") == 0
