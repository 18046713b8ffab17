"""Where a command may write a folder: nothing is deleted or overwritten that we did not write.

A folder target (an export) may replace only an earlier folder of ours, recognised by its marker file;
never the study, anything inside it or around it, the current folder or its parents, the home folder,
or a file. (A file target, a submission or a plot: ``core.targets``.) Every check runs before any
work, and each refusal is one line.
"""

from __future__ import annotations

from pathlib import Path

from core.targets import check_parent


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
    check_parent(out, key)
