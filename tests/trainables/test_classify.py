"""A classification trial as a plain function: real NEU-DET images at 32x32, a tiny timm classifier.

The contract the ensembling side reads (truth (N, K) uint8, oof (N, K) float16 in folds order, cost with
its TTA, metrics.json last), per-epoch reports, exact resume, multi-label with smoothing, mixup, cutmix
and EMA, and the presence study of a segmentation set split exactly as the masks' study.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "core" / "data"))  # shared_data.py
from resuming import unbroken_and_resumed
from shared_data import shared

from core.class_metrics import get_class_metric
from core.contract import StudyFolder, TrialFolder
from core.data.study import DataConfig, StudyConfig, open_study, prepare_study
from trainables.fit import run_trial

PER_CLASS = 4
TINY = {
    "model.family": "timm",
    "model.encoder": "resnet10t",
    "train.epochs": 2,
    "train.batch_size": 8,
    "train.scale": 0.16,  # 200x200 -> 32x32
    "train.threads": 1,
    "train.lr": 3e-3,
    "tta": "hflip",
}


def _neu_subset(folder: Path, csv: dict[str, str] | None = None) -> Path:
    """PER_CLASS real images of each NEU-DET class, by prefix (or listed in labels.csv with ``csv``)."""
    source = shared("neu_det_cls", "IMAGES")
    folder.mkdir(parents=True)
    names = sorted(source.iterdir())
    by_class: dict[str, list[Path]] = {}
    for path in names:
        by_class.setdefault(path.stem.rpartition("_")[0], []).append(path)
    target = folder / "images" if csv is not None else folder
    target.mkdir(exist_ok=True)
    for paths in by_class.values():
        for path in paths[:PER_CLASS]:
            shutil.copy(path, target / path.name)
    if csv is not None:
        rows = [f"{p.name},{csv.get(p.stem.rpartition('_')[0], '')}" for p in sorted(target.iterdir())]
        (folder / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    return folder


def _study(root: Path, data: DataConfig, metric: str, folds: int = 2) -> Path:
    config = StudyConfig(data=data, folds=folds, seed=0, metric=metric)
    prepare_study(root / "s", config)
    raw = {"data": {**vars(data)}, "folds": folds, "seed": 0, "metric": metric}
    (root / "s" / "study.yaml").write_text(yaml.safe_dump(raw))
    return root / "s"


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cls")
    return _study(root, DataConfig(format="classes", root=str(_neu_subset(root / "data"))), "accuracy")


def test_single_label_trial_writes_the_classification_contract(single: Path) -> None:
    reports: list[dict] = []
    metrics = run_trial({**TINY, "train.label_smoothing": 0.1}, single, trial_id="t", report=lambda m, _: reports.append(dict(m)))
    study = open_study(single)
    truth = StudyFolder(single).class_truth()
    assert truth.shape == (6 * PER_CLASS, 6) and truth.dtype == np.uint8 and (truth.sum(axis=1) == 1).all()
    # truth rows follow folds.csv: row i is the one-hot of image i's prefix
    names = study.data.class_names
    assert [names[r.argmax()] for r in truth] == [i.rpartition("_")[0] for i in study.image_ids]
    trial = TrialFolder(single / "trials" / "t")
    oof = trial.class_oof(truth.shape)
    assert oof.dtype == np.float16 and np.allclose(oof.astype(np.float32).sum(axis=1), 1, atol=1e-2)
    assert [m["epoch"] for m in reports] == [1, 2]
    for key in ("train_loss", "val_loss", "score", "accuracy", "val_log_loss", "val_macro_f1", "lr", "images_per_second"):
        assert all(isinstance(m[key], float) for m in reports), key
    assert any(k.startswith("score_class") for k in reports[-1])
    written = trial.read_metrics()
    assert written["oof_score"] == metrics["oof_score"] == reports[-1]["oof_score"]
    assert written["metric"] == "accuracy" and written["kind"] == "classification" and written["multi_label"] is False
    # the score is the study's metric of the OOF that was written
    assert get_class_metric("accuracy").score(np.asarray(oof), truth) == pytest.approx(written["oof_score"])
    cost = trial.read_cost()
    assert cost["views"] == 2 and cost["tta"] == "hflip" and cost["ms_per_image_all_folds"] == pytest.approx(2 * cost["ms_per_image"])
    assert (trial.pictures_dir / "worst_best.png").stat().st_size > 1000


def test_a_resumed_classification_trial_ends_where_an_unbroken_one_does(single: Path, tmp_path: Path) -> None:
    config = {**TINY, "train.mixup": 0.4, "train.cutmix": 1.0, "train.ema": 0.9, "train.augment": "light"}
    unbroken, resumed = unbroken_and_resumed(config, single, tmp_path / "ckpt")
    for key in ("train_loss", "val_loss", "lr", "score"):
        assert [m[key] for m in resumed] == [m[key] for m in unbroken[1:]], key
    a, b = (np.load(single / "trials" / name / "oof.npy") for name in ("unbroken", "resumed"))
    assert (a == b).all()
    ema = TrialFolder(single / "trials" / "resumed").snapshot("ema")
    assert ema.read_metrics()["snapshot"] == "ema" and ema.class_oof().shape == a.shape


def test_log_loss_study_reports_a_higher_is_better_score(tmp_path: Path) -> None:
    study = _study(tmp_path, DataConfig(format="classes", root=str(_neu_subset(tmp_path / "data"))), "log_loss")
    metrics = run_trial({**TINY, "train.epochs": 1}, study, trial_id="ll")
    assert metrics["log_loss"] > 0 and metrics["oof_score"] == pytest.approx(-metrics["log_loss"])


def test_multi_label_csv_trains_sigmoids_with_tuned_thresholds(tmp_path: Path) -> None:
    # two labels for some classes, none for one: a multi-hot truth
    labels = {"crazing": "crack", "inclusion": "crack spot", "patches": "spot", "pitted_surface": "spot", "rolled-in_scale": "", "scratches": "crack"}
    root = _neu_subset(tmp_path / "data", csv=labels)
    study = _study(tmp_path, DataConfig(format="classes", root=str(root), multi_label=True), "macro_f1")
    truth = StudyFolder(study).class_truth()
    assert truth.shape == (6 * PER_CLASS, 2) and truth.sum(axis=1).max() == 2 and truth.sum(axis=1).min() == 0
    assert open_study(study).multi_label
    metrics = run_trial({**TINY, "train.epochs": 1, "train.label_smoothing": 0.1, "train.mixup": 0.2}, study, trial_id="ml")
    oof = TrialFolder(study / "trials" / "ml").class_oof(truth.shape)
    assert not np.allclose(oof.astype(np.float32).sum(axis=1), 1, atol=1e-2)  # independent sigmoids
    assert len(metrics["thresholds"]) == 2
    score = get_class_metric("macro_f1").score(np.asarray(oof, np.float32), truth, metrics["thresholds"], multi_label=True)
    assert score == pytest.approx(metrics["oof_score"])


@pytest.mark.parametrize("limit", [0, 10])
def test_a_presence_study_splits_exactly_as_the_masks_study(tmp_path: Path, limit: int) -> None:
    common = {"format": "synthetic", "root": str(tmp_path / "data"), "images": 16, "limit": limit}
    masks = _study(tmp_path / "m", DataConfig(**common), "dice_pairs")
    presence = _study(tmp_path / "p", DataConfig(**common, task="presence"), "macro_f1")
    assert (masks / "folds.csv").read_text() == (presence / "folds.csv").read_text()
    seg, cls = open_study(masks), open_study(presence)
    assert cls.kind == "classification" and cls.multi_label and seg.kind == "segmentation"
    truth = StudyFolder(presence).class_truth()
    index = {i: n for n, i in enumerate(seg.data.image_ids)}
    expected = seg.data.labels()[[index[i] for i in seg.image_ids]]
    assert (truth == expected).all() and truth.any()
    if limit == 0:  # a classifier trains on it: one sigmoid per defect class, OOF in the same order
        metrics = run_trial({**TINY, "train.epochs": 1, "train.scale": 0.25}, presence, trial_id="gate")
        assert TrialFolder(presence / "trials" / "gate").class_oof().shape == truth.shape
        assert metrics["multi_label"] is True


def test_model_and_study_kinds_must_agree(single: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use model.family=timm"):
        run_trial({"model.encoder_depth": 3, "train.epochs": 1}, single, trial_id="smp")
    seg = _study(tmp_path, DataConfig(format="synthetic", root=str(tmp_path / "data"), images=8), "dice_pairs")
    with pytest.raises(ValueError, match=r"data.task=presence"):
        run_trial(TINY, seg, trial_id="timm")
    with pytest.raises(ValueError, match=r"train.label_smoothing must be in"):
        run_trial({**TINY, "train.label_smoothing": 1.5}, single, trial_id="bad")
    with pytest.raises(ValueError, match=r"data.task=presence reads a segmentation"):
        _study(tmp_path / "x", DataConfig(format="classes", root=str(tmp_path), task="presence"), "accuracy")
