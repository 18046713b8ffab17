"""Searching a classification data set: the plan's metric and model family follow the data's kind,
and (slow) ``python -m search.run data=classes space=classes_quick`` runs through real Ray and MLflow."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "data"))
from searching import Search
from shared_data import shared

from search.config import load_plan


def _neu(tmp_path: Path, per_class: int = 50) -> Path:
    source = shared("neu_det_cls", "IMAGES")
    out = tmp_path / "neu"
    out.mkdir()
    counts: dict[str, int] = {}
    for path in sorted(source.iterdir()):
        name = path.stem.rpartition("_")[0]
        counts[name] = counts.get(name, 0) + 1
        if counts[name] <= per_class:
            shutil.copy(path, out / path.name)
    return out


def test_the_metric_follows_the_data_kind(tmp_path: Path) -> None:
    neu = shared("neu_det_cls")
    plan = load_plan(["data=classes", f"data.root={neu}", "space=classes_quick"])
    assert plan.config.metric == "accuracy" and plan.fixed["model.family"] == "timm"
    assert load_plan(["data=classes", f"data.root={neu}", "space=classes_quick", "metric=log_loss"]).config.metric == "log_loss"
    presence = load_plan(["data.task=presence", "space=classes_quick"])  # the synthetic steel, as which classes each image has
    assert presence.config.metric == "macro_f1"
    assert load_plan([]).config.metric == "dice_pairs"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data=classes", "data.root=X", "space=quick"], "quick.yaml trains segmentation masks .* use space=classes_quick"),
        (["space=classes_quick"], "model.family=timm trains image labels, but data.format=synthetic holds masks; add data.task=presence"),
        (["metric=accuracy"], "metric=accuracy scores image labels, but data.format=synthetic holds masks"),
        (["data=classes", "data.root=X", "space=classes_quick", "metric=dice_pairs"], "metric=dice_pairs: data.format=classes holds image labels"),
        (["data=classes", "data.root=X", "data.task=presence", "space=classes_quick"], "data.task=presence reads a segmentation set"),
        (["data.task=masks"], "data.task must be one of auto, presence"),
    ],
)
def test_a_mismatch_of_data_metric_and_model_is_one_error(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_plan(argv)


@pytest.mark.slow
def test_a_classification_search_runs_through_ray_and_mlflow(tmp_path: Path) -> None:
    search = Search(tmp_path, study="neu")
    space = tmp_path / "cls.yaml"
    quick = yaml.safe_load(Path(__file__).resolve().parents[2].joinpath("spaces", "classes_quick.yaml").read_text())
    quick["settings"].update({"trials": 2, "folds": 2, "train.epochs": 2, "train.val_every": 1, "scheduler.grace_period": 2,
                              "train.scale": 0.16, "train.threads": 1, "model.encoder": "resnet10t", "train.batch_size": 8})
    space.write_text(yaml.safe_dump(quick))
    search.argv = [f"space={space}", "study=neu", f"storage={search.storage}", f"mlflow.uri={search.uri}",
                   "data=classes", f"data.root={_neu(tmp_path, per_class=4)}", "ray.node_ip=127.0.0.2"]
    try:
        status, log = search.run(timeout=400)
    finally:
        search.close()
    assert status == 0, log[-3000:]
    assert "Next:   python -m ensembling.select" in log
    study = search.study_dir
    record = yaml.safe_load((study / "study.yaml").read_text())
    assert record["kind"] == "classification" and record["multi_label"] is False and record["metric"] == "accuracy"
    assert len(search.finished()) == 2
    mlflow.set_tracking_uri(search.uri)
    runs = mlflow.search_runs(experiment_names=["neu"], filter_string="tags.kind = 'trial'")
    assert len(runs) == 2 and runs["metrics.accuracy"].notna().all() and runs["metrics.val_log_loss"].notna().all()


def test_a_study_begun_before_data_task_existed_still_resumes(tmp_path: Path) -> None:
    from search.config import resolved
    from search.resume import check_same_search

    now = resolved(load_plan(["space=quick"]))
    before = {**now, "data": {k: v for k, v in now["data"].items() if k != "task"}}
    check_same_search(before, now, tmp_path / "study.yaml")  # no refusal
    with pytest.raises(ValueError, match=r"searched with data.task='auto', this command gives 'presence'"):
        check_same_search(before, {**now, "data": {**now["data"], "task": "presence"}}, tmp_path / "study.yaml")
