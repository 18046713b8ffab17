"""The classifier gate: a presence study on the tiny segmentation study's images and folds, tuned by the
segmentation selection, exported with it, and run first by the predictor (clean images not segmented)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from class_studies import add_trial
from ensembling_helpers import copy_study, one_line_error

from core.config import TrialConfig, from_flat
from core.contract import StudyFolder
from core.models import build_model, save_weights
from ensembling import export, predict, select
from ensembling.runtime.predictor import Predictor

pytestmark = pytest.mark.slow  # the session's tiny study, MLflow, two selections: ~40 s


def presence_study(seg: Path, root: Path, reorder: bool = False) -> Path:
    """A multi-label classification study on ``seg``'s images and folds: truth = presence of each class."""
    study = root / "presence"
    study.mkdir(parents=True)
    folds = pd.read_csv(seg / "folds.csv")
    if reorder:
        folds = folds.iloc[::-1].reset_index(drop=True)
    folds.to_csv(study / "folds.csv", index=False)
    truth = np.load(seg / "truth.npy")
    presence = truth.any(axis=(2, 3)).astype(np.uint8)
    np.save(study / "truth.npy", presence[::-1].copy() if reorder else presence)
    raw = yaml.safe_load((seg / "study.yaml").read_text())
    raw.update({"kind": "classification", "multi_label": True, "metric": "macro_f1"})
    (study / "study.yaml").write_text(yaml.safe_dump(raw))
    # a classifier that is right on OOF; its weights say "clean" to every image (bias -20), so predict skips all
    folder = add_trial(study, "g", presence * 0.9 + 0.05, ms=5.0)
    config = from_flat(TrialConfig, StudyFolder(study).trial("g").read_config())
    for k in (0, 1):
        model = build_model(config.model, presence.shape[1], load_weights=False)
        with torch.no_grad():
            model.get_classifier().weight.zero_()
            model.get_classifier().bias.fill_(-20.0)
        save_weights(model, folder / f"fold{k}" / "model.safetensors")
    return study


@pytest.fixture(scope="module")
def gated(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gate")
    seg = copy_study(tiny_study, root)
    cls = presence_study(seg, root)
    assert select.main([f"study={seg}", "budget.seconds=3600", "budget.images=100", f"gate={cls}"]) == 0
    return seg, cls


def test_selection_tunes_the_gate_on_the_classifier_and_counts_its_cost(gated: tuple[Path, Path]) -> None:
    seg, _ = gated
    manifest = json.loads((seg / "ensemble.json").read_text())
    assert manifest["postprocessing"]["gate_source"] == "study:presence"
    gate = manifest["gate"]
    assert [m["trial_id"] for m in gate["members"]] == ["g"] and gate["multi_label"] is True
    assert all((seg / c).resolve().is_file() for c in gate["members"][0]["checkpoints"])
    budget = manifest["budget"]
    # the classifier runs on every image: 5 ms x 1.6 / 1.6 x 100 images; the members on the segmented share
    assert budget["gate_seconds"] == pytest.approx(0.5)
    assert 0 < budget["segmented_share"] <= 1
    assert budget["expected_seconds"] >= budget["fixed_seconds"] + budget["gate_seconds"]


def test_export_carries_the_classifier_and_predict_skips_clean_images(gated: tuple[Path, Path], tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seg, _ = gated
    out = tmp_path / "export"
    assert export.main([f"study={seg}", f"out={out}"]) == 0
    assert sorted(p.name for p in (out / "members").iterdir() if p.name.startswith("gate-")) == ["gate-00-g"]
    assert predict.main([f"model={out}", f"images={tiny_data / 'test_images'}", f"sample={tiny_data / 'sample_submission.csv'}",
                         f"out={tmp_path / 'sub.csv'}", "workers=1"]) == 0
    assert "Gate: segmented " in capsys.readouterr().out
    predictor = Predictor(out, "cpu")
    images = [np.full((32, 64, 3), v, np.uint8) for v in (30, 120, 200)]
    per_class = predictor.manifest.postprocessing["per_class"]
    for values in per_class:
        values["gate"] = 0.5  # every class gated: the classifier (p ~ 0) judges every image clean
    predictor.gates = [0.5] * predictor.num_classes
    skipped = list(predictor.masks(images))
    assert predictor.segmented == 0 and all(m.shape == (predictor.num_classes, 32, 64) and not m.any() for m in skipped)
    # the same as segmenting them and letting the gate step wipe each class
    image_probs = predictor.gate.probabilities(images)
    full = [predictor.postprocess(p, image_probs[i]) for i, p in enumerate(predictor.probabilities(images))]
    assert all(np.array_equal(a, b) for a, b in zip(skipped, full, strict=True))
    per_class[0]["gate"], predictor.gates[0] = 0.0, 0.0  # one class without a gate: every image is segmented
    list(predictor.masks(images))
    assert predictor.segmented == 3


def test_a_gate_study_on_another_split_is_one_error(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seg = copy_study(tiny_study, tmp_path)
    cls = presence_study(seg, tmp_path, reorder=True)
    capsys.readouterr()
    assert select.main([f"study={seg}", f"gate={cls}", "nested=false"]) == 2
    error = one_line_error(capsys)
    assert "folds.csv line 2" in error and "same images and folds" in error


def test_a_classification_trial_inside_the_segmentation_study_is_its_gate(tiny_study: Path, tmp_path: Path) -> None:
    seg = copy_study(tiny_study, tmp_path)
    presence = np.load(seg / "truth.npy").any(axis=(2, 3)).astype(np.uint8)
    add_trial(seg, "zc", presence * 0.9 + 0.05, ms=5.0)  # (N, C) float16 OOF beside the masks' trials
    assert select.main([f"study={seg}", "budget.seconds=3600", "budget.images=100", "nested=false"]) == 0
    manifest = json.loads((seg / "ensemble.json").read_text())
    assert manifest["postprocessing"]["gate_source"] == "trial:zc"
    assert [m["trial_id"] for m in manifest["gate"]["members"]] == ["zc"] and "zc" not in [m["trial_id"] for m in manifest["members"]]
    assert manifest["budget"]["gate_seconds"] == pytest.approx(0.5)
