"""The pure parts of the equal-time benchmark: the data splits per seed, the harness's keys and table, plan.json's
export_models, and the plain script's two sample layouts. No search or training runs here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from bench_scripts import load


@pytest.fixture
def equal_time(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return load("bench/studies/equal_time.py", monkeypatch)


# --- the data splits -------------------------------------------------------------------------------

def fake_neu_seg(root: Path, n: int = 9, n_test: int = 3) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i:06d}.jpg"), np.full((16, 16, 3), 10 * i, np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        mask[2:6, 2:6] = 1 + i % 3
        cv2.imwrite(str(root / "masks" / f"{i:06d}.png"), mask)
    (root / "source_split_test.txt").write_text("\n".join(f"{i:06d}" for i in range(n_test)) + "\n")
    return root


def neu_split(out: Path) -> tuple[set[str], set[str], pd.DataFrame]:
    return ({p.name for p in (out / "train_images").iterdir()}, {p.name for p in (out / "test_images").iterdir()},
            pd.read_csv(out / "test_truth.csv"))


def test_neu_seg_seed_draws_a_split_of_the_source_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    neu = load("bench/data/neu_as_severstal.py", monkeypatch)
    source = fake_neu_seg(tmp_path / "neu")
    splits = {}
    for seed in (None, 1, 2):
        neu.convert(tmp_path / "out", source, seed)  # the same out each time: the script's marker lets it replace it
        train, test, truth = neu_split(tmp_path / "out")
        assert len(train) == 6 and len(test) == 3 and not train & test and len(train | test) == 9
        assert set(truth.ImageId) == test  # every test image has a defect in the fake set: all in the truth
        splits[seed] = test
    assert splits[None] == {"000000.jpg", "000001.jpg", "000002.jpg"}  # no seed: the source's split
    assert splits[1] != splits[2] != splits[None]
    neu.convert(tmp_path / "again", source, 1)
    assert neu_split(tmp_path / "again")[1] == splits[1]  # the same seed, the same split


def test_neu_seg_seed_sizes_at_full_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    neu = load("bench/data/neu_as_severstal.py", monkeypatch)
    stems = [f"{i:06d}" for i in range(1341)]
    source = set(stems[::3])  # 447
    for seed in (0, 1, 2):
        test = neu.test_stems_of(stems, source, seed)
        assert len(test) == 447 and test <= set(stems) and test != source
    assert neu.test_stems_of(stems, source, None) == source


def test_neu_seg_refuses_a_folder_it_did_not_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    neu = load("bench/data/neu_as_severstal.py", monkeypatch)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="did not write"):
        neu.convert(tmp_path / "mine", fake_neu_seg(tmp_path / "neu"), 0)
    assert (tmp_path / "mine" / "keep.txt").is_file()


def test_neu_det_seed_gives_disjoint_stratified_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    det = load("bench/data/neu_det_split.py", monkeypatch)
    src = tmp_path / "det"
    src.mkdir()
    for name in ("crazing", "scratches"):
        for i in range(10):
            cv2.imwrite(str(src / f"{name}_{i}.jpg"), np.full((8, 8, 3), i, np.uint8))
    tests = {}
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        assert det.split(src, out, 0.3, seed) == {"train": 14, "test": 6, "classes": 2}
        with open(out / "test_labels.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert sorted(r["label"] for r in rows) == ["crazing"] * 3 + ["scratches"] * 3
        train = {p.name for p in (out / "train").iterdir()}
        # which source images went to test: the ones not in train
        tests[seed] = {p.name for p in src.iterdir()} - train
        assert len(tests[seed]) == 6 and len(train) == 14
    assert tests[0] != tests[1]


# --- the harness's keys, plan.json, scores and table -----------------------------------------------

def test_splits_and_budget(equal_time) -> None:  # type: ignore[no-untyped-def]
    assert equal_time.parse_splits("0,1,2") == [0, 1, 2]
    assert equal_time.parse_splits("[3, 5]") == [3, 5]
    for bad in ("a", "0,0", "-1", "1,,2"):
        with pytest.raises(ValueError, match="splits must be distinct integers"):
            equal_time.parse_splits(bad)
    assert equal_time.budget_seconds("10m") == 600 and equal_time.budget_seconds("90") == 90 and equal_time.budget_seconds("1.5h") == 5400
    with pytest.raises(ValueError, match="budget must be a duration above 0"):
        equal_time.budget_seconds("ten")


def test_search_keys_per_kind_and_ours_win(equal_time, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ours = equal_time.key_words("space=gpu train.epochs=3", "ours", equal_time.HARNESS_KEYS)
    words = equal_time.search_keys("labels", tmp_path / "data", 2, "5m", tmp_path / "ours", ours)
    keys = dict(w.split("=", 1) for w in words)
    assert keys["data"] == "classes" and keys["data.root"] == str(tmp_path / "data" / "train")
    assert keys["space"] == "gpu" and keys["train.epochs"] == "3" and keys["seed"] == "2" and keys["time_budget"] == "5m"
    assert keys["storage"] == str(tmp_path / "ours" / "studies") and keys["mlflow.uri"] == f"sqlite:///{tmp_path / 'ours' / 'mlflow.db'}"
    masks = dict(w.split("=", 1) for w in equal_time.search_keys("masks", tmp_path, 0, "10m", tmp_path, {}))
    assert masks["data"] == "severstal" and masks["data.classes"] == "3"
    synthetic = dict(w.split("=", 1) for w in equal_time.search_keys("synthetic", None, 1, "3m", tmp_path, {}))
    assert "data" not in synthetic and synthetic["seed"] == "1"
    with pytest.raises(ValueError, match="ours= may not set storage"):
        equal_time.key_words("storage=/elsewhere", "ours", equal_time.HARNESS_KEYS)
    with pytest.raises(ValueError, match="must look like key=value in ours="):
        equal_time.key_words("trials", "ours")


def test_export_models_reads_the_plan_or_falls_back(equal_time, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert equal_time.export_models(tmp_path) == "folds"  # no plan.json: a search without the planner
    (tmp_path / "plan.json").write_text(json.dumps({"export_models": "refit", "stages": []}))
    assert equal_time.export_models(tmp_path) == "refit"
    (tmp_path / "plan.json").write_text(json.dumps({"stages": []}))
    assert equal_time.export_models(tmp_path) == "folds"
    (tmp_path / "plan.json").write_text(json.dumps({"export_models": "all"}))
    with pytest.raises(ValueError, match="export_models must be folds or refit, got 'all'"):
        equal_time.export_models(tmp_path)
    (tmp_path / "plan.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        equal_time.export_models(tmp_path)


def test_accuracy_and_table(equal_time, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "truth.csv").write_text("image,label\na.jpg,x\nb.jpg,y\nc.jpg,x\nd.jpg,y\n")
    (tmp_path / "sub.csv").write_text("image,label\nb.jpg,y\na.jpg,y\nc.jpg,x\nd.jpg,y\n")
    assert equal_time.accuracy(tmp_path / "truth.csv", tmp_path / "sub.csv") == 0.75
    (tmp_path / "short.csv").write_text("image,label\na.jpg,x\n")
    with pytest.raises(ValueError, match="does not list every test image"):
        equal_time.accuracy(tmp_path / "truth.csv", tmp_path / "short.csv")
    rows = [{"kind": "masks", "split": s, "budget": "10m", "metric": "dice_pairs", "ours_s": w, "plain_s": w + 2, "plain_epochs": e,
             "ours": o, "plain": p, "all_empty": 0.6} for s, w, e, o, p in ((0, 600.0, 10, 0.90, 0.85), (1, 620.0, 11, 0.80, 0.81))]
    text = equal_time.table(rows)
    assert "mean margin +0.0200" in text  # ((0.90 - 0.85) + (0.80 - 0.81)) / 2
    assert "| 0 | 600 | 602 | 10 | 0.9000 | 0.8500 | +0.0500 | 0.6000 |" in text
    assert "| **mean** | 610 | 612 | 10.5 | **0.8500** | **0.8300** | **+0.0200** | 0.6000 |" in text
    labels = [{**r, "kind": "labels", "metric": "accuracy", "all_empty": None} for r in rows]
    assert "| - |" in equal_time.table(labels).splitlines()[-1]


def test_machine_names_cpu_and_cores(equal_time) -> None:  # type: ignore[no-untyped-def]
    assert equal_time.machine().endswith(" cores")


# --- the plain script's sample layouts ------------------------------------------------------------

def test_plain_script_writes_either_sample_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = load("bench/baselines/plain_script.py", monkeypatch)
    masks = np.zeros((2, 2, 4, 4), bool)
    masks[1, 0, :2, :2] = True  # image b, class 1: 4 pixels
    first = pd.DataFrame({"ImageId_ClassId": ["a.jpg_1", "a.jpg_2", "b.jpg_1", "b.jpg_2"], "EncodedPixels": "1 1"})
    final = pd.DataFrame({"ImageId": ["a.jpg", "a.jpg", "b.jpg", "b.jpg"], "EncodedPixels": "1 1", "ClassId": [1, 2, 1, 2]})
    for sample, layout in ((first, "pairs"), (final, "columns")):
        ids, found = plain.test_ids_of(sample)
        assert ids == ["a.jpg", "b.jpg"] and found == layout
        plain.write_submission(sample.copy(), found, ids, masks, [0, 0], 2, tmp_path / f"{layout}.csv")
        written = pd.read_csv(tmp_path / f"{layout}.csv", keep_default_na=False)
        assert list(written.EncodedPixels) == ["", "", "1 2 5 2", ""]
    plain.write_submission(first.copy(), "pairs", ["a.jpg", "b.jpg"], masks, [5, 0], 2, tmp_path / "area.csv")
    assert list(pd.read_csv(tmp_path / "area.csv", keep_default_na=False).EncodedPixels) == ["", "", "", ""]  # 4 pixels < 5


def test_plain_script_takes_epochs_or_seconds(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plain = load("bench/baselines/plain_script.py", monkeypatch)
    assert plain.main(["data=/nowhere", "out=/tmp/x.csv", "epochs=3", "seconds=60"]) == 2
    assert capsys.readouterr().err == "error: give epochs= (a fixed count) or seconds= (a wall-time budget), not both\n"
