"""A tiny real study shared by the export, predict, refit, pyfunc and leaderboard tests.

Two trials of 2 folds x 1 epoch on 16 synthetic 32-row images (encoder depth 3), trained as plain
functions, then the real selection: about 15 s on one core, built once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.data.study import DataConfig, StudyConfig, prepare_study
from trainables.fit import run_trial

TINY = {
    "model.arch": "Unet",
    "model.encoder": "resnet18",
    "model.encoder_depth": 3,
    "train.epochs": 1,
    "train.batch_size": 8,
    "train.scale": 0.125,
    "train.threads": 1,
    "tta": "hflip",
}


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ensembling import select

    root = tmp_path_factory.mktemp("tiny")
    data = DataConfig(format="synthetic", root=str(root / "data"), images=16)
    config = StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125)
    study = root / "study"
    prepare_study(study, config)
    raw = {"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125, "mlflow": {"uri": f"sqlite:///{root / 'mlflow.db'}"}}
    (study / "study.yaml").write_text(yaml.safe_dump(raw))
    run_trial(TINY, study, trial_id="t0")
    run_trial({**TINY, "train.lr": 3e-3, "seed": 1}, study, trial_id="t1")
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100"]) == 0
    return study


@pytest.fixture(scope="session")
def tiny_data(tiny_study: Path) -> Path:
    """The synthetic set's folder: test_images/, sample_submission.csv, test_truth.csv."""
    return tiny_study.parent / "data"
