"""The table of where trials run, its summary, and the experiment kind the MLflow UI opens on."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from core.tracking import use_experiment
from search.progress import WhereTable


@dataclass(frozen=True)
class FakeTrial:  # what Tune hands a callback: an id and a name
    trial_id: str

    def __str__(self) -> str:
        return f"{self.trial_id} Unet/resnet18"


def test_the_table_follows_each_trial_to_its_nodes_and_sums_up_per_stage() -> None:
    out = io.StringIO()
    where = WhereTable(kinds={"127.0.0.2": "proto", "127.0.0.3": "heavy", "127.0.0.4": "heavy"}, out=out, every=3600)
    a, b, c = FakeTrial("a"), FakeTrial("b"), FakeTrial("c")
    where.begin_stage("screen")
    for trial in (a, b):
        where.on_trial_start(0, [], trial)
        where.on_trial_result(0, [], trial, {"epoch": 1, "score": 0.5, "node_ip": "127.0.0.2"})
    where.on_trial_result(0, [], a, {"epoch": 2, "score": 0.7, "oof_score": 0.7, "node_ip": "127.0.0.2"})
    where.on_trial_complete(0, [], a)
    where.on_trial_complete(0, [], b)  # stopped by ASHA: no final report
    where.begin_stage("full")
    where.on_trial_start(0, [], c)
    where.on_trial_result(0, [], c, {"epoch": 1, "score": 0.6, "node_ip": "127.0.0.3", "node_id": "n3"})
    where.on_trial_recover(0, [], c)
    where.on_trial_result(0, [], c, {"epoch": 2, "score": 0.8, "oof_score": 0.8, "node_ip": "127.0.0.4", "node_id": "n4"})
    where.on_trial_complete(0, [], c)

    assert where.trials["c"].nodes == ["127.0.0.3", "127.0.0.4"] and where.trials["c"].node_ids == ["n3", "n4"]
    assert [where.trials[t].status for t in "abc"] == ["DONE", "STOPPED", "DONE"]
    assert where.summary().splitlines() == [
        "screen: 127.0.0.2 (proto): 1 done (a), 1 stopped (b)",
        "full: 127.0.0.3 (heavy): 1 done (c)",
        "full: 127.0.0.4 (heavy): 1 done (c)",
        "full: 127.0.0.3 -> 127.0.0.4: 1 moved (c)",
    ]
    printed = out.getvalue()
    assert "RETRY" in printed and "127.0.0.3 (heavy) -> 127.0.0.4 (heavy)" in printed
    # Tune pickles its callbacks with the experiment state
    assert pickle.loads(pickle.dumps(WhereTable())).trials == {}


@dataclass
class FakeResult:  # what a ResultGrid yields: the trial's folder, last metrics, error, every report
    path: str
    metrics: dict
    error: Exception | None = None
    metrics_dataframe: pd.DataFrame | None = None


def test_the_summary_takes_every_trial_of_the_grid_those_of_earlier_runs_too() -> None:
    where = WhereTable(kinds={"127.0.0.1": "heavy"}, out=io.StringIO())
    where.on_trial_start(0, [], FakeTrial("now"))  # the only trial this run's callbacks saw
    rows = pd.DataFrame({"epoch": [1, 2], "node_ip": ["127.0.0.1", "127.0.0.1"]})
    grid = [
        FakeResult("/s/ray-before", {"epoch": 2}, metrics_dataframe=rows),
        FakeResult("/s/ray-now", {"epoch": 1}, metrics_dataframe=rows.head(1)),
        FakeResult("/s/ray-pruned", {"epoch": 1}, metrics_dataframe=rows.head(1)),
        FakeResult("/s/ray-broken", {}, error=RuntimeError("x")),
    ]
    where.absorb("full", grid, done={"before"}, statuses={"now": "RUNNING", "pruned": "TERMINATED", "before": "TERMINATED"})
    assert [where.trials[t].status for t in ("before", "now", "pruned", "broken")] == ["DONE", "UNFINISHED", "STOPPED", "ERROR"]
    assert where.summary().splitlines() == [
        "full: 127.0.0.1 (heavy): 1 done (before), 1 stopped (pruned), 1 unfinished (now)",
        "full: (no result): 1 error (broken)",
    ]


def test_the_experiment_opens_on_its_runs_table(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = use_experiment(uri, "study")
    tags = mlflow.MlflowClient(tracking_uri=uri).get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_runs_link_asks_the_ui_for_model_training(tmp_path: Path) -> None:
    from search.cluster import runs_link

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = use_experiment(uri, "study")
    assert runs_link(uri, "study") == f"http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning"
