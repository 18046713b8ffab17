"""The thin edge between a trial and Ray Tune: reports, checkpoints and the trial's id.

Everything else in ``trainables`` runs without Ray; this module is the one place that imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainables.fit import run_trial


def tune_trainable(config: dict[str, Any], study_dir: str) -> None:
    """A Ray Tune function trainable: ``tune.with_parameters(tune_trainable, study_dir=...)``."""
    context = tune.get_context()
    node_id = ray.get_runtime_context().get_node_id()  # Tune adds node_ip; the id names the node in MLflow

    def report(metrics: dict[str, Any], checkpoint: Path) -> None:
        tune.report({**metrics, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run_trial(config, study_dir, trial_id=context.get_trial_id(), report=report)
        return
    with checkpoint.as_directory() as folder:
        run_trial(config, study_dir, trial_id=context.get_trial_id(), report=report, resume_from=Path(folder))
