"""Bad input at every command: a one-line error that names the file, row or key, and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ensembling import export, predict, select
from search import run as search_run


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["space=quik"], "did you mean 'quick'"),
        (["trails=3"], "did you mean 'trials'"),
        (["model.encodr=resnet18"], "did you mean 'model.encoder'"),
        (["model.encoder=resnet19"], "Unknown model.encoder 'resnet19'"),
        (["data=kaggle"], "Unknown data format 'kaggle'"),
        (["trials"], "must look like key=value"),
    ],
)
def test_search_rejects_bad_arguments(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert search_run.main([*argv, f"storage={tmp_path}"]) == 2
    assert expected in one_line_error(capsys)


def _severstal(root: Path, csv: str, images: tuple[str, ...] = ("a.jpg",)) -> Path:
    (root / "train_images").mkdir(parents=True)
    for name in images:
        cv2.imwrite(str(root / "train_images" / name), np.zeros((8, 16, 3), np.uint8))
    (root / "train.csv").write_text(csv)
    return root


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        ("ImageId,Class,EncodedPixels\na.jpg,1,1 2\n", r"train.csv: expected columns ImageId,ClassId,EncodedPixels"),
        ("ImageId,ClassId,EncodedPixels\na.jpg,1,1 2 3\n", r"train.csv:2: bad EncodedPixels .* even count"),
        ("ImageId,ClassId,EncodedPixels\na.jpg,1,120 10\n", r"train.csv:2: bad EncodedPixels .* outside the image"),
        ("ImageId,ClassId,EncodedPixels\nb.jpg,1,1 2\n", r"train.csv:2: image b.jpg not found"),
    ],
)
def test_search_names_the_bad_row_of_train_csv(csv: str, expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = _severstal(tmp_path / "data", csv)
    argv = ["data=severstal", f"data.root={data}", f"storage={tmp_path / 'studies'}"]
    assert search_run.main(argv) == 2
    import re

    assert re.search(expected, one_line_error(capsys))


def test_select_without_a_study(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert select.main([f"study={tmp_path}"]) == 2
    assert "not a study folder" in one_line_error(capsys)
    assert select.main([]) == 2
    assert "missing study=..." in one_line_error(capsys)


def test_export_without_an_ensemble(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert export.main([f"study={tmp_path}", f"out={tmp_path / 'out'}"]) == 2
    assert "no ensemble manifest" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_predict_names_a_missing_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    manifest = {"format_version": 1, "num_classes": 4, "class_ids": [1, 2, 3, 4], "members": [], "rle_order": "F", "metric": "dice_pairs", "oof_score": 0.5}
    (model / "ensemble.json").write_text(json.dumps(manifest))
    (tmp_path / "images").mkdir()
    sample = tmp_path / "sample.csv"
    sample.write_text("ImageId,EncodedPixels,ClassId\nx.jpg,1 1,1\n")
    out = tmp_path / "sub.csv"
    assert predict.main([f"model={model}", f"images={tmp_path / 'images'}", f"sample={sample}", f"out={out}"]) == 2
    assert "image x.jpg of" in one_line_error(capsys)
    assert not out.exists()


def test_python_dash_m_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "search.run", "space=nope"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "unknown space 'nope'" in result.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["budget.seconds=abc"], "budget.seconds must be a number > 0, got 'abc'"),
        (["budget.seconds=-5"], "budget.seconds must be a number > 0, got -5"),
        (["budget.seconds=.inf"], "budget.seconds must be a number > 0, got inf"),
        (["budget.images=0"], "budget.images must be an integer >= 1, got 0"),
        (["budget.images=2.5"], "budget.images must be an integer >= 1, got 2.5"),
        (["max_steps=true"], "max_steps must be an integer >= 1, got True"),
    ],
)
def test_select_checks_typed_keys_before_reading_the_study(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert select.main([f"study={tmp_path}", *argv]) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["batch_size=0"], "batch_size must be an integer >= 1, got 0"),
        (["batch_size=many"], "batch_size must be an integer >= 1, got 'many'"),
        (["workers=0"], "workers must be an integer >= 1, got 0"),
        (["bench=maybe"], "bench must be true or false, got 'maybe'"),
    ],
)
def test_predict_checks_typed_keys(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = [f"model={tmp_path}", f"images={tmp_path}", f"sample={tmp_path / 's.csv'}", f"out={tmp_path / 'o.csv'}"]
    assert predict.main([*base, *argv]) == 2
    assert expected in one_line_error(capsys)

