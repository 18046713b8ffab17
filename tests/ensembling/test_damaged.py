"""Damaged trials are named and skipped by selection, never used; it fails only when nothing is left."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ensembling_helpers import copy_study

from core.store import scan_trials
from ensembling import select


def _damage(trial: Path, how: str) -> Path:
    if how == "truncated oof":
        path = trial / "oof.npy"
        path.write_bytes(path.read_bytes()[:-10])
    elif how == "empty oof":
        path = trial / "oof.npy"
        path.write_bytes(b"")
    elif how == "oof of another shape":
        path = trial / "oof.npy"
        np.save(path, np.zeros((3, 4, 4, 4), np.uint8))
    elif how == "garbage metrics":
        path = trial / "metrics.json"
        path.write_bytes(b"\x00\x01 not json")
    elif how == "metrics without a score":
        path = trial / "metrics.json"
        metrics = json.loads(path.read_text())
        del metrics["oof_score"]
        path.write_text(json.dumps(metrics))
    elif how == "deleted weights":
        path = trial / "fold1" / "model.safetensors"
        path.unlink()
    elif how == "truncated weights":
        path = trial / "fold0" / "model.safetensors"
        path.write_bytes(path.read_bytes()[:5000])
    else:
        raise AssertionError(how)
    return path


DAMAGES = ["truncated oof", "empty oof", "oof of another shape", "garbage metrics", "metrics without a score", "deleted weights", "truncated weights"]


@pytest.mark.parametrize("how", DAMAGES)
def test_scan_names_the_damaged_file_and_keeps_the_rest(how: str, tiny_study: Path, tmp_path: Path) -> None:
    study = copy_study(tiny_study, tmp_path)
    path = _damage(study / "trials" / "t1", how)
    truth = np.load(study / "truth.npy", mmap_mode="r")
    scan = scan_trials(study, oof_shape=truth.shape)
    assert [r.trial_id for r in scan.records] == ["t0"]
    assert len(scan.problems) == 1 and scan.problems[0].startswith(f"skipped trial t1: {path}")


def test_select_skips_a_damaged_trial_with_a_line(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = copy_study(tiny_study, tmp_path)
    _damage(study / "trials" / "t0", "deleted weights")
    assert select.main([f"study={study}", "budget.images=100"]) == 0
    out = capsys.readouterr().out
    assert f"skipped trial t0: {study / 'trials' / 't0' / 'fold1' / 'model.safetensors'}: weights file not found" in out
    manifest = json.loads((study / "ensemble.json").read_text())
    assert [m["trial_id"] for m in manifest["members"]] == ["t1"]  # deleted weights are never selected


def test_select_fails_in_one_line_when_nothing_usable_is_left(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = copy_study(tiny_study, tmp_path)
    _damage(study / "trials" / "t0", "truncated oof")
    _damage(study / "trials" / "t1", "garbage metrics")
    assert select.main([f"study={study}", "budget.images=100"]) == 2
    captured = capsys.readouterr()
    assert "skipped trial t0" in captured.out and "skipped trial t1" in captured.out
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "no usable finished trial" in err and "2 damaged" in err
