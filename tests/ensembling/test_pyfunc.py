"""The export as an MLflow pyfunc model: registered with alias champion, same masks as our predictor."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from ensembling_helpers import copy_study

from ensembling import export
from ensembling.predictor import Predictor
from trainables.data.images import read_rgb


def test_registered_pyfunc_gives_the_predictors_masks_at_any_size(tiny_study: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts land in ./mlruns
    study = copy_study(tiny_study, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (study / "study.yaml").write_text((study / "study.yaml").read_text().replace(str(tiny_study.parent / "mlflow.db"), str(tmp_path / "mlflow.db")))
    out = tmp_path / "export"
    assert export.main([f"study={study}", f"out={out}", "register=tiny-ensemble"]) == 0
    mlflow.set_tracking_uri(uri)
    version = mlflow.MlflowClient().get_model_version_by_alias("tiny-ensemble", "champion")
    assert str(version.version) == "1"
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
