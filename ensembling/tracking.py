"""MLflow plumbing shared by the search and the selector: the store, the study's experiment, runs.

With no URI given, runs go to ``sqlite:///<cwd>/mlflow.db``, the store a plain ``mlflow ui`` opens
from the same folder, with artifacts in ``./mlruns``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

if TYPE_CHECKING:
    from trainables.data.study import Study


def resolve_uri(uri: str | None) -> str:
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def ui_command(uri: str) -> str:
    """The command that opens this store in a browser."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    if uri == f"sqlite:///{Path.cwd() / 'mlflow.db'}":
        return "mlflow ui  (then open http://127.0.0.1:5000)"
    return f"mlflow ui --backend-store-uri {uri}  (then open http://127.0.0.1:5000)"


def use_experiment(uri: str, experiment: str) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a file: URI keeps working if a user gives one
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    # the MLflow 3 UI opens an experiment of this kind on its runs table, not on the GenAI traces overview
    mlflow.MlflowClient().set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
    return experiment_id


def clean_params(params: dict[str, Any]) -> dict[str, str]:
    """MLflow params are strings of at most 6000 characters; None is shown as 'null'."""
    return {k: ("null" if v is None else str(v))[:6000] for k, v in params.items()}


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def parent_run_id(study: Study) -> str | None:
    """The study's search run (tags kind=search and study=this folder), newest first."""
    runs = mlflow.search_runs(filter_string="tags.kind = 'search'", order_by=["start_time DESC"], output_format="list")
    for run in runs:
        tag = run.data.tags.get("study")
        if tag and Path(tag).resolve() == study.root.resolve():
            return run.info.run_id
    return None
