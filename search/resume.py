"""Which study a search runs in, and whether it continues one: the same command after a crash goes on.

A study folder that holds Ray Tune's ``tuner.pkl`` and experiment state was searched before. With ``resume=true`` (the
default) the search continues it, but only with the settings it began with: a study mixing trials
of two different searches could not be compared or blended honestly, so a change is refused naming
the key. ``resume=false`` starts a fresh study beside it, ``<study>-2`` (then ``-3`` ...).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.atomic import probe_writable
from core.contract import StudyFolder

TUNER_PKL = "tuner.pkl"  # Ray Tune's own file: present once a search of the study has begun
EXPERIMENT_STATE = "experiment_state-*.json"  # Ray Tune's saved state of the search, rewritten every few seconds
RAY_TRIAL_PREFIX = "ray-"  # Tune's folder of a trial in the study: ray-<trial_id>/ (error.txt, checkpoints)

# The settings that define a search: resuming with another value would mix two searches in one study.
SAME_SEARCH_KEYS = ("trials", "seed", "folds", "oof_share", "oof_scale", "metric", "data", "scheduler", "trial", "search")


# Keys a study.yaml written before they existed lacks: read as their default, so such a study still resumes.
DEFAULTS_ADDED_LATER = {"data.task": "auto", "data.allow_empty": False, "oof_share": None}


def begun(study_dir: Path) -> bool:
    """Whether a search of this study has begun and saved a state to resume from.

    Tune writes ``tuner.pkl`` when the search is built and its experiment state at the first save: a
    driver killed between the two left nothing to restore, so that search simply starts again."""
    study_dir = Path(study_dir)
    return (study_dir / TUNER_PKL).is_file() and any(study_dir.glob(EXPERIMENT_STATE))


def fresh_name(storage: Path, study: str) -> str:
    """The first ``<study>-N`` (N >= 2) with no folder in the storage."""
    numbered = re.fullmatch(r"(.+)-\d+", study)  # quick-2 was made from quick: its successor is quick-3
    base = numbered.group(1) if numbered and (Path(storage) / numbered.group(1)).exists() else study
    n = 2
    while (Path(storage) / f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def check_same_search(before: dict[str, Any], now: dict[str, Any], where: Path) -> None:
    """Refuse to resume a study with settings other than the ones it began with, naming the first."""
    old = {**DEFAULTS_ADDED_LATER, **_flat({k: before.get(k) for k in SAME_SEARCH_KEYS})}
    new = {**DEFAULTS_ADDED_LATER, **_flat({k: now.get(k) for k in SAME_SEARCH_KEYS})}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            name = key.removeprefix("trial.")
            raise ValueError(
                f"{where}: this study was searched with {name}={old.get(key)!r}, this command gives {new.get(key)!r}; "
                f"run the same settings to resume it, or resume=false to start a new study beside it"
            )


def trial_id_of(path: str | Path) -> str:
    """A trial's id from its Tune folder ``<study>/ray-<trial_id>``."""
    return Path(path).name.removeprefix(RAY_TRIAL_PREFIX)


def remove_unrecorded(study_dir: Path, known: Iterable[str], say: Any = print) -> list[str]:
    """Remove the half-done folders of trials that a killed driver started but Tune never recorded.

    Tune saves its experiment state every few seconds; a trial begun after the last save is unknown
    to the restored search and would never finish. Only folders of this study's Tune trials (a
    ``ray-<id>`` folder beside them) that are incomplete are removed: a finished trial is never touched.
    """
    known = set(known)
    removed = []
    for trial in StudyFolder(Path(study_dir)).trial_folders():
        tune_dir = Path(study_dir) / f"{RAY_TRIAL_PREFIX}{trial.trial_id}"
        if trial.trial_id in known or trial.complete or not tune_dir.is_dir():
            continue
        shutil.rmtree(trial.root)
        shutil.rmtree(tune_dir, ignore_errors=True)
        removed.append(trial.trial_id)
        say(f"Removed the half-done trial {trial.trial_id}: the interrupted search had not recorded it, so it cannot go on")
    return removed


def check_study_place(study_dir: Path) -> None:
    """Say in one line why the study folder cannot be made or written there, before anything is read
    or written (a generated data set is written under the same storage)."""
    study_dir = Path(study_dir)
    for folder in (study_dir.parent, study_dir):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file, not a folder: name another place for the studies with storage=PATH")
    try:
        probe_writable(study_dir)
    except OSError as error:
        raise ValueError(
            f"{study_dir}: cannot write the study folder there ({error.strerror or error}); "
            "choose a writable place with storage=PATH"
        ) from None


def make_study_folder(study_dir: Path) -> None:
    """Create the study folder, or say in one line why it cannot be written, before any work."""
    study_dir = Path(study_dir)
    for folder in (study_dir.parent, study_dir):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file, not a folder: name another place for the studies with storage=PATH")
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        probe = study_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"{study_dir}: cannot write the study folder there ({error.strerror or error}); "
            "choose a writable place with storage=PATH"
        ) from None
