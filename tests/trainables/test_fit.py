"""A trial as a plain function, without Ray: the trial folder of the contract, reports, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainables.data.study import DataConfig, StudyConfig, open_study, prepare_study
from trainables.fit import run_trial

TINY = {
    "model.arch": "Unet",
    "model.encoder": "resnet18",
    "model.encoder_depth": 3,
    "train.epochs": 2,
    "train.batch_size": 4,
    "train.scale": 0.125,
    "train.threads": 1,
    "tta": "hflip",
}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    data = DataConfig(format="synthetic", root=str(root / "data"), images=16)
    config = StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125)
    prepare_study(root / "s", config)
    raw = {"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125}
    (root / "s" / "study.yaml").write_text(yaml.safe_dump(raw))
    return root / "s"


def test_trial_writes_the_contract_and_reports_each_epoch(study_dir: Path) -> None:
    reports: list[tuple[dict, list[str]]] = []

    def report(metrics: dict, checkpoint: Path) -> None:
        reports.append((dict(metrics), sorted(str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file())))

    metrics = run_trial(TINY, study_dir, trial_id="plain", report=report)
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    assert reports[0][1] == ["fold0/model.safetensors", "fold1/model.safetensors", "state.json"]
    trial = study_dir / "trials" / "plain"
    written = json.loads((trial / "metrics.json").read_text())
    assert written["oof_score"] == metrics["oof_score"] == reports[-1][0]["oof_score"]
    assert written["complete"] and written["folds"] == [0, 1]
    study = open_study(study_dir)
    oof = np.load(trial / "oof.npy", mmap_mode="r")
    assert oof.dtype == np.uint8 and oof.shape == study.truth().shape
    # every image was predicted by the fold that held it out: no row is left all zero by chance
    assert (oof.reshape(len(oof), -1).max(axis=1) > 0).all()
    cost = json.loads((trial / "cost.json").read_text())
    assert cost["views"] == 2 and cost["ms_per_image_all_folds"] == pytest.approx(2 * cost["ms_per_image"])
    # the final metrics are the tuned score of the OOF that was written
    from trainables.metrics import tuned_score

    assert tuned_score(np.asarray(oof), study.truth()).score == pytest.approx(written["oof_score"])


def test_trial_on_some_folds_is_marked_incomplete(study_dir: Path) -> None:
    metrics = run_trial({**TINY, "train.epochs": 1, "train.folds": [1]}, study_dir, trial_id="fold1")
    assert metrics["folds"] == [1] and metrics["complete"] is False


def test_resume_continues_from_the_checkpoint_epoch(study_dir: Path, tmp_path: Path) -> None:
    saved = tmp_path / "ckpt"

    def keep(metrics: dict, checkpoint: Path) -> None:
        if metrics["epoch"] == 1:
            import shutil

            shutil.copytree(checkpoint, saved)

    run_trial({**TINY, "train.epochs": 2}, study_dir, trial_id="first", report=keep)
    epochs: list[int] = []
    run_trial({**TINY, "train.epochs": 2}, study_dir, trial_id="resumed", report=lambda m, _: epochs.append(m["epoch"]), resume_from=saved)
    assert epochs == [2]


def test_bad_config_fails_before_training(study_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"did you mean 'train\.lr'"):
        run_trial({"train.lrr": 0.1}, study_dir)
    with pytest.raises(ValueError, match=r"FPN with model\.encoder_depth 3 gives"):
        run_trial({**TINY, "model.arch": "FPN"}, study_dir, trial_id="fpn3")
    with pytest.raises(ValueError, match=r"train\.folds must be in 0\.\.1"):
        run_trial({**TINY, "train.folds": [5]}, study_dir, trial_id="bad")


def test_a_study_refuses_a_changed_oof_scale(study_dir: Path) -> None:
    raw = yaml.safe_load((study_dir / "study.yaml").read_text())
    config = StudyConfig(data=DataConfig(**raw["data"]), folds=2, seed=0, oof_scale=0.25)
    with pytest.raises(ValueError, match=r"oof_scale and data\.classes are fixed per study"):
        prepare_study(study_dir, config)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.epochs", 0, r"train\.epochs must be >= 1, got 0"),
        ("train.batch_size", 0, r"train\.batch_size must be >= 1"),
        ("train.lr", -1.0, r"train\.lr must be > 0"),
        ("model.encoder_weights", "/no/such/encoder.safetensors", r"model\.encoder_weights: no file at /no/such"),
    ],
)
def test_out_of_range_settings_fail_at_once(key: str, value: object, message: str, study_dir: Path) -> None:
    from trainables.fit import parse_config

    with pytest.raises(ValueError, match=message):
        parse_config({key: value})


def test_the_command_line_reports_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainables.fit import main

    assert main(["train.epochs=1"]) == 2
    assert "usage: python -m trainables.fit study=" in capsys.readouterr().err
    assert main([f"study={tmp_path}", "epochs"]) == 2
    assert "argument 'epochs' must look like key=value" in capsys.readouterr().err
    assert main([f"study={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "not a study folder" in err and err.count("\n") == 1
