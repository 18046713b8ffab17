"""Writes that never leave a half-written file: write to a temp name beside the target, then rename.

Readers of the study (selection, export) treat a trial folder as complete only when its last file
exists, so every file that crosses a boundary goes through here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it onto ``path``, on error remove it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    _write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | os.PathLike, data: Any) -> None:
    _write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_path)`` and move the result onto ``path`` only if it succeeded."""
    with atomic_path(path) as tmp:
        writer(tmp)


def probe_writable(path: Path) -> Path:
    """Write and remove an empty probe file in ``path``, or in its nearest folder that exists (where the
    missing ones would be made); returns that folder, raises OSError. Permissions alone do not say it:
    root passes them all, but not a read-only mount."""
    path = Path(path).expanduser().absolute()
    folder = next(p for p in (path, *path.parents) if p.exists())
    if not folder.is_dir():
        raise NotADirectoryError(20, "not a folder", str(folder))
    probe = folder / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
    return folder
