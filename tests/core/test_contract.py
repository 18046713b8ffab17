"""The study/trial folder contract: typed reads name the damaged file and what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.contract import DamagedFile, TrialFolder, check_weights, open_array


def test_open_array_reads_a_good_file_and_checks_its_shape(tmp_path):
    path = tmp_path / "oof.npy"
    np.save(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    assert open_array(path, (2, 3, 4))[1, 2, 3] == 23
    with pytest.raises(DamagedFile, match=r"oof.npy: expected shape \(2, 3, 5\), got \(2, 3, 4\)"):
        open_array(path, (2, 3, 5))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-7], "truncated or padded"),
        (lambda b: b"", "not a .npy array file"),
        (lambda b: bytes(range(256)) * 4, "not a .npy array file"),
    ],
)
def test_open_array_names_a_damaged_file(tmp_path, damage, message):
    path = tmp_path / "oof.npy"
    np.save(path, np.zeros((4, 2, 8, 8), np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DamagedFile, match=f"{path}: {message}"):
        open_array(path)


def test_open_array_refuses_another_dtype(tmp_path):
    path = tmp_path / "truth.npy"
    np.save(path, np.zeros(3, np.float32))
    with pytest.raises(DamagedFile, match="expected a C-ordered uint8 array, got float32"):
        open_array(path)


def test_check_weights_accepts_safetensors_and_names_truncated_ones(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(64, 64)}, str(path))
    check_weights(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DamagedFile, match="truncated safetensors file"):
        check_weights(path)
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(DamagedFile, match="not a safetensors file"):
        check_weights(path)


def test_metrics_round_trip_and_missing_keys_are_named(tmp_path):
    trial = TrialFolder(tmp_path / "t1")
    metrics = {"oof_score": 0.5, "ms_per_image": 3.0, "folds": [0, 1], "complete": True, "folds_hash": "abc", "epoch": 2}
    trial.write_metrics(metrics)
    assert trial.complete and trial.read_metrics() == metrics
    trial.metrics_json.write_text(json.dumps({"oof_score": 0.5}))
    with pytest.raises(DamagedFile, match=r"metrics\.json: key 'ms_per_image' is missing"):
        trial.read_metrics()
    trial.metrics_json.write_text("{not json")
    with pytest.raises(DamagedFile, match=r"metrics\.json: not valid JSON"):
        trial.read_metrics()
    with pytest.raises(DamagedFile, match="complete must be bool"):
        trial.write_metrics({**metrics, "complete": 1})
