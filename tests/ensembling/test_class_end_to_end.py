"""The whole chain with real classification trials (``trainables.fit``, 1 epoch of a tiny timm model):
NEU-DET images -> select -> export -> predict, fold models and refit; and a presence study of the tiny segmentation study as its gate."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ensembling_helpers import copy_study
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "data"))
from shared_data import shared

from core.data.study import DataConfig, StudyConfig, prepare_study, study_record
from ensembling import export, predict, refit, select
from trainables.fit import run_trial

pytestmark = pytest.mark.slow  # four real trials and two selections: ~60 s on one core

TINY = {"model.family": "timm", "model.encoder": "test_resnet", "train.epochs": 1, "train.batch_size": 8,
        "train.threads": 1, "train.lr": 3e-3, "tta": "hflip"}


def _study(root: Path, data: DataConfig, metric: str, oof_scale: float = 0.25) -> Path:
    config = StudyConfig(data=data, folds=2, seed=0, metric=metric, oof_scale=oof_scale)
    study = prepare_study(root, config)
    raw = {"data": {**vars(data)}, "folds": 2, "seed": 0, "metric": metric, "oof_scale": oof_scale, **study_record(study),
           "mlflow": {"uri": f"sqlite:///{root.parent / 'mlflow.db'}"}}
    (root / "study.yaml").write_text(yaml.safe_dump(raw))
    return root


def test_neu_det_trials_to_a_submission(tmp_path: Path) -> None:
    source = shared("neu_det_cls", "IMAGES")
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    by_class: dict[str, list[Path]] = {}
    for path in sorted(source.iterdir()):
        by_class.setdefault(path.stem.rpartition("_")[0], []).append(path)
    for paths in by_class.values():
        for path in paths[:4]:
            shutil.copy(path, train / path.name)
        shutil.copy(paths[10], test / paths[10].name)
    study = _study(tmp_path / "s", DataConfig(format="classes", root=str(train)), "log_loss")
    run_trial({**TINY, "train.scale": 0.16}, study, trial_id="a")
    run_trial({**TINY, "train.scale": 0.16, "train.lr": 1e-3, "seed": 1}, study, trial_id="b")
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100"]) == 0
    manifest = json.loads((study / "ensemble.json").read_text())
    assert manifest["kind"] == "classification" and manifest["metric"] == "log_loss" and manifest["nested_score"] > 0
    assert manifest["members"][0]["input_size"] == [32, 32]
    assert export.main([f"study={study}", f"out={tmp_path / 'export'}"]) == 0
    names = sorted(p.name for p in test.iterdir())
    pd.DataFrame({"image": names, "label": ""}).to_csv(tmp_path / "sample.csv", index=False)
    assert predict.main([f"model={tmp_path / 'export'}", f"images={test}", f"sample={tmp_path / 'sample.csv'}", f"out={tmp_path / 'sub.csv'}", "workers=1"]) == 0
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert sub["image"].tolist() == names and set(sub["label"]) <= set(by_class)
    # refit: each member's classifier trained once more on all 24 images, exported as one model per member
    assert refit.main([f"study={study}", "threads=1"]) == 0
    for member in manifest["members"]:
        trial = study / "trials" / member["trial_id"]
        assert json.loads((trial / "refit" / "metrics.json").read_text())["images"] == 24
        refit_state, fold_state = load_file(trial / "refit" / "model.safetensors"), load_file(trial / "fold0" / "model.safetensors")
        assert refit_state.keys() == fold_state.keys()
        assert any(not (refit_state[k] == fold_state[k]).all() for k in refit_state)  # trained anew, not a copy
    assert export.main([f"study={study}", f"out={tmp_path / 'export-refit'}", "models=refit"]) == 0
    exported = json.loads((tmp_path / "export-refit" / "ensemble.json").read_text())
    assert [len(m["checkpoints"]) for m in exported["members"]] == [1] * len(manifest["members"])
    assert predict.main([f"model={tmp_path / 'export-refit'}", f"images={test}", f"sample={tmp_path / 'sample.csv'}", f"out={tmp_path / 'refit.csv'}", "workers=1"]) == 0
    refit_sub = pd.read_csv(tmp_path / "refit.csv")
    assert refit_sub["image"].tolist() == names and set(refit_sub["label"]) <= set(by_class)


def test_a_presence_study_gates_the_segmentation_study(tiny_study: Path, tmp_path: Path) -> None:
    seg = copy_study(tiny_study, tmp_path)
    raw = yaml.safe_load((seg / "study.yaml").read_text())
    data = DataConfig(**{**raw["data"], "task": "presence"})
    cls = _study(tmp_path / "presence", data, "macro_f1", oof_scale=raw["oof_scale"])
    assert (cls / "folds.csv").read_text() == (seg / "folds.csv").read_text()
    run_trial({**TINY, "train.scale": 0.25}, cls, trial_id="g")
    assert select.main([f"study={cls}", "budget.seconds=3600", "budget.images=100", "nested=false"]) == 0
    assert select.main([f"study={seg}", "budget.seconds=3600", "budget.images=100", f"gate={cls}", "nested=false"]) == 0
    manifest = json.loads((seg / "ensemble.json").read_text())
    assert manifest["gate"]["members"][0]["trial_id"] == "g" and manifest["postprocessing"]["gate_source"] == "study:presence"
    assert manifest["budget"]["gate_seconds"] > 0 and np.isfinite(manifest["oof_score"])
    # (export and predict with a gate: tests/ensembling/test_gate.py)
