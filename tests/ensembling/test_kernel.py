"""The export run as an offline Kaggle kernel would: a fresh venv holding only the kernel's packages,
the project not installed and not on the path, the folder read-only, no network, one command."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ensembling import export

pytestmark = pytest.mark.slow

# What the issue allows the export to need; everything they need comes along, nothing else (no pandas).
KERNEL_PACKAGES = ["torch", "segmentation-models-pytorch", "numpy", "opencv-python-headless"]


def _closure(roots: list[str]) -> list[metadata.Distribution]:
    """The installed distributions the roots need (extras followed where a requirement asks for them)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(name, frozenset()) for name in roots]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[canonicalize_name(name)] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ({""} | set(extras))):
                todo.append((req.name, frozenset(req.extras)))
    return list(found.values())


def _kernel_venv(root: Path) -> Path:
    """``python -m venv`` without system site-packages, then links to only the kernel packages' files."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    source = Path(sysconfig.get_paths()["purelib"])
    for dist in _closure(KERNEL_PACKAGES):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            target = site / top
            if (source / top).exists() and not target.exists() and not top.endswith(".pth"):
                target.symlink_to(source / top)
    return python


def test_export_writes_a_valid_submission_in_an_offline_kernel(tiny_study: Path, tiny_data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "input" / "my-ensemble"
    assert export.main([f"study={tiny_study}", f"out={dataset}"]) == 0
    python = _kernel_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    for forbidden in ("ray", "mlflow", "optuna", "ensembling", "trainables", "albumentations", "pandas"):
        probe = subprocess.run([python, "-c", f"import {forbidden}"], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert probe.returncode != 0, f"{forbidden} is importable in the kernel venv"
    for path in [dataset, *dataset.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = sorted((str(p), p.stat().st_mtime_ns) for p in dataset.rglob("*"))
    working = tmp_path / "working"
    working.mkdir()
    command = [str(python), str(dataset / "predict.py"), f"images={tiny_data / 'test_images'}", f"sample={tiny_data / 'sample_submission.csv'}", f"out={working / 'submission.csv'}"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-rn", *command]  # no network at all, as in an offline kernel
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=working, timeout=300)
    finally:
        for path in [dataset, *dataset.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted((str(p), p.stat().st_mtime_ns) for p in dataset.rglob("*")) == before  # nothing written in the dataset
    assert sorted(p.name for p in working.iterdir()) == ["submission.csv", "submission.csv.ensemble.json"]
    assert not (tmp_path / "home").exists()  # no cache, no config written anywhere else
    sample = pd.read_csv(tiny_data / "sample_submission.csv")
    written = pd.read_csv(working / "submission.csv", keep_default_na=False)
    assert list(written.columns) == list(sample.columns) and len(written) == len(sample)
    assert json.loads((working / "submission.csv.ensemble.json").read_text())["ensemble_id"]


def test_a_classification_export_runs_in_the_offline_kernel(tmp_path: Path) -> None:
    import numpy as np
    from class_studies import CLASS_NAMES, add_trial, make_class_study, write_images

    from ensembling import select

    study = make_class_study(tmp_path / "cls", n=12, metric="accuracy")
    truth = np.load(study / "truth.npy")
    add_trial(study, "t0", truth * 0.8 + 0.1)
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=100", "nested=false"]) == 0
    dataset = tmp_path / "input" / "classes"
    assert export.main([f"study={study}", f"out={dataset}"]) == 0
    images = tmp_path / "test"
    names = write_images(images, 4, seed=50)
    pd.DataFrame({"id": names, "label": ""}).to_csv(tmp_path / "sample.csv", index=False)
    python = _kernel_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    working = tmp_path / "working"
    working.mkdir()
    command = [str(python), str(dataset / "predict.py"), f"images={images}", f"sample={tmp_path / 'sample.csv'}", f"out={working / 'submission.csv'}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=working, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    written = pd.read_csv(working / "submission.csv")
    assert written["id"].tolist() == names and set(written["label"]) <= set(CLASS_NAMES)
