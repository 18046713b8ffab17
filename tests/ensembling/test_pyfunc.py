"""The export as an MLflow pyfunc model: registered with alias champion, same masks as our predictor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from ensembling_helpers import copy_study

from core.data.images import read_rgb
from ensembling import export
from ensembling.runtime.predictor import Predictor


def _register(tiny_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """Export a copy of the tiny study and register it as tiny-ensemble@champion in a SQLite store of this test."""
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts land in ./mlruns
    study = copy_study(tiny_study, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (study / "study.yaml").write_text((study / "study.yaml").read_text().replace(str(tiny_study.parent / "mlflow.db"), str(tmp_path / "mlflow.db")))
    out = tmp_path / "export"
    assert export.main([f"study={study}", f"out={out}", "register=tiny-ensemble"]) == 0
    mlflow.set_tracking_uri(uri)
    version = mlflow.MlflowClient().get_model_version_by_alias("tiny-ensemble", "champion")
    assert str(version.version) == "1"
    return out, uri


def test_registered_pyfunc_gives_the_predictors_masks_at_any_size(tiny_study: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = _register(tiny_study, tmp_path, monkeypatch)
    model = mlflow.pyfunc.load_model("models:/tiny-ensemble@champion")
    predictor = Predictor(out, "cpu")
    images = [read_rgb(p) for p in sorted((tiny_data / "test_images").iterdir())[:2]]
    for batch in ([*images], [np.ascontiguousarray(images[0][:20, :40])]):  # the training size, then another one
        got = model.predict(np.stack([i.transpose(2, 0, 1) for i in batch]).astype(np.float32))
        expected = np.stack(list(predictor.masks(batch)))
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(Exception, match="shape"):
        model.predict(np.zeros((1, 4, 8, 8), np.float32))  # four channels: refused by the signature


@pytest.mark.slow
def test_mlflow_models_predict_cli_gives_the_predictors_masks(tiny_study: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlflow models predict -m models:/NAME@champion`` (the CLI, in its own process, the local environment)."""
    from ensembling.runtime.pyfunc import log_export

    monkeypatch.chdir(tmp_path)
    study = copy_study(tiny_study, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (study / "study.yaml").write_text((study / "study.yaml").read_text().replace(str(tiny_study.parent / "mlflow.db"), str(tmp_path / "mlflow.db")))
    out = tmp_path / "export"
    assert export.main([f"study={study}", f"out={out}"]) == 0
    # the tiny model's tuned steps wipe most masks: a plain threshold makes the masks worth comparing
    manifest = json.loads((out / "ensemble.json").read_text())
    for values in manifest["postprocessing"]["per_class"]:
        values.update(threshold=0.5, min_area=0.0, min_component=0.0, gate=0.0)
    (out / "ensemble.json").write_text(json.dumps(manifest))
    assert log_export(study, out, "tiny-ensemble") == "1"
    images = [np.ascontiguousarray(read_rgb(p)[:64, :320]) for p in sorted((tiny_data / "test_images").iterdir())[:2]]
    request = tmp_path / "input.json"
    request.write_text(json.dumps({"inputs": np.stack([i.transpose(2, 0, 1) for i in images]).astype(np.float32).tolist()}))  # a tensor
    response = tmp_path / "output.json"
    command = [sys.executable, "-m", "mlflow", "models", "predict", "-m", "models:/tiny-ensemble@champion",
               "-i", str(request), "-o", str(response), "-t", "json", "--env-manager", "local"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.asarray(json.loads(response.read_text())["predictions"])
    expected = np.stack(list(Predictor(out, "cpu").masks(images)))
    assert got.shape == expected.shape == (2, 4, 64, 320)
    assert 0 < expected.mean() < 1  # masks with both values: the comparison can fail
    np.testing.assert_array_equal(got, expected)
