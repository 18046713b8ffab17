"""The thin edge between a trial and Ray Tune: reports, checkpoints and the trial's id.

Everything else in ``trainables`` runs without Ray; this module is the one place that imports it.
A trial that Tune starts again (a retry after its worker died, or a resumed search) goes on from its
last checkpoint; one whose folder is already complete (it finished after Tune last saved its state)
is not trained again: its recorded metrics are reported as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainables.contract import DamagedFile, StudyFolder
from trainables.fit import run_trial


def _finished_metrics(study_dir: str, trial_id: str) -> dict[str, Any] | None:
    folder = StudyFolder(Path(study_dir)).trial(trial_id)
    if not folder.complete:
        return None
    try:
        return folder.read_metrics()
    except (DamagedFile, FileNotFoundError):  # train it again rather than report what cannot be read
        return None


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
        tune.report({**metrics, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run_trial(config, study_dir, trial_id=trial_id, report=report)
        return
    with checkpoint.as_directory() as folder:
        run_trial(config, study_dir, trial_id=trial_id, report=report, resume_from=Path(folder))
