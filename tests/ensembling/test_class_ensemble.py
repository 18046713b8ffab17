"""Select, export and predict a class ensemble: real timm members (untrained test_resnet), known-answer OOF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
from class_studies import CLASS_NAMES, add_trial, make_class_study, noisy, write_images
from ensembling_helpers import one_line_error

from core.contract import StudyFolder
from ensembling import export, predict, select
from ensembling.runtime.pyfunc import EnsembleModel

pytestmark = pytest.mark.slow  # three selections with MLflow, an export and four predictions: ~20 s


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = make_class_study(tmp_path_factory.mktemp("cls"), metric="log_loss")
    truth = np.load(study / "truth.npy")
    add_trial(study, "t0", noisy(truth, 1, False), score=0.9)
    add_trial(study, "t1", truth * 0.9 + 0.05, score=0.2, seed=1)  # the truth itself, nearly: picked first
    add_trial(study, "t2", noisy(truth, 2, False), score=0.9, seed=2)
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100"]) == 0
    return study


def test_select_picks_the_truth_and_tunes_the_temperature(single: Path) -> None:
    manifest = json.loads((single / "ensemble.json").read_text())
    assert manifest["kind"] == "classification" and manifest["multi_label"] is False
    assert manifest["class_names"] == CLASS_NAMES and manifest["metric"] == "log_loss" and manifest["higher_is_better"] is False
    assert list(manifest["history"][0]["members"]) == ["t1"]
    # t1 is 0.9 on the right class of every image: its best temperature makes it surer (T < 1), loss far below ln 3
    assert manifest["calibration"]["temperature"] < 1 and manifest["calibration"]["thresholds"] is None
    assert manifest["oof_score"] < -np.log(0.9) < np.log(3)
    assert manifest["nested_score"] is not None and len(manifest["nested_fold_scores"]) == 2
    assert "cannot" not in manifest["knobs"]["temperature"] and "argmax" in manifest["knobs"]["thresholds"]


def test_multi_label_selection_tunes_thresholds(tmp_path: Path) -> None:
    study = make_class_study(tmp_path, metric="macro_f1", multi_label=True)
    truth = np.load(study / "truth.npy")
    add_trial(study, "a", noisy(truth, 3, True))
    add_trial(study, "b", noisy(truth, 4, True), seed=1)
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100", "greedy.bags=2"]) == 0
    manifest = json.loads((study / "ensemble.json").read_text())
    assert manifest["multi_label"] is True and len(manifest["calibration"]["thresholds"]) == 3
    assert manifest["calibration"]["temperature"] == 1.0 and "cannot" in manifest["knobs"]["temperature"]
    assert len(manifest["class_scores"]) == 3 and 0 <= manifest["nested_score"] <= 1


def test_export_and_predict_both_layouts(single: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert export.main([f"study={single}", f"out={out}"]) == 0
    images = tmp_path / "test"
    names = write_images(images, 5, seed=100)
    stems = [Path(n).stem for n in names]  # ids without an extension are found with one
    pd.DataFrame({"image": stems, "label": "bar"}).to_csv(tmp_path / "labels.csv", index=False)
    pd.DataFrame({"id": names, **{c: 0.0 for c in reversed(CLASS_NAMES)}}).to_csv(tmp_path / "probs.csv", index=False)
    capsys.readouterr()
    assert predict.main([f"model={out}", f"images={images}", f"sample={tmp_path / 'labels.csv'}", f"out={tmp_path / 'a.csv'}", "workers=1", "bench=true"]) == 0
    assert "(label layout), 5 images" in (printed := capsys.readouterr().out) and "bench: projected" in printed
    labels = pd.read_csv(tmp_path / "a.csv")
    assert labels["image"].tolist() == stems and set(labels["label"]) <= set(CLASS_NAMES)
    # the export's own runner in a fresh interpreter: its code/ copy holds every module the class branch needs
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(out / "predict.py"), f"images={images}", f"sample={tmp_path / 'probs.csv'}", f"out={tmp_path / 'b.csv'}"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    probs = pd.read_csv(tmp_path / "b.csv")
    assert list(probs.columns) == ["id", *reversed(CLASS_NAMES)] and probs["id"].tolist() == names
    values = probs[CLASS_NAMES].to_numpy()
    assert np.allclose(values.sum(axis=1), 1, atol=1e-5) and ((values >= 0) & (values <= 1)).all()
    # the same images' labels are the argmax of the same probabilities
    assert labels["label"].tolist() == [CLASS_NAMES[i] for i in values.argmax(axis=1)]
    # the MLflow pyfunc wrapper of the same export: probabilities (N, K) for float32 RGB (N, 3, H, W)
    model = EnsembleModel()
    model.load_context(SimpleNamespace(artifacts={"export": str(out)}))
    pixels = np.stack([cv2.imread(str(images / n))[:, :, ::-1].transpose(2, 0, 1) for n in names[:2]]).astype(np.float32)
    assert np.allclose(model.predict(None, pixels), values[:2], atol=1e-4)
    capsys.readouterr()
    pd.DataFrame({"id": names, "bar": 0, "dot": 0}).to_csv(tmp_path / "bad.csv", index=False)
    assert predict.main([f"model={out}", f"images={images}", f"sample={tmp_path / 'bad.csv'}", f"out={tmp_path / 'c.csv'}"]) == 2
    assert "one label column or one column per class" in one_line_error(capsys)
    assert not (tmp_path / "c.csv").exists()
    (images / names[0]).unlink()
    assert predict.main([f"model={out}", f"images={images}", f"sample={tmp_path / 'probs.csv'}", f"out={tmp_path / 'c.csv'}"]) == 2
    assert names[0] in one_line_error(capsys)


def test_float16_oof_of_another_split_is_skipped_with_a_line(single: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    study = tmp_path / "study"
    shutil.copytree(single, study)
    bad = StudyFolder(study).trial("t0")
    np.save(bad.oof, np.zeros((5, 3), np.float16))
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100", "nested=false"]) == 0
    assert "skipped t0" in capsys.readouterr().out
