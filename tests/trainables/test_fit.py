"""A trial as a plain function, without Ray: the trial folder of the contract, reports, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from core.data.study import DataConfig, StudyConfig, open_study, prepare_study
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
    # a checkpoint holds every fold's weights and training state (optimizer, schedule), and the epoch
    assert reports[0][1] == ["fold0/model.safetensors", "fold0/train_state.pt", "fold1/model.safetensors", "fold1/train_state.pt", "state.json"]
    for key in ("train_loss", "val_loss", "score", "score_class1", "lr", "images_per_second"):
        assert all(isinstance(m[key], float) for m, _ in reports), key
    assert reports[0][0]["lr"] > reports[1][0]["lr"] > 0  # cosine: the second epoch starts lower
    trial = study_dir / "trials" / "plain"
    assert (trial / "pictures" / "worst_best.png").stat().st_size > 1000
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
    from core.postprocess import tuned_score

    assert tuned_score(np.asarray(oof), study.truth()).score == pytest.approx(written["oof_score"])


def test_val_every_scores_only_every_nth_and_the_last_epoch(study_dir: Path) -> None:
    reports: list[dict] = []
    config = {**TINY, "train.epochs": 3, "train.val_every": 2, "train.folds": [0]}
    run_trial(config, study_dir, trial_id="sparse-val", report=lambda m, _: reports.append(dict(m)))
    assert [m["epoch"] for m in reports] == [1, 2, 3]  # every epoch reports, with its checkpoint
    assert ["score" in m for m in reports] == [False, True, True]  # validated at epoch 2 and the last
    assert all("train_loss" in m and "lr" in m for m in reports)


def test_trial_on_some_folds_is_marked_incomplete(study_dir: Path) -> None:
    metrics = run_trial({**TINY, "train.epochs": 1, "train.folds": [1]}, study_dir, trial_id="fold1")
    assert metrics["folds"] == [1] and metrics["complete"] is False


def test_a_resumed_trial_ends_exactly_where_an_unbroken_one_does(study_dir: Path, tmp_path: Path) -> None:
    """Optimizer, schedule, EMA and the per-epoch seeds all come back: same losses, same weights."""
    from resuming import unbroken_and_resumed
    from safetensors.torch import load_file

    config = {**TINY, "train.epochs": 2, "train.ema": 0.9, "train.augment": "medium", "train.warmup_epochs": 0.5}
    unbroken, resumed = unbroken_and_resumed(config, study_dir, tmp_path / "ckpt")
    assert [m["epoch"] for m in resumed] == [2]
    for key in ("train_loss", "val_loss", "lr", "score"):
        assert [m[key] for m in resumed] == [m[key] for m in unbroken[1:]], key
    for name in ("unbroken", "resumed"):
        assert (study_dir / "trials" / name / "snapshots" / "ema" / "metrics.json").is_file()
    a = load_file(str(study_dir / "trials" / "unbroken" / "fold1" / "model.safetensors"))
    b = load_file(str(study_dir / "trials" / "resumed" / "fold1" / "model.safetensors"))
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_the_same_config_reruns_to_the_same_oof_score(study_dir: Path) -> None:
    config = {**TINY, "train.epochs": 1, "train.augment": "heavy", "seed": 3}
    first = run_trial(config, study_dir, trial_id="seed3a")["oof_score"]
    again = run_trial(config, study_dir, trial_id="seed3b")["oof_score"]
    assert round(first, 3) == round(again, 3)
    a = np.load(study_dir / "trials" / "seed3a" / "oof.npy")
    assert (a == np.load(study_dir / "trials" / "seed3b" / "oof.npy")).all()
    other = np.load(_oof_of(run_trial({**config, "seed": 4}, study_dir, trial_id="seed4"), study_dir, "seed4"))
    assert (a != other).any()  # the seed reaches initialization, shuffling and augmentation


def _oof_of(_: dict, study_dir: Path, trial_id: str) -> Path:
    return study_dir / "trials" / trial_id / "oof.npy"


def test_cyclic_schedule_writes_a_candidate_at_each_low_point(study_dir: Path) -> None:
    from core.contract import TrialFolder

    config = {**TINY, "train.epochs": 2, "train.schedule": "cyclic", "train.cycles": 2, "train.optimizer": "sgd", "train.lr": 0.05}
    lrs: list[float] = []
    run_trial(config, study_dir, trial_id="cyclic", report=lambda m, _: lrs.append(m["lr"]))
    trial = TrialFolder(study_dir / "trials" / "cyclic")
    assert [s.trial_id for s in trial.snapshots()] == ["cycle1"]
    snap = trial.snapshot("cycle1")
    metrics = snap.read_metrics()
    assert metrics["epoch"] == 1 and metrics["snapshot"] == "cycle1" and metrics["folds"] == [0, 1]
    assert snap.weights(0).is_file() and snap.weights(1).is_file()
    from core.postprocess import tuned_score

    study = open_study(study_dir)
    assert tuned_score(np.load(snap.oof), study.truth()).score == pytest.approx(metrics["oof_score"])
    assert lrs[0] == pytest.approx(lrs[1])  # each cycle restarts at the base rate


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
        ("train.schedule", "step", r"Unknown schedule 'step'. Available options are: constant, cosine, cyclic, one_cycle"),
        ("train.optimizer", "adam", r"Unknown optimizer 'adam'. Available options are: adamw, radam, sgd"),
        ("train.loss", "bce+dise", r"Unknown loss 'dise'"),
        ("train.precision", "fp8", r"train\.precision must be one of auto, bf16, fp16, fp32"),
        ("train.ema", 1.0, r"train\.ema must be in \[0, 1\)"),
        ("train.augment_ops", [{"Flip": {}}], r"'Flip' is not an albumentations transform"),
        ("model.decoder_channels", [8, 8], r"model\.decoder_channels needs 5 positive widths"),
    ],
)
def test_out_of_range_settings_fail_at_once(key: str, value: object, message: str, study_dir: Path) -> None:
    from trainables.validate import parse_config

    with pytest.raises(ValueError, match=message):
        parse_config({key: value})


def test_cyclic_cycles_must_divide_the_epochs() -> None:
    from trainables.validate import parse_config

    with pytest.raises(ValueError, match=r"train\.cycles must divide train\.epochs, got cycles=3, epochs=4"):
        parse_config({"train.schedule": "cyclic", "train.cycles": 3, "train.epochs": 4})


def test_a_labels_family_is_refused_by_the_mask_trial(study_dir: Path) -> None:
    # a classifier trains on a classification study; on masks the error names the presence study
    with pytest.raises(ValueError, match=r"model\.family=timm trains image labels, but study .* holds masks.*data\.task=presence"):
        run_trial({**TINY, "model.family": "timm", "model.encoder": "resnet18"}, study_dir, trial_id="timm")


def test_the_command_line_reports_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainables.fit import main

    assert main(["train.epochs=1"]) == 2
    assert "usage: python -m trainables.fit study=" in capsys.readouterr().err
    assert main([f"study={tmp_path}", "epochs"]) == 2
    assert "argument 'epochs' must look like key=value" in capsys.readouterr().err
    assert main([f"study={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "not a study folder" in err and err.count("\n") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_trial_trains_in_mixed_precision_on_a_gpu(precision: str, study_dir: Path) -> None:
    config = {**TINY, "train.epochs": 1, "train.precision": precision, "train.channels_last": True, "train.ema": 0.9}
    metrics = run_trial(config, study_dir, trial_id=f"gpu-{precision}")
    assert np.isfinite(metrics["oof_score"]) and np.isfinite(metrics["train_loss"])
