"""The thin edge between a trial and Ray Tune: reports, checkpoints and the trial's id.

Everything else in ``trainables`` runs without Ray; this module is the one place that imports it.
A trial that Tune starts again (a retry after its worker died, or a resumed search) goes on from its
newest whole checkpoint; one whose folder is already complete (it finished after Tune last saved its
state) is not trained again: its recorded metrics are reported as they are.

Why "newest whole" and not simply Tune's: a search interrupted while a trial reports leaves that
report's checkpoint in the trial's folder (``checkpoint_<n>``) without Tune having recorded it, so a
restored Tune hands back the one before. Each checkpoint carries ``files.json`` (every file and its
size, written before Tune copies the folder), so a copy cut short is told from a whole one.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

import ray
from pyarrow.fs import FileSelector, FileType, LocalFileSystem
from ray import tune

from core.contract import DamagedFile, StudyFolder
from trainables.fit import run_trial

MANIFEST = "files.json"  # in a checkpoint: relative path -> size of every other file
CHECKPOINT_PREFIX = "checkpoint_"  # Tune's checkpoint folders in a trial's folder: checkpoint_000003


def _finished_metrics(study_dir: str, trial_id: str) -> dict[str, Any] | None:
    folder = StudyFolder(Path(study_dir)).trial(trial_id)
    if not folder.complete:
        return None
    try:
        return folder.read_metrics()
    except (DamagedFile, FileNotFoundError):  # train it again rather than report what cannot be read
        return None


def write_manifest(folder: Path) -> None:
    """List every file of a checkpoint folder with its size, in ``files.json`` inside it."""
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps(sizes))


def newest_checkpoint(fs: Any, trial_dir: str, after: str = "") -> tune.Checkpoint | None:
    """The newest whole checkpoint in a trial's folder whose name sorts after ``after``, or None."""
    files = {}
    for info in fs.get_file_info(FileSelector(trial_dir, recursive=True, allow_not_found=True)):
        if info.type == FileType.File:
            files[posixpath.relpath(info.path, trial_dir)] = info.size
    folders = {f.split("/", 1)[0] for f in files if f.startswith(CHECKPOINT_PREFIX) and "/" in f}
    for candidate in sorted((f for f in folders if f > after), reverse=True):
        inside = {f.split("/", 1)[1]: size for f, size in files.items() if f.startswith(f"{candidate}/")}
        if _whole(fs, posixpath.join(trial_dir, candidate), inside):
            return tune.Checkpoint(path=posixpath.join(trial_dir, candidate), filesystem=fs)
    return None


def _resume_point(context: Any) -> tune.Checkpoint | None:
    """Tune's checkpoint of the trial, or a newer whole one beside it (see the module's docstring)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        trial_dir, name = posixpath.split(checkpoint.path.rstrip("/"))
        newer = newest_checkpoint(checkpoint.filesystem, trial_dir, name)
    else:  # none recorded: one written as the search stopped?
        newer = newest_checkpoint(LocalFileSystem(), context.get_trial_dir())
    if newer is not None:
        print(f"Trial {context.get_trial_id()} goes on from {posixpath.basename(newer.path)}, written as the search stopped (Tune had recorded {checkpoint and posixpath.basename(checkpoint.path)})")
    return newer or checkpoint


def _whole(fs: Any, folder: str, sizes: dict[str, int]) -> bool:
    if MANIFEST not in sizes:
        return False
    try:
        with fs.open_input_stream(posixpath.join(folder, MANIFEST)) as stream:
            listed = json.loads(stream.read())
    except (OSError, ValueError):
        return False
    return isinstance(listed, dict) and all(sizes.get(f) == s for f, s in listed.items())


def tune_trainable(config: dict[str, Any], study_dir: str) -> None:
    """A Ray Tune function trainable: ``tune.with_parameters(tune_trainable, study_dir=...)``."""
    context = tune.get_context()
    trial_id = context.get_trial_id()
    node_id = ray.get_runtime_context().get_node_id()  # Tune adds node_ip; the id names the node in MLflow
    finished = _finished_metrics(study_dir, trial_id)
    if finished is not None:
        tune.report({**finished, "node_id": node_id})
        return

    def report(metrics: dict[str, Any], checkpoint: Path) -> None:
        write_manifest(checkpoint)
        tune.report({**metrics, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))

    checkpoint = _resume_point(context)
    if checkpoint is None:
        run_trial(config, study_dir, trial_id=trial_id, report=report)
        return
    with checkpoint.as_directory() as folder:
        run_trial(config, study_dir, trial_id=trial_id, report=report, resume_from=Path(folder))
