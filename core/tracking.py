"""MLflow plumbing shared by the search and the selector: the store, the study's experiment, runs.

With no URI given, runs go to ``sqlite:///<cwd>/mlflow.db``, the store a plain ``mlflow ui`` opens
from the same folder, with artifacts in ``./mlruns``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

from core.atomic import probe_writable

if TYPE_CHECKING:
    from core.data.study import Study


def resolve_uri(uri: str | None) -> str:
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def store_path(uri: str) -> Path | None:
    """The local file or folder an MLflow store URI writes to (sqlite:///PATH, file:PATH, a plain path); None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))  # sqlite:////abs/m.db is /abs/m.db; sqlite:///m.db is relative
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//"))
    return None if "://" in uri else Path(uri)


STORE_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


def check_store(uri: str, timeout: float = 5.0) -> None:
    """The MLflow store answers before a study or a run is made: a known kind of URI, a local one writable,
    a server one answering its health check (MLflow itself retries a dead server for minutes)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme and scheme not in STORE_SCHEMES:
        raise ValueError(f"mlflow.uri={uri}: unknown kind of store {scheme!r}; use sqlite:///PATH/mlflow.db, a folder, or http://HOST:PORT of a tracking server")
    if scheme in ("http", "https"):
        _check_server(uri, timeout)
    else:
        check_store_writable(uri)


def _check_server(uri: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):  # the user's own server
            pass
    except urllib.error.HTTPError:
        return  # it answers: a proxy or an older server without /health
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ValueError(f"mlflow.uri={uri}: no MLflow server answers there ({reason}); start it (mlflow server ...) or name another store") from None


def check_store_writable(uri: str) -> None:
    """Refuse a local store in a place this process cannot write, before a study or a run is made there
    (a probe file in the nearest folder that exists: MLflow makes the missing ones)."""
    path = store_path(uri)
    if path is None:
        return
    path = path.expanduser().absolute()
    target = path if path.exists() else next(p for p in path.parents if p.exists())
    try:
        if target.is_file():  # a store that exists: sqlite opens it to write
            with open(target, "ab"):
                pass
        else:
            probe_writable(target)
    except OSError as error:
        raise ValueError(
            f"mlflow.uri={uri}: cannot write the MLflow store at {target} ({error.strerror or error}); "
            "name a writable place with mlflow.uri=sqlite:///PATH/mlflow.db"
        ) from None


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
