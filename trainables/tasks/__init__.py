"""What a trial's output kind changes, behind one interface: masks (smp) or image labels (timm).

A task is bound to its study and answers the questions the one training loop (``trainables/epochs.py``)
asks: which cache and dataset feed the folds, the loss, how a batch is prepared, how a fold's
validation images are predicted and scored, how the OOF is written, and the trial's picture. The
model family's output (``core.models.output_kind``) picks the task; ``TASKS`` lists them.
"""

from __future__ import annotations

from core.models import output_kind
from core.registry import Registry
from trainables.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task")


def task_for(model_config: object, study: object) -> Task:
    """The task of a model family's output (``masks`` or ``labels``), bound to ``study``; checks they fit."""
    _register()
    task = TASKS.get(output_kind(model_config))(study)
    task.check()
    return task


def _register() -> None:
    if TASKS.names():
        return
    from trainables.tasks.labels import LabelTask
    from trainables.tasks.masks import MaskTask

    TASKS.register("masks")(MaskTask)
    TASKS.register("labels")(LabelTask)


__all__ = ["TASKS", "Task", "task_for"]
