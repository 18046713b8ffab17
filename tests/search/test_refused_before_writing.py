"""Bad input to ``python -m search.run``: one ``error:`` line naming the key, file or row, exit status 2,
and nothing written: no study folder, no MLflow store, no lock (issue 19).

Each case runs the real command (``main``) in a fresh folder, so the default MLflow store
(``sqlite:///<cwd>/mlflow.db``) would show up there if the search got as far as opening it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from core.tracking import check_store_writable
from search import run as search_run


def _severstal(root: Path, csv: str | None, n: int = 6) -> Path:
    (root / "train_images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((16, 32, 3), 30 * i, np.uint8)).save(root / "train_images" / f"{i}.jpg")
    if csv is not None:
        (root / "train.csv").write_text(csv)
    return root


def _no_images(root: Path) -> Path:
    root.mkdir()
    (root / "train.csv").write_text("ImageId,ClassId,EncodedPixels\n")
    return root


def _classes(root: Path, csv: str) -> Path:
    (root / "images").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((16, 16, 3), 30 * i, np.uint8)).save(root / "images" / f"{i}.png")
    (root / "labels.csv").write_text(csv)
    return root


GOOD_CSV = "ImageId,ClassId,EncodedPixels\n0.jpg,1,1 20\n1.jpg,2,5 10\n2.jpg,1,3 4\n"
HEADER_ONLY = "ImageId,ClassId,EncodedPixels\n"
RAGGED = GOOD_CSV + "3.jpg,1,1 2,x,y\n"
BROKEN_SPACE = "description: x\nsettings:\n  trials: [1,\n  folds: 3\n"


def _space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"\x00not a weights file" * 20)
    return path


# (argv given the test folder, the message the one error line must hold); every one names its key or file
CASES = {
    "limit": (lambda d: ["data.limit=-1"], r"data.limit must be an integer >= 0 \(0: every image\), got -1"),
    "node_ip": (lambda d: ["ray.node_ip=bogus"], r"ray.node_ip must be an IP address such as 127.0.0.1, got 'bogus'"),
    "address": (lambda d: ["ray.address=bogus"], r"ray.address must be auto or HOST:PORT .*got 'bogus'"),
    "cpus": (lambda d: ["ray.cpus_per_trial=-1"], r"ray.cpus_per_trial must be >= 0 .*got -1"),
    "gpus": (lambda d: ["ray.gpus_per_trial=-0.5"], r"ray.gpus_per_trial must be >= 0, or -1 .*got -0.5"),
    "concurrent": (lambda d: ["ray.max_concurrent=-2"], r"ray.max_concurrent must be >= 0"),
    "grace": (lambda d: ["scheduler.grace_period=0"], r"scheduler.grace_period must be >= 1 epoch, got 0"),
    "space_yaml": (
        lambda d: [f"space={_space(d / 'bad.yaml', BROKEN_SPACE)}"],
        r"bad.yaml:5: not valid YAML: expected ',' or '\]'.*while parsing a flow sequence begun on line 3",
    ),
    "space_binary": (lambda d: [f"space={_garbage(d / 'bin.yaml')}"], r"bin.yaml: not valid YAML: unacceptable character"),
    "space_not_text": (lambda d: [f"space={_bytes(d / 'latin.yaml', bytes([0xFF, 0xFE, 0x41]))}"], r"latin.yaml: a space file is YAML text, this one is not UTF-8 text"),
    "value_yaml": (lambda d: ["trials=[1"], r"trials=\[1: not valid YAML"),
    "weights_safetensors": (
        lambda d: [f"model.encoder_weights={_garbage(d / 'w.safetensors')}"],
        r"model.encoder_weights: .*w.safetensors is not a readable .safetensors weights file",
    ),
    "weights_pth": (
        lambda d: [f"model.encoder_weights={_garbage(d / 'w.pth')}"],
        r"model.encoder_weights: .*w.pth is not a readable .pth weights file",
    ),
    "folds_1": (lambda d: ["folds=1"], r"folds must be >= 2"),
    "trials_0": (lambda d: ["trials=0"], r"trials must be >= 1, got 0"),
    "seed_text": (lambda d: ["seed=abc"], r"seed must be int, got 'abc'"),
    "images_0": (lambda d: ["data.images=0"], r"data.images must be an integer >= 8, got 0"),
    "root_missing": (
        lambda d: ["data=severstal", f"data.root={d / 'nowhere'}"],
        r"data.root=.*nowhere: no such folder; name the data folder of data.format=severstal",
    ),
    "root_is_file": (
        lambda d: ["data=severstal", f"data.root={_garbage(d / 'file')}"],
        r"data.root=.*file: not a folder",
    ),
    "csv_missing": (
        lambda d: ["data=severstal", f"data.root={_severstal(d / 'data', None)}"],
        r"train.csv: label file not found",
    ),
    "csv_0_bytes": (
        lambda d: ["data=severstal", f"data.root={_severstal(d / 'data', '')}"],
        r"data/train.csv: the file is empty; expected a header line ImageId,ClassId,EncodedPixels",
    ),
    "csv_header_only": (
        lambda d: ["data=severstal", f"data.root={_severstal(d / 'data', HEADER_ONLY)}"],
        r"data.root=.*data: none of the 6 training images has a label .*data.allow_empty=true",
    ),
    "csv_ragged": (
        lambda d: ["data=severstal", f"data.root={_severstal(d / 'data', RAGGED)}"],
        r"data/train.csv: not a CSV with the columns .*line 5",
    ),
    "classes_0_bytes": (
        lambda d: ["data=classes", f"data.root={_classes(d / 'data', '')}", "space=classes_quick"],
        r"labels.csv: the file is empty; expected a header line image,label",
    ),
    "classes_header_only": (
        lambda d: ["data=classes", f"data.root={_classes(d / 'data', 'image,label' + chr(10))}", "space=classes_quick"],
        r"data: empty data set \(no labelled image found, labels from csv\)",
    ),
    "folds_over_images": (
        lambda d: ["data=severstal", f"data.root={_severstal(d / 'data', GOOD_CSV)}", "folds=30"],
        r"folds=30 must not exceed the number of images: .*train_images has 6; use folds=6 or fewer",
    ),
    "folds_over_limit": (
        lambda d: ["data=severstal", f"data.root={_severstal(d / 'data', GOOD_CSV)}", "data.limit=3", "folds=4"],
        r"folds=4 must not exceed the number of images: .*has 3 \(data.limit=3\)",
    ),
    "mlflow_no_server": (lambda d: ["mlflow.uri=http://127.0.0.1:9"], r"mlflow.uri=http://127.0.0.1:9: no MLflow server answers there"),
    "mlflow_scheme": (lambda d: ["mlflow.uri=bogus://x"], r"mlflow.uri=bogus://x: unknown kind of store 'bogus'"),
    "seed_negative": (lambda d: ["seed=-1"], r"seed must be an integer >= 0, got -1"),
    "no_image_folder": (
        lambda d: ["data=severstal", f"data.root={_no_images(d / 'data')}"],
        r"data/train_images: image folder not found",
    ),
    "mlflow_read_only": (lambda d: ["mlflow.uri=sqlite:////sys/kvs-test/mlflow.db"], r"mlflow.uri=sqlite:////sys/kvs-test/mlflow.db: cannot write the MLflow store at /sys"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_before_anything_is_written(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    argv, message = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    words = argv(tmp_path)
    before = set(tmp_path.rglob("*"))
    assert search_run.main([*words, f"storage={tmp_path / 'studies'}", "study=s", "train.epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert re.search(message, err), err
    assert set(tmp_path.rglob("*")) == before, "the refused search wrote something"  # no study, lock, mlflow.db, mlruns


def test_a_set_with_no_label_searches_only_when_asked(tmp_path: Path, monkeypatch, capsys) -> None:
    """data.allow_empty=true: the study is prepared, with a warning that every score will be 1.0."""
    data = _severstal(tmp_path / "data", HEADER_ONLY)
    argv = ["data=severstal", f"data.root={data}", f"storage={tmp_path / 'studies'}", "study=s", "folds=2", "data.allow_empty=true"]
    study = search_run.prepare(search_run.load_plan(argv))
    assert (study / "folds.csv").is_file()
    err = capsys.readouterr().err
    assert "warning: data.root=" in err and "every score will be 1.0" in err


def test_the_store_check_refuses_a_read_only_mount(tmp_path: Path) -> None:
    """Tests run as root, where permissions never refuse a write: a read-only tmpfs in a private mount
    namespace does. Skipped where ``unshare`` may not make one."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    ro = tmp_path / "ro"
    ro.mkdir()
    code = (
        "from core.tracking import check_store_writable\n"
        f"check_store_writable('sqlite:///{ro}/sub/mlflow.db')\n"
    )
    script = f"mount -t tmpfs -o ro tmpfs {ro} && exec {sys.executable} -c \"{code}\""
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True)
    if "mount" in result.stderr and "ValueError" not in result.stderr:
        pytest.skip(f"no private read-only mount here: {result.stderr.strip()[:200]}")
    assert result.returncode != 0
    assert f"mlflow.uri=sqlite:///{ro}/sub/mlflow.db: cannot write the MLflow store at {ro} (Read-only file system)" in result.stderr


def test_the_store_check_passes_a_writable_place_and_a_server(tmp_path: Path) -> None:
    check_store_writable(f"sqlite:///{tmp_path}/new/sub/mlflow.db")
    assert not (tmp_path / "new").exists()  # the probe makes no folder: MLflow makes them when it opens the store
    check_store_writable(f"file:{tmp_path}/mlruns")
    check_store_writable("http://127.0.0.1:5055")
    assert list(tmp_path.iterdir()) == []


def test_weights_files_that_load_pass_the_check(tmp_path: Path) -> None:
    from core.models import check_weights_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "ok.safetensors"))
    torch.save({"w": torch.zeros(2)}, tmp_path / "ok.pth")
    check_weights_file(tmp_path / "ok.safetensors")
    check_weights_file(tmp_path / "ok.pth")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list.pt holds no tensors"):
        check_weights_file(tmp_path / "list.pt")
