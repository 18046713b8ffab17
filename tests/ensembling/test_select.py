"""``ensembling.select`` on a real tiny study with hand-made trials: snapshots, metric, nested estimate, MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from core.contract import StudyFolder
from core.data.study import DataConfig, StudyConfig, open_study, prepare_study
from ensembling.select import main, run

pytestmark = pytest.mark.slow  # MLflow and a real study: ~35 s

CONFIG = {"model.arch": "Unet", "model.encoder": "resnet18", "train.scale": 0.125, "tta": "none"}


def write_trial(folder, oof: np.ndarray, study, ms: float = 10.0, reference_ms: float = 100.0, score: float = 0.5) -> None:
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.write_config(CONFIG)
    np.save(folder.oof, oof)
    for k in range(study.n_folds):
        folder.weights(k).parent.mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.zeros(1)}, str(folder.weights(k)))  # selection checks the headers, not the model
    folder.write_cost({"ms_per_image": ms / 2, "ms_per_image_all_folds": ms, "device": "cpu", "reference_ms": reference_ms})
    folder.write_metrics({"oof_score": score, "ms_per_image": ms, "folds": list(range(study.n_folds)), "complete": True, "folds_hash": study.folds_hash})


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("select")
    data = DataConfig(format="synthetic", root=str(root / "data"), images=16)
    config = StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125)
    prepare_study(root / "s", config)
    raw = {"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125, "metric": "iou_dataset", "mlflow": {"uri": f"sqlite:///{root / 'mlflow.db'}"}}
    (root / "s" / "study.yaml").write_text(yaml.safe_dump(raw))
    study = open_study(root / "s")
    truth = study.truth()
    rng = np.random.default_rng(0)
    folder = StudyFolder(root / "s")
    for i, noise in enumerate((0.35, 0.45, 0.6)):
        noisy = np.clip(truth * 0.7 + rng.normal(0.2, noise, truth.shape), 0, 1)
        write_trial(folder.trial(f"t{i}"), np.rint(noisy * 255).astype(np.uint8), study)
    # t0's EMA snapshot equals the truth: it must be picked first, and alone.
    snap = folder.trial("t0").snapshot("ema")
    snap.root.mkdir(parents=True)
    np.save(snap.oof, (truth * 255).astype(np.uint8))
    for k in range(2):
        snap.weights(k).parent.mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.zeros(1)}, str(snap.weights(k)))
    snap.metrics_json.write_text(json.dumps({"oof_score": 1.0}))
    (folder.trial("t0").snapshot("unfinished").root).mkdir(parents=True)  # no metrics.json: not a candidate
    return root / "s"


def test_a_snapshot_equal_to_the_truth_is_chosen_alone_and_logged_under_the_search_run(study_dir: Path, capsys) -> None:
    mlflow.set_tracking_uri(yaml.safe_load((study_dir / "study.yaml").read_text())["mlflow"]["uri"])
    mlflow.set_experiment("s")
    with mlflow.start_run(run_name="search s", tags={"kind": "search", "study": str(study_dir)}) as parent:
        pass
    manifest = run({"study": str(study_dir), "budget.device": 1.0, "nested": True})
    [member] = manifest.members
    assert member.candidate_id == "t0/ema" and member.snapshot == "ema" and member.trial_id == "t0"
    assert member.checkpoints == ["trials/t0/snapshots/ema/fold0/model.safetensors", "trials/t0/snapshots/ema/fold1/model.safetensors"]
    assert manifest.metric == "iou_dataset" and manifest.oof_score == pytest.approx(1.0)
    assert manifest.nested_score == pytest.approx(1.0) and len(manifest.nested_fold_scores) == 2
    assert manifest.format_version == 2 and len(manifest.postprocessing["per_class"]) == 4
    assert json.loads((study_dir / "ensemble.json").read_text()) == json.loads(json.dumps(manifest.to_dict()))  # returned = written
    out = capsys.readouterr().out
    assert "Nested estimate" in out and "t0/ema" in out and "Best OOF score within seconds" in out
    runs = mlflow.search_runs(filter_string="tags.kind = 'select'", output_format="list")
    assert runs[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert runs[0].data.metrics["nested_score"] == pytest.approx(1.0)
    assert runs[0].data.params["nested_split"] == "images"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)}
    assert {"budget_curve.png", "per_class.json", "ensemble.json"} <= artifacts


def test_nested_estimate_is_below_the_oof_score_without_the_perfect_snapshot(study_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "s"
    shutil.copytree(study_dir, copy)
    shutil.rmtree(copy / "trials" / "t0" / "snapshots")
    broken = copy / "trials" / "t1" / "snapshots" / "broken"  # complete, but its OOF is truncated
    broken.mkdir(parents=True)
    (broken / "oof.npy").write_bytes(b"\x93NUMPY")
    (broken / "metrics.json").write_text("{}")
    manifest = run({"study": str(copy), "budget.device": 1.0, "greedy.bags": 2, "greedy.bag_fraction": 1.0})
    assert manifest.nested_score < manifest.oof_score
    assert all(m.snapshot is None for m in manifest.members)
    assert "skipped snapshot t1/broken:" in capsys.readouterr().out  # named, and left out


def test_budget_on_the_target_device(study_dir: Path, capsys) -> None:
    # Measured at 10 ms with a 100 ms reference; on a device 100x slower than the reference, nothing fits.
    assert main([f"study={study_dir}", "budget.device=100", "budget.seconds=3600", "nested=false"]) == 2
    assert "no model fits the budget" in capsys.readouterr().err
    assert main([f"study={study_dir}", "budget.device=gpu9000", "nested=false"]) == 2
    assert "budget.device must be one of kaggle-p100" in capsys.readouterr().err


def test_an_unknown_device_is_one_error_line(study_dir: Path, capsys) -> None:
    from ensembling_helpers import one_line_error

    assert main([f"study={study_dir}", "device=gpu", "nested=false"]) == 2
    assert one_line_error(capsys) == "error: device must be auto, cpu or cuda, got 'gpu'"


def test_steps_choose_which_post_processing_is_tuned(study_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from ensembling_helpers import one_line_error

    copy = tmp_path / "s"
    shutil.copytree(study_dir, copy)
    manifest = run({"study": str(copy), "budget.device": 1.0, "nested": False, "steps": "threshold, min_area"})
    post = manifest.postprocessing
    assert post["steps"] == ["threshold", "min_area"]
    assert all(set(values) == {"threshold", "min_area"} for values in post["per_class"]), post["per_class"]
    assert "steps threshold, min_area;" in capsys.readouterr().out
    assert main([f"study={copy}", "steps=threshold,speckle", "nested=false"]) == 2
    assert one_line_error(capsys).startswith("error: steps=threshold,speckle: speckle is not a post-processing step; give a comma list of")
    assert main([f"study={copy}", "steps=min_area", "nested=false"]) == 2
    assert "exactly one threshold step" in one_line_error(capsys)


def test_the_nested_estimate_holds_out_parts_of_every_fold_unless_told_folds(tmp_path: Path, capsys) -> None:
    """One model per fold, calibrated differently: fold 0 puts defects at 0.5 and background at 0.0, fold 1 at
    0.9 and 0.3. A threshold in 0.3-0.5 is perfect on all the OOF (what the export is tuned on). Held-out parts
    of every fold's images find it too; held-out folds don't: tuned on fold 0 alone, the lowest perfect
    threshold (0.1) lets fold 1's background through."""
    data = DataConfig(format="synthetic", root=str(tmp_path / "data"), images=64)  # every class has defects in every part
    config = StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125)
    copy = tmp_path / "s"
    prepare_study(copy, config)
    raw = {"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125, "mlflow": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}
    (copy / "study.yaml").write_text(yaml.safe_dump(raw))
    study = open_study(copy)
    truth = study.truth().astype(np.float64)
    folds = study.folds["fold"].to_numpy()
    assert set(folds.tolist()) == {0, 1}
    shifted = np.where(folds[:, None, None, None] == 0, truth * 0.5, 0.3 + truth * 0.6)
    write_trial(StudyFolder(copy).trial("shifted"), np.rint(shifted * 255).astype(np.uint8), study)
    by_images = run({"study": str(copy), "budget.device": 1.0})
    assert by_images.oof_score == pytest.approx(1.0) and by_images.nested_split == "images"
    assert by_images.nested_score > 0.97  # not quite 1: a part may hold too few defects of a class to place its minimum area
    assert "K-1 parts of every fold's images" in capsys.readouterr().out
    by_folds = run({"study": str(copy), "budget.device": 1.0, "nested.split": "folds"})
    assert by_folds.oof_score == pytest.approx(1.0) and by_folds.nested_split == "folds"
    assert by_folds.nested_score < by_images.nested_score - 0.1, by_folds.nested_fold_scores
    assert "scored on the fold left out" in capsys.readouterr().out
    assert main([f"study={copy}", "nested.split=rows"]) == 2
    assert "nested.split must be one of images, folds, got 'rows'" in capsys.readouterr().err


def test_trials_names_the_candidates_with_their_snapshots_and_an_unknown_one_is_one_line(study_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from ensembling_helpers import one_line_error

    copy = tmp_path / "s"
    shutil.copytree(study_dir, copy)
    manifest = run({"study": str(copy), "budget.device": 1.0, "nested": False, "trials": "t1, t2"})
    assert {m.trial_id for m in manifest.members} <= {"t1", "t2"}  # t0's perfect snapshot is not among them
    manifest = run({"study": str(copy), "budget.device": 1.0, "nested": False, "trials": "t0"})
    assert [m.candidate_id for m in manifest.members] == ["t0/ema"]  # a trial's snapshots come with it
    capsys.readouterr()
    assert main([f"study={copy}", "trials=t1,t9", "nested=false"]) == 2
    assert one_line_error(capsys) == f"error: trials=t1,t9: t9 is no usable finished trial of {copy} (usable: t0, t1, t2)"


def test_a_budgeted_search_selects_from_every_usable_trial_but_the_screens(study_dir: Path) -> None:
    from search.budget_run import selection_words

    assert selection_words(study_dir, []) == [f"study={study_dir}"]
    # t2 screened (complete, as a holdout's screening trials are): left out; an id that is no complete trial changes nothing
    assert selection_words(study_dir, ["t2", "pruned-one"]) == [f"study={study_dir}", "trials=t0,t1"]
    assert selection_words(study_dir, ["pruned-one"]) == [f"study={study_dir}"]
