"""Export: nothing is deleted that we did not write; damaged weights are named; the folder is kernel-ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ensembling_helpers import copy_study, one_line_error

from ensembling import export


@pytest.fixture(scope="module")
def exported(tiny_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "export"
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    return out


def test_export_holds_manifest_weights_code_runner_readme_and_marker(exported: Path) -> None:
    manifest = json.loads((exported / "ensemble.json").read_text())
    marker = json.loads((exported / "kvs-export.json").read_text())
    assert marker["ensemble_id"] == manifest["ensemble_id"] and manifest["models"] == "folds"
    for member in manifest["members"]:
        assert len(member["checkpoints"]) == 2
        for checkpoint in member["checkpoints"]:
            assert (exported / checkpoint).is_file()
    for module in ("ensembling/predict.py", "ensembling/runtime/predictor.py", "ensembling/runtime/pyfunc.py", "core/tta.py", "core/data/rle.py"):
        assert (exported / "code" / module).is_file(), module
    assert not (exported / "code" / "search").exists() and not (exported / "code" / "ensembling" / "select.py").exists()
    assert "predict.py" in (exported / "README.md").read_text()
    assert (exported / "predict.py").is_file()


def test_a_second_export_replaces_the_first_whole(tiny_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    (out / "stale.txt").write_text("from the first export")
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    assert not (out / "stale.txt").exists() and (out / "kvs-export.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging or old folder left


def test_export_refuses_a_folder_that_is_not_ours(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    assert export.main([f"study={tiny_study}", f"out={mine}"]) == 2
    assert "is not an export of ours" in one_line_error(capsys)
    assert (mine / "notes.txt").read_text() == "precious" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("study", "is the study folder"),
        ("study/trials", "is inside the study folder"),
        ("study/new", "is inside the study folder"),
        ("parent", "holds the study folder"),
        ("file", "is a file, not a folder"),
        ("cwd", "is the current folder"),
    ],
)
def test_export_refuses_the_study_its_parents_a_file_and_the_current_folder(
    where: str, expected: str, tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = copy_study(tiny_study, tmp_path)
    before = sorted(str(p) for p in study.rglob("*"))
    (tmp_path / "file").write_text("a file of the user")
    here = tmp_path / "here"
    here.mkdir()
    (here / "kvs-export.json").write_text("{}")  # even a current folder that looks like an export of ours
    monkeypatch.chdir(here)
    out = {"study": study, "study/trials": study / "trials", "study/new": study / "new", "parent": tmp_path, "file": tmp_path / "file", "cwd": Path(".")}[where]
    assert export.main([f"study={study}", f"out={out}"]) == 2
    assert expected in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "a file of the user"
    assert set(before) <= {str(p) for p in study.rglob("*")}


def test_export_names_truncated_and_missing_weights(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = copy_study(tiny_study, tmp_path)
    member = json.loads((study / "ensemble.json").read_text())["members"][0]
    weights = study / member["checkpoints"][1]
    weights.write_bytes(weights.read_bytes()[:1000])
    assert export.main([f"study={study}", f"out={tmp_path / 'out'}"]) == 2
    assert f"{weights}: " in one_line_error(capsys)
    weights.unlink()
    assert export.main([f"study={study}", f"out={tmp_path / 'out'}"]) == 2
    assert f"{weights}: weights of member" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_refit_without_a_refit_says_what_to_run(tiny_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main([f"study={tiny_study}", f"out={tmp_path / 'out'}", "models=refit"]) == 2
    assert "ensembling.refit" in one_line_error(capsys)
    assert export.main([f"study={tiny_study}", f"out={tmp_path / 'out'}", "models=best"]) == 2
    assert "models must be one of folds, refit, got 'best'" in one_line_error(capsys)


def test_export_into_an_unwritable_place_is_one_line(tiny_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main([f"study={tiny_study}", "out=/proc/kvs-export"]) == 2  # not writable, even for root
    assert "/proc" in one_line_error(capsys)


def test_export_deletes_nothing_but_its_own_staging_and_an_export_of_ours(tiny_study: Path, tmp_path: Path) -> None:
    import os

    out = tmp_path / "export"
    # files named as the old fixed staging and aside names were: a user's, they must survive
    for name in (f".export.tmp-{os.getpid()}", f".export.old-{os.getpid()}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("a user's file")
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    assert export.main([f"study={tiny_study}", f"out={out}"]) == 0
    for name in (f".export.tmp-{os.getpid()}", f".export.old-{os.getpid()}"):
        assert (tmp_path / name / "mine.txt").read_text() == "a user's file"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".export.")) == ["export"]


def test_a_folder_that_appears_at_out_while_exporting_is_not_replaced(tmp_path: Path) -> None:
    staging, out = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    out.mkdir()
    (out / "theirs.txt").write_text("made meanwhile")
    with pytest.raises(ValueError, match="appeared while exporting and is not an export of ours"):
        export._swap_into_place(staging, out)
    assert (out / "theirs.txt").read_text() == "made meanwhile" and staging.is_dir()
