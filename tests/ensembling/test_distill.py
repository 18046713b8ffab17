"""ensembling.distill: a student trial on fold-k teacher targets and pseudo-labels, a candidate of the selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ensembling_helpers import copy_study, one_line_error

from core.contract import StudyFolder
from core.data.study import open_study
from core.store import usable_trials
from ensembling import distill, pseudo


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_the_student_is_a_complete_trial_that_select_offers(tiny_study: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = copy_study(tiny_study, tmp_path)
    assert pseudo.main([f"study={study_dir}", f"images={tiny_data / 'test_images'}", "precision=0.1", "limit=4"]) == 0
    code = distill.main([f"study={study_dir}", "extra=pseudo", "alpha=0.5", "trial=student", "train.threads=1", "train.batch_size=4"])
    out = capsys.readouterr().out
    assert code == 0 and "student student: OOF dice_pairs" in out and "ms/image" in out and "ensembling.select" in out

    study = open_study(study_dir)
    folder = StudyFolder(study_dir)
    trial = folder.trial("student")
    config = trial.read_config()
    assert config["train.extra"] == "distill-student" and config["model.decoder_channels"] == [64, 32, 16]
    assert trial.read_metrics()["complete"] and trial.read_cost()["ms_per_image"] > 0
    assert np.load(trial.oof).shape == study.truth_shape  # every study image once, no pseudo-labelled image in it
    candidates = {t.candidate_id: t for t in usable_trials(study)}
    assert "student" in candidates and candidates["student"].ms_per_image == trial.read_metrics()["ms_per_image"]

    extra = folder.extra("distill-student")
    meta = json.loads(extra.extra_json.read_text())
    assert meta["alpha"] == 0.5 and len(meta["images"]) == 4 and meta["written_by"] == "ensembling.distill"
    folds = study.folds["fold"].to_numpy()
    own0 = np.load(extra.targets("own", 0))
    assert own0[folds == 0].max() == 0 and own0[folds != 0].max() > 0  # fold 0's teacher never labels fold 0's validation images


def test_distill_never_replaces_a_trial_it_did_not_write(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = copy_study(tiny_study, tmp_path)
    assert distill.main([f"study={study_dir}", "trial=t0"]) == 2
    assert "trial=t0: " in (err := one_line_error(capsys)) and "not written by ensembling.distill" in err
    assert distill.main([f"study={study_dir}", "model.encoderr=resnet18"]) == 2
    assert "did you mean 'model.encoder'" in one_line_error(capsys)
    assert distill.main([f"study={study_dir}", "alpha=2"]) == 2
    assert "alpha must be in [0, 1], got 2" in one_line_error(capsys)
    assert distill.main([f"study={study_dir}", "extra=none"]) == 2
    assert "train.extra=none" in one_line_error(capsys)
    assert not (study_dir / "trials" / "distill").exists()
