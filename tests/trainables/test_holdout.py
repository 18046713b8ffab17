"""A holdout study (oof_share below 1): TRAIN_ONLY images train in every fold, only the held-out ones are OOF."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from core.data.folds import TRAIN_ONLY, read_folds
from core.data.study import DataConfig, StudyConfig, open_study, prepare_study, resplit_study
from ensembling.pseudo import open_ensemble
from ensembling.select import SELECT
from ensembling.select import run as select
from trainables.fit import run_trial
from trainables.loop import all_images_run, make_fold_run
from trainables.tasks import task_for
from trainables.validate import parse_config

TINY = {
    "model.arch": "Unet",
    "model.encoder": "resnet18",
    "model.encoder_depth": 3,
    "train.epochs": 1,
    "train.batch_size": 4,
    "train.scale": 0.125,
    "train.threads": 1,
    "tta": "none",
}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic images split into 2 folds, then split again as a holdout of a quarter (4 images)."""
    root = tmp_path_factory.mktemp("holdout")
    data = DataConfig(format="synthetic", root=str(root / "data"), images=16)
    study = prepare_study(root / "s", StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125))
    raw = {"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125, "mlflow": {"uri": f"sqlite:///{root / 'mlflow.db'}"}}
    (root / "s" / "study.yaml").write_text(yaml.safe_dump(raw))
    resplit_study(study, 1, 0.25)
    return root / "s"


def test_the_split_marks_the_rest_train_only_and_the_truth_holds_the_holdout(study_dir: Path) -> None:
    split = read_folds(study_dir / "folds.csv")
    assert sorted(set(split["fold"])) == [TRAIN_ONLY, 0] and (split["fold"] == 0).sum() == 4 and len(split) == 16
    study = open_study(study_dir)
    assert study.n_folds == 1 and len(study.image_ids) == 4 and len(study.train_only) == 12 and study.training_images == 16
    assert set(study.image_ids) == set(split.loc[split["fold"] == 0, "image_id"]) and not set(study.image_ids) & set(study.train_only)
    assert study.truth().shape[0] == 4


def test_a_fold_model_trains_on_every_image_it_does_not_validate_and_a_refit_on_all(study_dir: Path) -> None:
    study = open_study(study_dir)
    cfg = parse_config(TINY)
    task = task_for(cfg.model, study)
    run = make_fold_run(study, cfg, 0, (32, 208), torch.device("cpu"), None, None, dataset=task.dataset)
    assert len(run.train_loader.dataset) == 12 and len(run.val_loader.dataset) == 4 and run.val_rows.tolist() == [0, 1, 2, 3]
    assert len(all_images_run(study, cfg, (32, 208), torch.device("cpu"), None, None, dataset=task.dataset).train_loader.dataset) == 16


def test_a_trial_is_complete_with_its_one_fold_and_selection_tunes_on_the_holdout(study_dir: Path) -> None:
    for seed in (0, 1):
        metrics = run_trial({**TINY, "seed": seed}, study_dir, trial_id=f"h{seed}")
        assert metrics["folds"] == [0] and metrics["complete"]
        assert np.load(study_dir / "trials" / f"h{seed}" / "oof.npy", mmap_mode="r").shape[0] == 4
    chosen = select(SELECT.parse([f"study={study_dir}"]))
    members = json.loads((study_dir / "ensemble.json").read_text())["members"]
    assert {m["trial_id"] for m in members} <= {"h0", "h1"} and 0 <= chosen.oof_score <= 1


def test_the_split_is_kept_only_as_asked_and_never_split_again_once_trained(study_dir: Path) -> None:
    raw = yaml.safe_load((study_dir / "study.yaml").read_text())
    data = DataConfig(**raw["data"])
    # unset oof_share: the planner's holdout is kept as it is
    assert prepare_study(study_dir, StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125)).n_folds == 1
    with pytest.raises(ValueError, match=r"split into 1 folds of 4 of its 16 images \(a holdout\), not as folds=2 oof_share=1.0 asks"):
        prepare_study(study_dir, StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125, oof_share=1.0))
    assert prepare_study(study_dir, StudyConfig(data=data, folds=1, seed=0, oof_scale=0.125, oof_share=0.25)).n_folds == 1
    if not list((study_dir / "trials").glob("*/metrics.json")):
        run_trial(TINY, study_dir, trial_id="first")
    with pytest.raises(ValueError, match=r"trials were already trained on its split, so it cannot be split again"):
        resplit_study(open_study(study_dir), 1, 0.5)
    assert (read_folds(study_dir / "folds.csv")["fold"] == 0).sum() == 4  # untouched
    # pseudo-labels and distillation need out-of-fold targets for every training image: one line, before any work
    with pytest.raises(ValueError, match=r"folds.csv: this study validates only 4 of its 16 images \(a holdout, oof_share below 1\)"):
        open_ensemble(study_dir)


def test_a_tight_budget_splits_a_new_study_again_as_a_holdout_and_a_trained_one_keeps_its_folds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.budget_run import _split_for
    from search.planner import Facts

    data = DataConfig(format="synthetic", root=str(tmp_path / "data"), images=40)
    prepare_study(tmp_path / "s", StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125))
    (tmp_path / "s" / "study.yaml").write_text(yaml.safe_dump({"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125}))
    # 150 s at 0.25 s a training image: 2 folds and a refit do not both fit the space's 6 epochs on 40 images
    tight = Facts(budget_s=150.0, images=40, folds=2, lanes=1, space_epochs=6, searchable=True, train_s=0.25, eval_s=0.05,
                  screen_train_s=0.06, screen_eval_s=0.01, refit_train_s=0.12, tta_views=2)
    chosen = _split_for(tight, tmp_path / "s", 0.0)
    held = 20  # a holdout validates at least 30 images, but never more than half of them
    assert (chosen.folds, chosen.oof_share) == (1, 0.5), chosen
    split = read_folds(tmp_path / "s" / "folds.csv")
    assert (split["fold"] == 0).sum() == held and (split["fold"] == TRAIN_ONLY).sum() == 40 - held
    assert open_study(tmp_path / "s").truth().shape[0] == held  # the truth is of the new split
    assert f"split as a holdout: {held} of 40 images validated, each model trained on the other {40 - held}" in capsys.readouterr().out
    # a roomy budget keeps K folds
    (tmp_path / "k").mkdir()
    prepare_study(tmp_path / "k", StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125))
    roomy = dataclasses.replace(tight, budget_s=100000.0)
    assert _split_for(roomy, tmp_path / "k", 0.0) == roomy and (read_folds(tmp_path / "k" / "folds.csv")["fold"] >= 0).all()
    # once a trial folder exists the split stays as it is, saying why in one line
    (tmp_path / "k" / "trials" / "t0").mkdir(parents=True)
    (tmp_path / "k" / "study.yaml").write_text(yaml.safe_dump({"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125}))
    assert _split_for(tight, tmp_path / "k", 0.0) == tight
    assert "2 folds kept, not split again as a holdout: " in capsys.readouterr().out
    assert (read_folds(tmp_path / "k" / "folds.csv")["fold"] >= 0).all()
