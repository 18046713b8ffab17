"""Predict: bad places and bad images stop it before any model runs; batching and readers change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ensembling_helpers import one_line_error

from core.data.images import read_rgb
from core.preprocess import resize_image, to_tensor
from core.tta import predict_tta
from ensembling import export, predict
from ensembling.runtime.predictor import Predictor


@pytest.fixture(scope="module")
def model(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "export"
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    return out


def _args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [f"model={model}", f"images={data / 'test_images'}", f"sample={data / 'sample_submission.csv'}", f"out={out}", *extra]


def test_batches_and_readers_do_not_change_the_submission(model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    assert predict.main(_args(model, tiny_data, one, "batch_size=1", "workers=1")) == 0
    assert "bench:" not in capsys.readouterr().out
    assert predict.main(_args(model, tiny_data, many, "batch_size=5", "workers=3", "bench=true")) == 0
    assert one.read_text() == many.read_text()
    side = json.loads((tmp_path / "many.csv.ensemble.json").read_text())
    assert side["ensemble_id"] == json.loads((model / "ensemble.json").read_text())["ensemble_id"] and side["images"] == 24
    out = capsys.readouterr().out  # bench=true: time per image, projected to the budget's count, beside selection's
    assert "ms per image" in out and "projected" in out and "for the budget's 100 images" in out and "selection expected" in out


def test_tta_views_in_one_batch_match_one_pass_per_view(model: Path, tiny_data: Path) -> None:
    predictor = Predictor(model, "cpu")
    member = predictor.members[0]
    images = [read_rgb(p) for p in sorted((tiny_data / "test_images").iterdir())[:3]]
    batch = to_tensor(np.stack([resize_image(i, member.input_size) for i in images]))
    expected = sum(predict_tta(m, batch, member.tta) for m in member.models) / len(member.models)
    torch.testing.assert_close(predictor._member_probs(member, batch), expected, rtol=1e-4, atol=1e-5)


def test_an_existing_folder_as_out_is_refused_before_any_work(model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sub").mkdir()
    assert predict.main(_args(model, tiny_data, tmp_path / "sub")) == 2
    assert "is a folder; name a file" in one_line_error(capsys)
    (tmp_path / "afile").write_text("x")
    assert predict.main(_args(model, tiny_data, tmp_path / "afile" / "sub.csv")) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert predict.main(_args(model, tiny_data, model / "sub.csv")) == 2
    assert "inside the export folder" in one_line_error(capsys)


def test_a_garbage_test_image_is_named_before_any_model_runs(model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    images = tmp_path / "test_images"
    images.mkdir()
    for p in (tiny_data / "test_images").iterdir():
        (images / p.name).write_bytes(p.read_bytes())
    bad = sorted(images.iterdir())[5]
    bad.write_bytes(b"\xff\xd8\xff garbage, not a JPEG" * 10)
    ran = []
    monkeypatch.setattr(Predictor, "masks", lambda self, pixels: ran.append(1))
    out = tmp_path / "sub.csv"
    args = [f"model={model}", f"images={images}", f"sample={tiny_data / 'sample_submission.csv'}", f"out={out}"]
    assert predict.main(args) == 2
    assert f"{bad}: not a readable image" in one_line_error(capsys)
    assert not ran and not out.exists()


def test_truncated_weights_in_an_export_are_one_line(model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "export"
    assert export.main([f"study={tiny_data.parent / 'study'}", f"out={broken}"]) == 0
    weights = next((broken / "members").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:3000])
    assert predict.main(_args(broken, tiny_data, tmp_path / "s.csv")) == 2
    assert f"{weights}: " in one_line_error(capsys)


def test_images_of_another_size_are_predicted_at_their_own_size(model: Path, tmp_path: Path) -> None:
    predictor = Predictor(model, "cpu")
    image = cv2.cvtColor(np.full((50, 70, 3), 128, np.uint8), cv2.COLOR_BGR2RGB)
    (masks,) = list(predictor.masks([image]))
    assert masks.shape == (predictor.num_classes, 50, 70) and masks.dtype == np.uint8
