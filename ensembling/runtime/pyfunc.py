"""The exported ensemble as an MLflow model: a ``pyfunc`` wrapping the offline predictor.

``log_export`` logs an export folder (as the model's artifact, with the predictor's code from the
folder's ``code/``) into the study's experiment, registers it under the user's name and points the
alias ``champion`` at the new version. Input: float32 RGB images (N, 3, H, W) in 0..255, any H and W
(the signature leaves both free); output: uint8 0/1 masks (N, C, H, W), the same masks as
``ensembling.runtime.predictor.Predictor``; a classification export gives float32 probabilities (N, K), calibrated
as selected (``ensembling.runtime.class_predictor``). Loaded with ``mlflow.pyfunc.load_model("models:/NAME@champion")``
or served by ``mlflow models predict -m models:/NAME@champion --env-manager local``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import Schema, TensorSpec

ALIAS = "champion"
# What the model needs where it is served: the kernel's packages, pinned to the versions that exported it.
REQUIREMENTS = ("torch", "timm", "segmentation-models-pytorch", "numpy", "opencv-python-headless", "pandas", "pyyaml", "safetensors", "tqdm")


class EnsembleModel(PythonModel):
    """An export folder behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        from core.contract import ENSEMBLE_JSON
        from ensembling.runtime.manifest import read_manifest
        from ensembling.runtime.tasks import runtime_task

        folder = Path(context.artifacts["export"])
        manifest = read_manifest(folder / ENSEMBLE_JSON)
        self.task = runtime_task(manifest)  # masks or image labels
        self.predictor = self.task.load(folder, manifest, None)

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        batch = np.asarray(model_input, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected float32 RGB images (N, 3, H, W), got shape {batch.shape}")
        images = [np.clip(np.rint(image.transpose(1, 2, 0)), 0, 255).astype(np.uint8) for image in batch]
        return self.task.outputs(self.predictor, images)


def signature(num_classes: int, labels: bool = False) -> ModelSignature:
    """Free batch, height and width; 3 colour channels in, one mask per class out (or one probability per class)."""
    if labels:
        return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
                              outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes))]))
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, num_classes, -1, -1))]),
    )


def _pinned() -> list[str]:
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def log_export(study_dir: Path, export_dir: Path, name: str) -> str:
    """Log the export folder as a pyfunc model in the study's experiment, register it as ``name``
    with alias ``champion``; returns the new version."""
    from core.contract import ENSEMBLE_JSON, EXPORT_CODE, StudyFolder
    from core.tracking import resolve_uri, use_experiment
    from ensembling.runtime.manifest import read_manifest

    manifest = read_manifest(export_dir / ENSEMBLE_JSON)
    tracking = StudyFolder(study_dir).read_config().get("mlflow") or {}
    use_experiment(resolve_uri(tracking.get("uri")), tracking.get("experiment") or study_dir.name)
    code = export_dir / EXPORT_CODE
    with mlflow.start_run(run_name=f"export {manifest.ensemble_id}"):
        mlflow.set_tags({"study": str(study_dir), "kind": "export", "ensemble_id": manifest.ensemble_id, "models": manifest.models})
        mlflow.log_metric("oof_score", manifest.oof_score)
        info = mlflow.pyfunc.log_model(
            name="ensemble",
            python_model=EnsembleModel(),
            artifacts={"export": str(export_dir)},
            code_paths=[str(p) for p in sorted(code.iterdir()) if p.is_dir()],
            signature=signature(manifest.num_classes, labels=manifest.is_classification),
            pip_requirements=_pinned(),
            registered_model_name=name,
        )
    registered = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, ALIAS, registered)
    return registered
