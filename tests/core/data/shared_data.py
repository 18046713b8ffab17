"""Where the real public data lives: ``../shared/data`` beside the checkout, or above it (a worktree).

Tests call :func:`shared` and skip with the path they looked at when a folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def shared_root() -> Path:
    """``$SHARED_DATA`` if set, else the first ``shared/data`` in the repo's parent folders."""
    if os.environ.get("SHARED_DATA"):
        return Path(os.environ["SHARED_DATA"])
    for folder in REPO.parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path under the shared data, or a skip naming where it was looked for."""
    path = shared_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SHARED_DATA to the shared/data folder)")
    return path
