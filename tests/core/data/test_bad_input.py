"""Bad input, one case at a time: one line naming the file and row, exit status 2, nothing half-written;
and ``data.on_error=skip``: the same rows left out, listed in the study's report, the count printed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import core.data  # noqa: F401
from core.contract import StudyFolder
from core.data.study import DataConfig, StudyConfig, load_data, prepare_study
from core.errors import exit_status
from search.config import load_plan
from search.run import prepare


def _image(path, shape=(24, 32)):
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(path)


def _mask(path, shape=(24, 32), value=1):
    mask = np.zeros(shape, np.uint8)
    mask[2:9, 3:12] = value
    Image.fromarray(mask).save(path)


def _folder(root, n=6, values=(1, 2)):
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        _image(root / "images" / f"{i}.png")
        _mask(root / "masks" / f"{i}.png", value=values[i % len(values)])
    return root


def _error(capsys, work) -> str:
    assert exit_status(work) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def _read(root, **options):
    return lambda: load_data(DataConfig(format="folder", root=str(root), options=options))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: _mask(r / "masks" / "extra.png"), r"masks/extra.png: mask without an image \(no extra\.\* in .*images\)"),
        (lambda r: (r / "masks" / "3.png").unlink(), r"images/3.png: image without a mask \(no 3\.\* in .*masks\)"),
        (lambda r: _mask(r / "masks" / "2.png", (20, 32)), r"masks/2.png: mask is 32x20, its image is 32x24"),
        (lambda r: _mask(r / "masks" / "4.png", value=7), r"masks/4.png: unknown class id 7 \(classes are 1..2\)"),
        (lambda r: _image(r / "images" / "1.jpg"), r"images/1.png: image listed twice: 1.jpg has the same stem"),
        (lambda r: (r / "masks" / "0.png").write_bytes(b"not a png"), r"masks/0.png: not a readable mask image"),
    ],
)
def test_folder_bad_input_is_one_line(tmp_path, capsys, damage, message):
    root = _folder(tmp_path / "data")
    damage(root)
    assert re.search(message, _error(capsys, _read(root, classes=2)))


def test_empty_folder_data_set(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    assert "empty data set" in _error(capsys, _read(root))


def test_truncated_or_missing_image_is_found_when_the_study_is_prepared(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "train_images").mkdir(parents=True)
    for i in range(6):
        _image(root / "train_images" / f"{i}.jpg", (64, 64))
    (root / "train.csv").write_text("ImageId,ClassId,EncodedPixels\n0.jpg,1,1 5\n3.jpg,2,7 3\n")
    whole = (root / "train_images" / "3.jpg").read_bytes()
    (root / "train_images" / "3.jpg").write_bytes(whole[: len(whole) // 2])
    argv = ["data=severstal", f"data.root={root}", f"storage={tmp_path / 'studies'}", "folds=2", "study=s"]
    err = _error(capsys, lambda: prepare(load_plan(argv)))
    assert re.search(r"train_images/3.jpg: not a readable image \(.*truncated.*\) \(listed at .*train.csv:3\)", err)
    assert not (tmp_path / "studies" / "s" / "folds.csv").exists()  # nothing written before the data is good


def test_unknown_and_bad_data_options_name_the_format(tmp_path, capsys):
    err = _error(capsys, lambda: load_plan(["data=severstal", f"data.root={tmp_path}", "data.images=3"]))
    assert "data.images is not an option of data format 'severstal'; its options: data.classes" in err
    err = _error(capsys, lambda: load_plan(["data.images=3"]))
    assert "data.images must be an integer >= 8, got 3" in err
    err = _error(capsys, lambda: load_plan(["data=folder"]))
    assert "data.format=folder reads a folder: name it with data.root=PATH" in err
    err = _error(capsys, lambda: load_plan(["data.on_error=maybe"]))
    assert "data.on_error must be one of stop, skip, got 'maybe'" in err
    plan = load_plan(["data=synthetic", "data.images=16"])
    assert plan.config.data.options == {"images": 16}


def test_carvana_missing_columns_and_duplicate_rows(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    _image(tmp_path / "train" / "a.jpg")
    (tmp_path / "train_masks.csv").write_text("img,mask\na.jpg,1 1\n")
    config = DataConfig(format="carvana", root=str(tmp_path))
    assert "expected columns img,rle_mask, got img,mask (missing rle_mask)" in _error(capsys, lambda: load_data(config))
    (tmp_path / "train_masks.csv").write_text("img,rle_mask\na.jpg,1 1\na.jpg,3 1\n")
    assert re.search(r"train_masks.csv:3: image a.jpg listed twice \(first on line 2\)", _error(capsys, lambda: load_data(config)))


def test_skip_lists_every_bad_row_in_the_study_and_prints_the_count(tmp_path, capsys):
    root = _folder(tmp_path / "data", n=8)
    _mask(root / "masks" / "extra.png")
    (root / "masks" / "3.png").unlink()
    _mask(root / "masks" / "2.png", (20, 32))
    whole = (root / "images" / "5.png").read_bytes()
    (root / "images" / "5.png").write_bytes(whole[:200])
    config = StudyConfig(data=DataConfig(format="folder", root=str(root), on_error="skip", classes=2), folds=2)
    study = prepare_study(tmp_path / "study", config)
    assert "skipped 4 bad row(s) or file(s), listed in" in capsys.readouterr().out
    report = pd.read_csv(StudyFolder(tmp_path / "study").data_errors, keep_default_na=False)
    assert report.columns.tolist() == ["where", "image_id", "problem"] and len(report) == 4
    assert sorted(study.image_ids) == ["0.png", "1.png", "4.png", "6.png", "7.png"]
    assert any("mask without an image" in p for p in report["problem"])


def test_a_study_yaml_from_before_format_options_still_opens(tmp_path):
    from core.data.study import _legacy_data

    old = {"format": "severstal", "root": "/x", "classes": 3, "images": 96, "limit": 0}
    config = _legacy_data(dict(old))
    assert config.format == "severstal" and config.options == {"classes": 3} and config.root == "/x"
    assert _legacy_data({"format": "synthetic", "classes": 4, "images": 32}).options == {"classes": 4, "images": 32}
    new = {"format": "folder", "root": "/y", "limit": 0, "on_error": "skip", "options": {"mode": "index"}}
    assert _legacy_data(dict(new)).options == {"mode": "index"} and _legacy_data(dict(new)).on_error == "skip"
