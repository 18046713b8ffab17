"""ensembling.pseudo and the leak rule: fold k's targets come from fold-k models only, and no extra image is ever validated on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from ensembling_helpers import copy_study, one_line_error
from safetensors.torch import load_file, save_file

from core.contract import PSEUDO_JSON, StudyFolder
from core.data.extra import open_extra
from core.data.images import list_images, read_rgb
from core.data.study import open_study
from ensembling import pseudo
from ensembling.runtime.manifest import read_manifest
from ensembling.scoring.teacher import FoldTeacher
from trainables.loop import all_images_run, make_fold_run
from trainables.tasks import task_for
from trainables.validate import parse_config


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _extreme_fold(study: Path, fold: int) -> None:
    """Every member's fold-``fold`` model made to say 'defect' everywhere (its last layer's bias at +50)."""
    for member in read_manifest(study / "ensemble.json").members:
        path = study / next(c for c in member.checkpoints if Path(c).parent.name == f"fold{fold}")
        state = load_file(str(path))
        bias = next(k for k in state if k.startswith("segmentation_head") and k.endswith("bias"))
        state[bias] = torch.full_like(state[bias], 50.0)
        save_file(state, str(path))


def test_fold_k_targets_come_from_fold_k_models_only(tiny_study: Path, tiny_data: Path, tmp_path: Path) -> None:
    study_dir = copy_study(tiny_study, tmp_path)
    images = [read_rgb(tiny_data / "test_images" / n) for n in list_images(tiny_data / "test_images")[:2]]

    def teacher_probs() -> list[np.ndarray]:
        study = open_study(study_dir)
        teacher = FoldTeacher(study.root, read_manifest(study.folder.ensemble_json), study.n_folds, "cpu")
        return [teacher.probabilities(k, images) for k in range(study.n_folds)]

    before = teacher_probs()
    _extreme_fold(study_dir, 1)
    after = teacher_probs()
    assert np.array_equal(before[0], after[0])  # fold 0's targets never see fold 1's models
    assert not np.allclose(before[1], after[1]) and after[1].min() > 0.99


def test_pseudo_writes_a_folder_that_trials_train_on_without_touching_validation(tiny_study: Path, tiny_data: Path, tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = copy_study(tiny_study, tmp_path)
    _extreme_fold(study_dir, 1)  # fold 1's pseudo-labels say 'defect' everywhere; fold 0's must not
    code = pseudo.main([f"study={study_dir}", f"images={tiny_data / 'test_images'}", "precision=0.1", "soft=true", "limit=4", "name=pl"])
    out = capsys.readouterr().out
    assert code == 0 and "pseudo-labels: kept" in out and "OOF precision" in out and "train.extra=pl" in out
    folder = StudyFolder(study_dir).extra("pl")
    report = json.loads((folder.root / PSEUDO_JSON).read_text())
    assert report["total"] == 4 and report["soft"] and report["oof_total"] == 16 and report["oof_precision"] >= 0.1
    assert set(report["kept"]) == {"0", "1", "all"} and report["oof_curve"][0]["kept"] == 16
    fold0, fold1 = np.load(folder.targets("images", 0)), np.load(folder.targets("images", 1))
    assert fold1.min() == 255 and fold0.min() < 255  # the leak rule, through the whole command

    study = open_study(study_dir)
    extra = open_extra(study, "pl")
    cfg = parse_config({**TINY, "train.extra": "pl"})
    task = task_for(cfg.model, study)
    size = (32, 32)
    for k in range(study.n_folds):
        run = make_fold_run(study, cfg, k, size, torch.device("cpu"), task.cache(size), None, dataset=task.dataset, extra=extra)
        val_ids = study.folds.loc[study.folds["fold"] == k, "image_id"].tolist()
        own = study.folds.loc[study.folds["fold"] != k, "image_id"].tolist()
        assert run.val_loader.dataset.image_ids == val_ids  # validation (so the OOF) is exactly a plain trial's
        assert run.train_loader.dataset.image_ids == own + [extra.meta["images"][i] for i in extra.kept(k)]
        assert not set(extra.meta["images"]) & set(run.val_loader.dataset.image_ids)
        assert run.val_rows.tolist() == np.flatnonzero(study.folds["fold"].to_numpy() == k).tolist()
    refit = all_images_run(study, cfg, size, torch.device("cpu"), task.cache(size), None, dataset=task.dataset, extra=extra)
    assert refit.train_loader.dataset.image_ids == study.image_ids + [extra.meta["images"][i] for i in extra.kept(study.n_folds)]
    assert extra.kept(study.n_folds).tolist() == json.loads(folder.extra_json.read_text())["keep"]["all"]


def test_pseudo_refuses_bad_input_in_one_line(tiny_study: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = copy_study(tiny_study, tmp_path)
    images = f"images={tiny_data / 'test_images'}"
    assert pseudo.main([f"study={study_dir}", images, "precision=1.5"]) == 2
    assert "precision must be in (0, 1], got 1.5" in one_line_error(capsys)
    assert pseudo.main([f"study={study_dir}", images, "precison=0.5"]) == 2
    assert "did you mean 'precision'" in one_line_error(capsys)
    (study_dir / "extra" / "mine").mkdir(parents=True)
    assert pseudo.main([f"study={study_dir}", images, "name=mine"]) == 2
    assert "was not written by ensembling.pseudo" in one_line_error(capsys)
    (study_dir / "empty").mkdir()
    assert pseudo.main([f"study={study_dir}", f"images={study_dir / 'empty'}"]) == 2
    assert "holds no image files" in one_line_error(capsys)
    assert pseudo.main([f"study={study_dir}", images, "precision=1.0", "limit=2"]) == 2
    assert "no confidence threshold reaches it on the OOF" in one_line_error(capsys)
    assert not (study_dir / "extra" / "pseudo").exists() and not list((study_dir / "extra").glob(".*"))
