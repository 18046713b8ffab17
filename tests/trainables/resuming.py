"""A trial run unbroken and again resumed from its epoch-1 checkpoint: what each reported, for comparison."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trainables.fit import run_trial


def unbroken_and_resumed(config: dict[str, Any], study_dir: Path, saved: Path, name: str = "") -> tuple[list[dict], list[dict]]:
    """Trials ``<name>unbroken`` and ``<name>resumed`` (from ``unbroken``'s epoch-1 checkpoint, copied to ``saved``):
    each one's reports in order."""
    unbroken: list[dict] = []

    def keep(metrics: dict, checkpoint: Path) -> None:
        unbroken.append(dict(metrics))
        if metrics["epoch"] == 1:
            shutil.copytree(checkpoint, saved)

    run_trial(config, study_dir, trial_id=f"{name}unbroken", report=keep)
    resumed: list[dict] = []
    run_trial(config, study_dir, trial_id=f"{name}resumed", report=lambda m, _: resumed.append(dict(m)), resume_from=saved)
    return unbroken, resumed
