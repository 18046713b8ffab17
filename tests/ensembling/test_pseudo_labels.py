"""Pseudo-labels and distillation for image labels: the same leak rule, soft class targets, a student candidate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from class_studies import add_trial, make_class_study, noisy, write_images
from safetensors.torch import load_file, save_file

from core.contract import PSEUDO_JSON, StudyFolder
from core.data.study import open_study
from core.store import usable_trials
from ensembling import distill, pseudo, select


@pytest.fixture(scope="module")
def class_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cls")
    study = make_class_study(root, n=24)
    truth = np.load(study / "truth.npy")
    add_trial(study, "a", noisy(truth, 0, False, 0.3))
    add_trial(study, "b", noisy(truth, 1, False, 0.3), seed=1)
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100", "nested=false"]) == 0
    write_images(root / "test", 6, seed=100)
    return study


def _fold1_says_class0(study: Path) -> None:
    for trial in ("a", "b"):
        path = StudyFolder(study).trial(trial).weights(1)
        state = load_file(str(path))
        state["fc.bias"] = torch.tensor([50.0, 0.0, 0.0])
        save_file(state, str(path))


def test_label_pseudo_targets_of_fold_k_come_from_fold_k_models(class_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    study = tmp_path / "study"
    shutil.copytree(class_study, study)
    test = class_study.parent / "test"
    assert pseudo.main([f"study={study}", f"images={test}", "precision=0.5", "soft=true", "name=before"]) == 0
    _fold1_says_class0(study)
    assert pseudo.main([f"study={study}", f"images={test}", "precision=0.5", "soft=true", "name=after"]) == 0
    assert "pseudo-labels: kept" in capsys.readouterr().out
    before, after = StudyFolder(study).extra("before"), StudyFolder(study).extra("after")
    assert np.array_equal(np.load(before.targets("images", 0)), np.load(after.targets("images", 0)))
    fold1 = np.load(after.targets("images", 1)).astype(np.float32)
    assert fold1.dtype == np.float32 and np.allclose(fold1[:, 0], 1.0, atol=1e-3)
    report = json.loads((after.root / PSEUDO_JSON).read_text())
    assert report["oof_total"] == 24 and report["kept"]["1"] == 6 and report["confidence"] == "top class probability"


def test_a_label_student_is_a_candidate(class_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    study = tmp_path / "study"
    shutil.copytree(class_study, study)
    assert pseudo.main([f"study={study}", f"images={class_study.parent / 'test'}", "precision=0.5"]) == 0
    assert distill.main([f"study={study}", "extra=pseudo", "model.encoder=test_resnet", "train.threads=1"]) == 0
    assert "student distill: OOF log_loss" in capsys.readouterr().out
    opened = open_study(study)
    assert "distill" in {t.candidate_id for t in usable_trials(opened)}
    assert StudyFolder(study).trial("distill").read_config()["model.family"] == "timm"
    own0 = np.load(StudyFolder(study).extra("distill-distill").targets("own", 0)).astype(np.float32)
    folds = opened.folds["fold"].to_numpy()
    assert own0[folds == 0].sum() == 0 and np.allclose(own0[folds != 0].sum(axis=1), 1.0, atol=1e-2)  # soft class rows
