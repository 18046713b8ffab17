"""The file-target rule: new, ours, or (overwrite=true) a plain file that is no input; never an input, a study, an export."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from core import targets
from core.png_mark import mark_png, marked_by
from core.targets import check_file_target, check_writable_folder


def _never(path: Path) -> bool:
    return False


@pytest.fixture()
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data folder (sample, images), a study, an export and a user's file; the current folder is tmp_path."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / "a.jpg").write_bytes(b"jpeg bytes")
    (data / "sample.csv").write_text("ImageId,EncodedPixels\n")
    study = tmp_path / "study"
    (study / "trials").mkdir(parents=True)
    (study / "study.yaml").write_text("folds: 2\n")
    (study / "folds.csv").write_text("image,fold\n")
    export = tmp_path / "export"
    export.mkdir()
    (export / "kvs-export.json").write_text("{}")
    (tmp_path / "mine.csv").write_text("my own numbers")
    monkeypatch.chdir(tmp_path)
    return {"data": data, "sample": data / "sample.csv", "images": data / "images", "study": study, "export": export}


def _check(place: dict[str, Path], out: str | Path, overwrite: bool = False, ours=_never) -> Path:
    inputs = {"sample": place["sample"], "images folder": place["images"]}
    return check_file_target(out, "out", inputs, ours, "no mark", overwrite)


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("data/sample.csv", "out=data/sample.csv: is the sample"),
        ("./data/../data/sample.csv", "is the sample"),
        ("data/images/a.jpg", "is inside the images folder"),
        ("data/images/new.csv", "is inside the images folder"),
        ("study/folds.csv", "is inside the study folder"),
        ("study/trials/new.csv", "is inside the study folder"),
        ("export/sub.csv", "is inside the export folder"),
        (".", "out=.: is a folder; name a file"),
        ("data", "is a folder; name a file"),
        ("", "out= is empty; name a new file, e.g. out=submission.csv"),
        ("  ", "out= is empty"),
        ("mine.csv/sub.csv", "mine.csv is a file, not a folder"),
        ("mine.csv/deeper/sub.csv", "mine.csv is a file, not a folder"),
        ("/proc/sub.csv", "cannot write in /proc"),
    ],
)
def test_refused_even_with_overwrite(place: dict[str, Path], out: str, expected: str) -> None:
    before = {p: p.read_bytes() for p in Path.cwd().rglob("*") if p.is_file()}
    for overwrite in (False, True):
        with pytest.raises(ValueError) as error:
            _check(place, out, overwrite)
        assert expected in str(error.value) and "\n" not in str(error.value)
    assert {p: p.read_bytes() for p in Path.cwd().rglob("*") if p.is_file()} == before


def test_the_sample_by_any_other_name_is_refused(place: dict[str, Path]) -> None:
    os.symlink(place["sample"], "link.csv")
    with pytest.raises(ValueError, match=r"out=link.csv: is a symbolic link \(to .*sample.csv\)"):
        _check(place, "link.csv", overwrite=True)
    os.link(place["sample"], "hard.csv")  # one file, two names
    with pytest.raises(ValueError, match=r"out=hard.csv: is the sample .*\(overwrite=true never replaces an input\)"):
        _check(place, "hard.csv", overwrite=True)
    os.symlink(place["images"], "pictures")  # a folder link: the file would land among the images
    with pytest.raises(ValueError, match=r"out=pictures/sub\.csv: is inside the images folder"):
        _check(place, "pictures/sub.csv")
    os.chdir(place["data"])  # a relative name equal to the sample in the current folder
    with pytest.raises(ValueError, match=r"out=sample\.csv: is the sample"):
        _check(place, "sample.csv", overwrite=True)


def test_a_foreign_file_needs_overwrite_and_ours_does_not(place: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"out=mine\.csv: the file exists and this command did not write it \(no mark\); .*overwrite=true"):
        _check(place, "mine.csv")
    assert Path("mine.csv").read_text() == "my own numbers"
    assert _check(place, "mine.csv", overwrite=True) == Path("mine.csv")
    assert _check(place, "mine.csv", ours=lambda p: p.read_text() == "my own numbers") == Path("mine.csv")
    assert _check(place, "new/deeper/sub.csv") == Path("new/deeper/sub.csv")  # new: its folders are made when written
    assert _check(place, "~/../" + str(Path.cwd() / "x.csv")).name == "x.csv"


def test_a_generated_data_folder_still_to_come_is_an_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is inside the data folder"):
        check_file_target(tmp_path / "gen" / "x.png", "out", {"data folder": tmp_path / "gen"}, _never, "no mark")


def test_png_mark_round_trip_and_foreign_files(tmp_path: Path) -> None:
    _, png = cv2.imencode(".png", np.zeros((4, 5, 3), np.uint8))
    marked = tmp_path / "m.png"
    marked.write_bytes(mark_png(png.tobytes(), "trainables.inspect"))
    assert marked_by(marked) == "trainables.inspect"
    assert cv2.imread(str(marked)).shape == (4, 5, 3)  # still a PNG any reader takes
    plain = tmp_path / "p.png"
    plain.write_bytes(png.tobytes())
    assert marked_by(plain) is None
    (tmp_path / "t.csv").write_text("a,b\n")
    assert marked_by(tmp_path / "t.csv") is None and marked_by(tmp_path / "missing.png") is None
    forged = bytearray(mark_png(png.tobytes(), "trainables.inspect"))
    forged[40] ^= 1  # a damaged chunk (its CRC no longer holds) is no mark
    (tmp_path / "f.png").write_bytes(bytes(forged))
    assert marked_by(tmp_path / "f.png") is None
    with pytest.raises(ValueError, match="not a PNG"):
        mark_png(b"GIF89a", "x")


def test_writable_folder_is_tried_with_a_real_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_writable_folder(tmp_path, "study", "ensemble.json")
    check_writable_folder(tmp_path / "missing", "study", "ensemble.json")  # a missing study is named elsewhere
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing
    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")  # as a user without write permission sees it (root is never refused)

    monkeypatch.setattr(targets.tempfile, "mkstemp", refused)
    with pytest.raises(ValueError, match=f"study={tmp_path}: cannot write in {tmp_path} \\(permission denied\\), where this command writes ensemble.json"):
        check_writable_folder(tmp_path, "study", "ensemble.json")
