"""The table of where trials run, its summary, and the experiment kind the MLflow UI opens on."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import mlflow

from ensembling.tracking import use_experiment
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
        "screen: 127.0.0.2 (proto): 1 done, 1 stopped",
        "full: 127.0.0.3 (heavy): 1 done",
        "full: 127.0.0.4 (heavy): 1 done",
        "full: 127.0.0.3 -> 127.0.0.4: 1 moved",
    ]
    printed = out.getvalue()
    assert "RETRY" in printed and "127.0.0.3 (heavy) -> 127.0.0.4 (heavy)" in printed
    # Tune pickles its callbacks with the experiment state
    assert pickle.loads(pickle.dumps(WhereTable())).trials == {}


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
