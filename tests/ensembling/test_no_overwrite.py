"""No command overwrites what it did not write: predict's out=, lb's plot=, and select/refit on a study they cannot write.

Every refusal is one ``error:`` line, exit status 2, before any model loads, and the file keeps its bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ensembling_helpers import copy_study, one_line_error

from ensembling import export, lb, predict


@pytest.fixture(scope="module")
def model(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("no-overwrite") / "export"
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    return out


@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model fails the test: every refusal must come first."""

    def loaded(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr(predict, "runtime_task", loaded)  # what picks and runs the predictor of masks or labels


def _args(model: Path, data: Path, out: object, *extra: str) -> list[str]:
    return [f"model={model}", f"images={data / 'test_images'}", f"sample={data / 'sample_submission.csv'}", f"out={out}", *extra]


def _target(where: str, model: Path, data: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The out= value of each case (some made here: links, a relative name in the data folder)."""
    first_image = sorted((data / "test_images").iterdir())[0]
    if where == "sample, relative":
        monkeypatch.chdir(data)
        return "sample_submission.csv"
    if where == "sample, symlink":
        os.symlink(data / "sample_submission.csv", tmp_path / "sub.csv")
        return str(tmp_path / "sub.csv")
    if where == "sample, hard link":
        os.link(data / "sample_submission.csv", tmp_path / "sub.csv")
        return str(tmp_path / "sub.csv")
    if where == "images, folder link":
        os.symlink(data / "test_images", tmp_path / "pictures")
        return str(tmp_path / "pictures" / "sub.csv")
    return str({
        "sample": data / "sample_submission.csv",
        "image": first_image,
        "new file among the images": data / "test_images" / "sub.csv",
        "study folds.csv": study / "folds.csv",
        "study, new file": study / "sub.csv",
        "export manifest": model / "ensemble.json",
    }[where])


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("sample", "is the sample"),
        ("sample, relative", "out=sample_submission.csv: is the sample"),
        ("sample, symlink", "is a symbolic link"),
        ("sample, hard link", "is the sample"),
        ("image", "is inside the images folder"),
        ("new file among the images", "is inside the images folder"),
        ("images, folder link", "is inside the images folder"),
        ("study folds.csv", "is inside the study folder"),
        ("study, new file", "is inside the study folder"),
        ("export manifest", "is inside the export folder"),
    ],
)
@pytest.mark.parametrize("overwrite", [False, True])
def test_predict_never_writes_over_an_input_even_with_overwrite(
    where: str, expected: str, overwrite: bool, model: Path, tiny_data: Path, tiny_study: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_model: None,
) -> None:
    out = _target(where, model, tiny_data, tiny_study, tmp_path, monkeypatch)
    before = Path(out).read_bytes() if Path(out).exists() else None
    assert predict.main(_args(model, tiny_data, out, f"overwrite={str(overwrite).lower()}")) == 2
    error = one_line_error(capsys)
    assert expected in error and f"out={out}" in error, error
    assert (Path(out).read_bytes() if Path(out).exists() else None) == before
    assert not Path(out + ".ensemble.json").exists()


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        (".", "out=.: is a folder; name a file, e.g. out=submission.csv"),
        ("", "out= is empty; name a new file, e.g. out=submission.csv"),
        ("{tmp}/afile/sub.csv", "afile is a file, not a folder; choose another place"),
        ("/proc/sub.csv", "cannot write in /proc"),
    ],
)
def test_predict_bad_places_are_one_line(out: str, expected: str, model: Path, tiny_data: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_model: None) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert predict.main(_args(model, tiny_data, out.format(tmp=tmp_path))) == 2
    assert expected in one_line_error(capsys)
    assert (tmp_path / "afile").read_text() == "x"


def test_predict_replaces_its_own_submission_and_a_foreign_file_only_when_asked(model: Path, tiny_data: Path, tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lines = (tiny_data / "sample_submission.csv").read_text().splitlines()
    data = tmp_path / "data"  # one test image, so each predict below takes seconds
    data.mkdir()
    (data / "sample_submission.csv").write_text("\n".join(lines[:1] + [line for line in lines if line.startswith("tst00000.jpg")]) + "\n")
    os.symlink(tiny_data / "test_images", data / "test_images")
    out = tmp_path / "mine.csv"
    out.write_text("my own numbers\n")
    assert predict.main(_args(model, data, out)) == 2
    assert f"out={out}: the file exists and this command did not write it (no sidecar mine.csv.ensemble.json with its checksum)" in one_line_error(capsys)
    assert out.read_text() == "my own numbers\n"
    assert predict.main(_args(model, data, out, "overwrite=true")) == 0
    written = out.read_bytes()
    assert written.startswith(b"ImageId,EncodedPixels,ClassId\ntst00000.jpg,")
    assert predict.main(_args(model, data, out)) == 0  # ours now: its sidecar holds its checksum
    assert out.read_bytes() == written
    out.write_bytes(written + b"edited by hand\n")  # changed since: no longer ours
    capsys.readouterr()
    assert predict.main(_args(model, data, out)) == 2
    assert "this command did not write it" in one_line_error(capsys)
    fresh = tmp_path / "fresh.csv"
    Path(f"{fresh}.ensemble.json").write_text("a note of the user\n")  # the sidecar's name taken by a foreign file
    assert predict.main(_args(model, data, fresh)) == 2
    assert f"out={fresh}.ensemble.json: the file exists and this command did not write it (not a prediction record)" in one_line_error(capsys)
    assert Path(f"{fresh}.ensemble.json").read_text() == "a note of the user\n" and not fresh.exists()


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("nope", "device must be cpu, cuda or cuda:N, got 'nope'"),
        ("mps", "device must be cpu, cuda or cuda:N, got 'mps'"),
        pytest.param("cuda", "device=cuda: torch sees no CUDA device here; use device=cpu",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")),
        pytest.param("cuda:7", "device=cuda:7: torch sees no CUDA device here",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")),
    ],
)
def test_predict_device_is_checked_when_parsed(device: str, expected: str, model: Path, tiny_data: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], no_model: None) -> None:
    assert predict.main(_args(model, tiny_data, tmp_path / "sub.csv", f"device={device}")) == 2
    assert expected in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_lb_plot_replaces_only_its_own_picture(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = copy_study(tiny_study, tmp_path)
    row = {"ensemble_id": "abc123", "submission": str(tmp_path / "s.csv"), "submission_sha256": "0" * 64, "public": 0.8, "private": None,
           "oof_score": 0.7, "nested_score": None, "models": "folds", "recorded": "2026-01-01T00:00:00"}
    (study / "leaderboard.json").write_text(json.dumps([row]))
    plot = tmp_path / "cv_vs_lb.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n a picture of the user")
    assert lb.main([f"study={study}", f"plot={plot}"]) == 2
    assert f"plot={plot}: the file exists and this command did not write it (no ensembling.lb mark in it" in one_line_error(capsys)
    assert plot.read_bytes() == b"\x89PNG\r\n\x1a\n a picture of the user"
    assert lb.main([f"study={study}", f"plot={plot}", "overwrite=true"]) == 0
    assert lb.main([f"study={study}", f"plot={plot}"]) == 0  # ours now: its PNG mark
    capsys.readouterr()
    assert lb.main([f"study={study}", "overwrite=true"]) == 2
    assert "overwrite= goes with plot=PNG" in one_line_error(capsys)
    for bad, expected in ((study / "folds.csv", "is inside the study folder"), (tmp_path, "is a folder"), ("", "plot= is empty")):
        before = (study / "folds.csv").read_bytes()
        assert lb.main([f"study={study}", f"plot={bad}", "overwrite=true"]) == 2
        assert expected in one_line_error(capsys)
        assert (study / "folds.csv").read_bytes() == before


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (a mount namespace) to make a read-only study, for root too")
@pytest.mark.parametrize(("command", "writes"), [("ensembling.select", "ensemble.json"), ("ensembling.refit", "refit/"),
                                               ("ensembling.lb submission=sub.csv public=0.9", "leaderboard.json")])
def test_select_refit_and_lb_on_a_read_only_study_stop_before_any_work(command: str, writes: str, tiny_study: Path, tmp_path: Path) -> None:
    """A read-only bind mount (root's permission bits would say yes): one line at once, not after the work."""
    study = copy_study(tiny_study, tmp_path)
    before = sorted((str(p), p.stat().st_mtime_ns) for p in study.rglob("*"))
    script = f'mount --bind -o ro "{study}" "{study}" && exec "{sys.executable}" -m {command} study="{study}"'
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: study={study}: cannot write in "), lines
    assert "read-only file system" in lines[0] and writes in lines[0]
    assert sorted((str(p), p.stat().st_mtime_ns) for p in study.rglob("*")) == before
