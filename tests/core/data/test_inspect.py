"""trainables.inspect on real Severstal images that carry someone else's drawn mask contours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_format_contract import _neu_det, _severstal

import core.data  # noqa: F401
from core.data.formats import get_format
from core.data.inspect import data_picture
from core.data.problems import Problems
from core.data.study import DataConfig, load_data
from trainables.inspect import main


def _agreement(data, order: str) -> list[float]:
    """Per image: the share of the drawn (coloured) contour pixels within 2 px of our decoded mask edges."""
    out = []
    kernel = np.ones((3, 3), np.uint8)
    for image_id in data.image_ids:
        image = data.read_image(image_id).astype(int)
        drawn = (image.max(axis=2) - image.min(axis=2)) > 60  # their contours are saturated colours on grey steel
        masks = _decoded_as(data, image_id, order)
        edge = np.zeros(drawn.shape, np.uint8)
        for mask in masks:
            edge |= (cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)).astype(np.uint8)
        near = cv2.dilate(edge, np.ones((5, 5), np.uint8)).astype(bool)
        out.append(float((drawn & near).sum() / max(1, drawn.sum())))
    return out


def _decoded_as(data, image_id, order):
    from core.data.rle import rle_decode

    shape = data.image_shape(image_id)
    return np.stack([rle_decode(data.rles.get((image_id, c), ""), shape, order) for c in range(data.num_classes)])


def test_drawn_contours_sit_on_decoded_mask_edges_and_the_grid_is_written(tmp_path, capsys):
    root, _ = _severstal(tmp_path / "severstal")
    data = load_data(DataConfig(format="severstal", root=str(root)))
    agreement = _agreement(data, "F")
    assert min(agreement) > 0.9, agreement  # measured: 91-100% per image, 9 of 10 above 97%
    assert max(_agreement(data, "C")) < 0.5  # the wrong pixel order does not pass: the check can fail
    out = tmp_path / "severstal.png"  # kept in the test's temp folder to look at
    assert main(["data=severstal", f"data.root={root}", f"out={out}", "images=10"]) == 0
    text = capsys.readouterr().out
    assert "severstal: 10 images, 4 classes, 0 without any mask" in text
    assert "1600x256 (10)" in text and "area q05" in text
    picture = cv2.imread(str(out))
    # legend, then 5 rows of 2 tiles: a 22-px title over the image at 640 x 102
    assert picture is not None and picture.shape[:2] == (28 + 5 * (22 + 102), 1280)


def test_classification_grid_and_bad_keys(tmp_path, capsys):
    root, _ = _neu_det(tmp_path)
    data = get_format("classes").read(root, get_format("classes").parse_options({}), Problems())
    picture = data_picture(data, n=8)
    assert picture.ndim == 3 and picture.shape[2] == 3
    assert main(["data=classes", f"data.root={root}", f"out={tmp_path / 'neu.png'}", "images=8"]) == 0
    assert "classes: 300 images, 6 classes" in capsys.readouterr().out
    assert main(["data=severstal", f"data.root={root}", "data.images=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.images is not an option of data format 'severstal'; its options: data.classes")
    assert main(["data=synthetic", "data.images=3", f"storage={tmp_path}"]) == 2
    assert "data.images must be an integer >= 8, got 3" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["nope=1", "words"])
def test_inspect_usage_errors(bad, capsys):
    assert main([bad]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_data_picture_is_written_where_the_search_logs_it(tmp_path):
    import cv2

    from core.contract import StudyFolder
    from core.data.inspect import write_data_picture

    root, _ = _severstal(tmp_path / "severstal")
    data = load_data(DataConfig(format="severstal", root=str(root)))
    path = write_data_picture(tmp_path / "study", data)
    assert path == StudyFolder(tmp_path / "study").data_picture
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[0] > 100 and picture.shape[1] > 100


@pytest.fixture()
def synthetic_root(tmp_path, monkeypatch):
    """8 generated images in tmp_path/data (train.csv, train_images/, sample, test images); the current folder is tmp_path."""
    root = tmp_path / "data"
    assert main(["data=synthetic", f"data.root={root}", "data.images=8", f"out={tmp_path / 'first.png'}"]) == 0
    monkeypatch.chdir(tmp_path)
    return root


def _no_data_read(monkeypatch):
    import trainables.inspect as command

    def read(*args, **kwargs):
        raise AssertionError("the data was read before the refusal")

    monkeypatch.setattr(command, "load_data", read)


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("data/train.csv", "is inside the data folder (data.root)"),
        ("data/train_images/new.png", "is inside the data folder (data.root)"),
        ("link.csv", "is a symbolic link"),
        (".", "out=.: is a folder; name a file, e.g. out=data.png"),
        ("", "out= is empty; name a new file, e.g. out=data.png"),
        ("mine.txt/data.png", "mine.txt is a file, not a folder"),
        ("/proc/data.png", "cannot write in /proc"),
    ],
)
@pytest.mark.parametrize("overwrite", ["false", "true"])
def test_inspect_out_never_replaces_the_data_or_a_bad_place(out, expected, overwrite, synthetic_root, tmp_path, capsys, monkeypatch):
    import os

    (tmp_path / "mine.txt").write_text("notes")
    os.symlink(synthetic_root / "train.csv", tmp_path / "link.csv")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    _no_data_read(monkeypatch)
    capsys.readouterr()
    assert main(["data=synthetic", f"data.root={synthetic_root}", f"out={out}", f"overwrite={overwrite}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out=") and expected in err[0], err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_inspect_replaces_its_own_picture_and_another_file_only_when_asked(synthetic_root, tmp_path, capsys):
    from core.png_mark import marked_by

    first = tmp_path / "first.png"
    assert marked_by(first) == "trainables.inspect"
    assert main(["data=synthetic", f"data.root={synthetic_root}", "out=first.png"]) == 0  # ours: replaced
    mine = tmp_path / "mine.png"
    mine.write_bytes(first.read_bytes()[:8] + b"a picture of the user")
    capsys.readouterr()
    assert main(["data=synthetic", f"data.root={synthetic_root}", "out=mine.png"]) == 2
    assert "out=mine.png: the file exists and this command did not write it (no trainables.inspect mark in it); name a new file, or pass overwrite=true" in capsys.readouterr().err
    assert mine.read_bytes().endswith(b"a picture of the user")
    assert main(["data=synthetic", f"data.root={synthetic_root}", "out=mine.png", "overwrite=maybe"]) == 2
    assert "overwrite must be true or false, got 'maybe'" in capsys.readouterr().err
    assert main(["data=synthetic", f"data.root={synthetic_root}", "out=mine.png", "overwrite=true"]) == 0
    assert marked_by(mine) == "trainables.inspect"
