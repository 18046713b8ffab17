"""What a search says before any work: a locked study, an unwritable storage, a resume with other
settings; and the pure rules behind them (new study names, loopback addresses, unrecorded trials)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search import run as search_run
from search.config import load_plan
from search.lock import StudyLock
from search.resume import begun, check_same_search, fresh_name, remove_unrecorded
from search.session import LOCAL_LOOPBACK, node_ip

TINY = ["space=quick", "study=s", "data.images=16", "folds=2", "trials=2", "train.epochs=1", "train.scale=0.125"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_a_study_searched_elsewhere_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    with StudyLock(tmp_path / "s" / "search.lock"):
        assert search_run.main([*TINY, f"storage={tmp_path}"]) == 2
    assert f"is being searched by pid {os.getpid()}" in one_line_error(capsys)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == []  # nothing written, lock gone


def test_storage_that_is_a_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("mine")
    assert search_run.main([*TINY, f"storage={tmp_path / 'file'}"]) == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "mine"


def test_storage_that_cannot_be_written_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert search_run.main([*TINY, "storage=/proc/kvs-studies"]) == 2  # /proc refuses even root
    assert "/proc/kvs-studies/s: cannot write the study folder there" in one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_storage_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path.chmod(0o555)
    try:
        assert search_run.main([*TINY, f"storage={tmp_path}"]) == 2
    finally:
        tmp_path.chmod(0o755)
    assert "cannot write the study folder there (Permission denied)" in one_line_error(capsys)


def test_resuming_with_other_settings_is_refused_and_resume_false_starts_a_new_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = load_plan([*TINY, f"storage={tmp_path}"])
    study = search_run.prepare(plan)
    (study / "tuner.pkl").write_bytes(b"")  # as a search that began and was killed leaves them
    (study / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    before = (study / "study.yaml").read_text()
    assert search_run.main([*TINY, f"storage={tmp_path}", "trials=3"]) == 2
    assert "this study was searched with trials=2, this command gives 3; run the same settings" in one_line_error(capsys)
    assert (study / "study.yaml").read_text() == before and not (study / "search.lock").exists()

    fresh = load_plan([*TINY, f"storage={tmp_path}", "trials=3", "resume=false"])
    assert search_run.choose_study(fresh) == tmp_path / "s-2"
    assert "Study s exists and resume=false: this search is a new study, s-2" in capsys.readouterr().out


def test_a_search_killed_before_tune_saved_a_state_starts_again(tmp_path: Path) -> None:
    (tmp_path / "tuner.pkl").write_bytes(b"")
    assert not begun(tmp_path)
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    assert begun(tmp_path)


def test_check_same_search_names_a_nested_key() -> None:
    before = {"trials": 2, "trial": {"train.lr": 0.001}, "ray": {"address": None}}
    check_same_search(before, {**before, "ray": {"address": "head:6379"}}, Path("study.yaml"))  # where it runs may change
    with pytest.raises(ValueError, match=r"study.yaml: this study was searched with train.lr=0.001, this command gives 0.01"):
        check_same_search(before, {**before, "trial": {"train.lr": 0.01}}, Path("study.yaml"))


def test_fresh_names_count_up(tmp_path: Path) -> None:
    assert fresh_name(tmp_path, "s") == "s-2"
    (tmp_path / "s").mkdir()
    (tmp_path / "s-2").mkdir()
    assert fresh_name(tmp_path, "s") == "s-3"
    assert fresh_name(tmp_path, "s-2") == "s-3"
    assert fresh_name(tmp_path, "run-2024") == "run-2024-2"  # no study "run": 2024 is part of the name


def test_local_searches_stay_on_loopback() -> None:
    assert node_ip(None, None) == LOCAL_LOOPBACK == "127.0.0.1"  # every port on loopback: search/local_ray.py
    assert node_ip("head:6379", None) is None  # a cluster decides its addresses
    assert node_ip(None, "127.0.0.3") == "127.0.0.3"
    with pytest.raises(ValueError, match=r"ray\.node_ip must be an IP address such as 127\.0\.0\.1, got 'localhost'"):
        node_ip(None, "localhost")


def test_only_unrecorded_half_done_trials_of_this_study_are_removed(tmp_path: Path) -> None:
    trials = tmp_path / "trials"
    for name in ("done", "known", "orphan", "by_hand"):
        (trials / name).mkdir(parents=True)
    (trials / "done" / "metrics.json").write_text("{}")
    for name in ("done", "known", "orphan"):
        (tmp_path / f"ray-{name}").mkdir()
    said: list[str] = []
    assert remove_unrecorded(tmp_path, ["known"], say=said.append) == ["orphan"]
    assert sorted(p.name for p in trials.iterdir()) == ["by_hand", "done", "known"]
    assert not (tmp_path / "ray-orphan").exists() and "orphan" in said[0]
