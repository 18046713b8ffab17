"""Where a command may write: nothing is deleted or overwritten that we did not write.

A folder target (an export) may replace only an earlier folder of ours, recognised by its marker file;
never the study, anything inside it or around it, the current folder or its parents, the home folder,
or a file. A file target (a submission, a plot) must not be a folder, must not land inside a protected
folder, and its folder must exist. Every check runs before any work, and each refusal is one line.
"""

from __future__ import annotations

import os
from pathlib import Path


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_folder_target(out: Path, marker: str, protected: dict[str, Path], key: str = "out") -> None:
    """Refuse a folder target that is not ours to replace; ``protected`` names folders that must survive."""
    out = out.expanduser().resolve()
    for what, folder in protected.items():
        folder = folder.expanduser().resolve()
        if _within(out, folder):
            raise ValueError(f"{key}={out}: is {'the' if out == folder else 'inside the'} {what} {folder}; choose a folder outside it")
        if _within(folder, out):
            raise ValueError(f"{key}={out}: holds the {what} {folder}, which replacing it would delete; choose another folder")
    cwd = Path.cwd().resolve()
    if _within(cwd, out):
        raise ValueError(f"{key}={out}: is the current folder or one of its parents; name a new folder, e.g. {key}=export")
    if out == Path.home().resolve() or out == Path(out.anchor):
        raise ValueError(f"{key}={out}: is the home or root folder; name a new folder, e.g. {key}=export")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{key}={out}: is a file, not a folder; remove it or choose another name")
    if out.is_dir() and not (out / marker).is_file():
        raise ValueError(
            f"{key}={out}: the folder exists and is not an export of ours (no {marker}); "
            "we replace only our own exports: remove it yourself or choose a new name"
        )
    _check_parent(out, key)


def check_file_target(out: Path, protected: dict[str, Path], key: str = "out") -> None:
    """Refuse a file target that is a folder, sits inside a protected folder, or has no writable folder."""
    out = out.expanduser().resolve()
    for what, folder in protected.items():
        if _within(out, folder.expanduser().resolve()):
            raise ValueError(f"{key}={out}: is inside the {what} {folder}; write it somewhere else")
    if out.is_dir():
        raise ValueError(f"{key}={out}: is a folder; name a file, e.g. {key}={out / 'submission.csv'}")
    _check_parent(out, key)


def _check_parent(out: Path, key: str) -> None:
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{key}={out}: {parent} is a file, not a folder")
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{key}={out}: {existing} is not writable; choose a place you may write")
