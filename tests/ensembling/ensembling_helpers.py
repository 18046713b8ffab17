"""Shared helpers of the ensembling tests: a private copy of the tiny study, one-line error checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def copy_study(study: Path, tmp_path: Path) -> Path:
    """A copy of the session's tiny study that a test may damage or extend."""
    target = tmp_path / "study"
    shutil.copytree(study, target)
    return target


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if line.strip() and "img/s" not in line and "it/s" not in line]  # tqdm bars
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]
