"""Where a command may write a file the user named (a submission, a picture): never over what it did not write.

A file target may be (a) a new path; (b) a file this command wrote before, recognised by its own mark
(predict: the sidecar ``<out>.ensemble.json`` holding the file's checksum; a picture: a PNG text chunk,
``core.png_mark``); (c) any other plain file only with ``overwrite=true``. Never, even with
``overwrite=true``: an input of the run (the sample, the images folder, the data, the export) or
anything inside one, anything inside a study folder or an export folder, a folder, a symbolic link, or a
place whose folder is a file or cannot be written. Every check runs before any work; each refusal is one
line naming the key, the path and the fix, and the file is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from core.contract import EXPORT_MARKER, FOLDS_CSV, STUDY_YAML


def within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_file_target(
    value: str | os.PathLike[str],
    key: str,
    inputs: Mapping[str, str | os.PathLike[str] | None],
    ours: Callable[[Path], bool],
    mark: str,
    overwrite: bool = False,
    example: str = "submission.csv",
) -> Path:
    """The path to write, once it is known to be new, ours, or (``overwrite``) a plain file that is no input.

    ``inputs`` maps what each input is ("sample", "images folder") to its path; ``ours`` tells a file
    this command wrote before, and ``mark`` says in words what it looks for."""
    if not str(value).strip():
        raise ValueError(f"{key}= is empty; name a new file, e.g. {key}={example}")
    path = Path(value).expanduser()
    if path.is_symlink():
        raise ValueError(f"{key}={path}: is a symbolic link (to {os.readlink(path)}); name a new file, e.g. {key}={example}")
    if path.is_dir():
        raise ValueError(f"{key}={path}: is a folder; name a file, e.g. {key}={path / example}")
    real = path.parent.resolve() / path.name
    _refuse_inputs(path, real, key, inputs, example)
    _refuse_inside_ours(path, real, key, example)
    if path.exists():
        if not path.is_file():
            raise ValueError(f"{key}={path}: is not a plain file; name a new file, e.g. {key}={example}")
        if not ours(path) and not overwrite:
            raise ValueError(
                f"{key}={path}: the file exists and this command did not write it ({mark}); "
                f"name a new file, or pass overwrite=true to replace it"
            )
    check_parent(path, key)
    return path


def _refuse_inputs(path: Path, real: Path, key: str, inputs: Mapping[str, str | os.PathLike[str] | None], example: str) -> None:
    for what, given in inputs.items():
        if given is None or not str(given).strip():
            continue
        source = Path(given).expanduser()
        resolved = source.resolve()
        if real == resolved or _same_file(path, source):
            raise ValueError(
                f"{key}={path}: is the {what} {source}, an input of this run; name another file, e.g. {key}={example} "
                "(overwrite=true never replaces an input)"
            )
        if (source.is_dir() or not source.exists()) and within(real, resolved):  # a folder, or one still to be made
            raise ValueError(f"{key}={path}: is inside the {what} {source}, an input of this run; write it outside, e.g. {key}={example}")


def _same_file(a: Path, b: Path) -> bool:
    """True for two names of one file (a hard link)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_inside_ours(path: Path, real: Path, key: str, example: str) -> None:
    """A study folder (study.yaml and folds.csv) or an export (its marker) holds no file a user names."""
    for folder in real.parents:
        if (folder / STUDY_YAML).is_file() and (folder / FOLDS_CSV).is_file():
            raise ValueError(f"{key}={path}: is inside the study folder {folder}; write it outside, e.g. {key}={example}")
        if (folder / EXPORT_MARKER).is_file():
            raise ValueError(f"{key}={path}: is inside the export folder {folder}; write it outside, e.g. {key}={example}")


def check_parent(out: Path, key: str) -> None:
    """The nearest folder that exists above ``out`` is a folder we can write in (tried with a file made and removed)."""
    existing = next(p for p in out.absolute().parents if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{key}={out}: {existing} is a file, not a folder; choose another place")
    reason = unwritable(existing)
    if reason:
        raise ValueError(f"{key}={out}: cannot write in {existing} ({reason}); choose a place you may write")


def unwritable(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (None when a file can be made there). A real try, so a
    read-only mount is found for root too, where permission bits say yes."""
    try:
        handle, name = tempfile.mkstemp(prefix=".kvs-probe-", dir=folder)
    except OSError as error:
        return (error.strerror or str(error)).lower()
    os.close(handle)
    os.unlink(name)
    return None


def check_writable_folder(folder: Path, key: str, what: str, given: Path | None = None) -> None:
    """A command that will write into ``folder`` says so before any work, not at the end (a missing folder passes).

    ``given``: the value of ``key`` on the command line, when ``folder`` is a folder inside it."""
    target = Path(folder).expanduser()
    if not target.is_dir():
        return  # a missing folder is named by the command's own check
    reason = unwritable(target)
    if reason:
        raise ValueError(f"{key}={given or folder}: cannot write in {target} ({reason}), where this command writes {what}; "
                         "fix its permissions, or copy the study to a place you may write")
