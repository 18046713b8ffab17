"""What the kind of an ensemble changes at prediction time, behind one interface: masks or image labels.

The ensembling side of ``trainables/tasks``: a manifest's ``kind`` picks the task, whose ``predict``
writes the submission in the sample's layout (and its sidecar) and whose ``load`` gives the predictor
(``masks``/``probabilities`` of RGB images) that the MLflow model wraps. ``RUNTIME_TASKS`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.registry import Registry
from ensembling.runtime.class_predictor import load_class_predictor
from ensembling.runtime.manifest import CLASSIFICATION, SEGMENTATION, Manifest
from ensembling.runtime.predict_classes import predict_classes
from ensembling.runtime.predict_masks import predict_masks
from ensembling.runtime.predictor import Predictor

# (manifest, export folder, images, sample, out, batch size, device, workers) -> the sidecar's record
Predict = Callable[[Manifest, Path, Path, Path, Path, int, "str | None", int], dict[str, Any]]


@dataclass(frozen=True)
class RuntimeTask:
    name: str
    predict: Predict
    load: Callable[[Path, Manifest, str | None], Any]
    outputs: Callable[[Any, list[np.ndarray]], np.ndarray]  # the served model's answer for RGB images


RUNTIME_TASKS: Registry[RuntimeTask] = Registry("ensemble kind")
RUNTIME_TASKS.register(SEGMENTATION)(RuntimeTask(
    "masks", predict_masks, lambda folder, manifest, device: Predictor(folder, device, manifest),
    lambda predictor, images: np.stack(list(predictor.masks(images))).astype(np.uint8),
))
RUNTIME_TASKS.register(CLASSIFICATION)(RuntimeTask(
    "labels", predict_classes, load_class_predictor,
    lambda predictor, images: predictor.probabilities(images).astype(np.float32),
))


def runtime_task(manifest: Manifest) -> RuntimeTask:
    return RUNTIME_TASKS.get(manifest.kind)
