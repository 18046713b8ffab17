"""A search whose every trial fails: the summary names each with its error file, suggests no selection,
and the search exits 1; MLflow records the trial run as FAILED. Real Ray on loopback, in its own temp folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow


def test_a_search_with_no_finished_trial_says_where_the_errors_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ray_tmp = Path(f"/tmp/rf{os.getpid() % 100000}")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "space=quick", "study=bad", f"storage={tmp_path}", "trials=1", "folds=2", "data.images=16", "train.epochs=1",
        "train.scale=0.125", "model.arch=Unet", "model.encoder=resnet18", "model.encoder_depth=3", "model.decoder_channels=[32,16,8]", "train.threads=1",
        "train.folds=[7]",  # no fold 7 in a 2-fold study: every trial fails at its start
        "ray.retries=0", f"mlflow.uri={uri}",
    ]
    # its own interpreter: a Ray run inside the test process leaves it unable to run Ray again for later tests
    try:
        done = subprocess.run([sys.executable, "-m", "search.run", *argv], env={**os.environ, "RAY_TMPDIR": str(ray_tmp)},
                              capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 1, done.stderr[-2000:]
    out = done.stdout
    summary = out[out.index("Study bad: 0 finished trial(s)") :]
    (error_file,) = (tmp_path / "bad").glob("ray-*/error.txt")
    assert "1 failed trial(s):" in summary and "train.folds must be in 0..1" in summary
    assert f"error file: {error_file}" in summary
    assert f"No trial finished: the errors are in {error_file}" in summary
    assert "Next:" not in summary and "ensembling.select" not in summary
    assert not (tmp_path / "bad" / "search.lock").exists()

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    (trial_run,) = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert trial_run.info.status == "FAILED" and trial_run.data.tags["error_file"] == str(error_file)
    assert all(r.info.status != "RUNNING" for r in runs)
