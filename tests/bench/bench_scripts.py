"""Load a bench script (not a package module) by its path, with its folder first on sys.path for its siblings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(relative: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    script = ROOT / relative
    monkeypatch.setattr(sys, "path", [str(script.parent), *sys.path])  # siblings import beside it
    spec = importlib.util.spec_from_file_location(f"bench_test_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
