"""`ray up cluster.yaml`, `ray job submit` of a two-stage search, `ray down`: for real, on loopback.

The script (scripts/loopback_cluster.sh) runs in its own PID, network and mount namespaces: `ray up`
and `ray down` run `ray stop`, which would otherwise stop every Ray process of the machine. Needs
root, unshare, sshd, ssh-keygen and rsync (CI installs openssh-server and rsync: see .ci/run).
Inside, /tmp is a fresh tmpfs; a checkout or venv under /tmp is bound back (the fast test below).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "loopback_cluster.sh"
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--mount"]


def no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, sshd on port 22)"
    for tool, package in [("unshare", "util-linux"), ("ip", "iproute2")]:
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install -y {package})"
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot make namespaces here: {probe.stderr.strip()}"
    return None


def missing() -> str | None:
    for tool, package in [("rsync", "rsync"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")]:
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install -y {package})"
    if not Path("/usr/sbin/sshd").exists():
        return "needs /usr/sbin/sshd (apt-get install -y openssh-server)"
    return no_namespaces()


def script_env(python_bin: Path) -> dict[str, str]:
    """The environment without Ray settings, with this python (a venv's, pyenv's ...) first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{python_bin}:{env.get('PATH', '')}"
    return env


@pytest.mark.skipif(no_namespaces() is not None, reason=no_namespaces() or "")
def test_a_checkout_and_venv_under_tmp_stay_visible_over_the_fresh_tmp() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as base:  # under /tmp even with --basetemp elsewhere
        repo, venv, work = Path(base, "repo"), Path(base, "venv"), Path(base, "work")
        (repo / "scripts").mkdir(parents=True)
        shutil.copy(SCRIPT, repo / "scripts")
        shutil.copy(ROOT / "cluster.yaml", repo)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True, timeout=120)
        Path(base, "not-needed.txt").write_text("the rest of the real /tmp stays hidden\n")
        work.mkdir()
        done = subprocess.run([*UNSHARE, "bash", str(repo / "scripts" / "loopback_cluster.sh"), str(work), "--mounts-only"],
                              capture_output=True, text=True, timeout=60, cwd=repo, env=script_env(venv / "bin"))
        log = done.stdout + done.stderr
        assert done.returncode == 0, log
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen == {"cwd": str(repo), "python": str(venv), "cluster_yaml": True, "tmp_files": []}, log
        assert f"kept under the fresh /tmp: {repo}" in log and f"kept under the fresh /tmp: {venv}" in log


@pytest.mark.slow
@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_ray_up_job_submit_ray_down_on_loopback(tmp_path: Path) -> None:
    env = script_env(Path(sys.executable).parent)
    done = subprocess.run([*UNSHARE, "bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=420, env=env)
    log = done.stdout + done.stderr
    (tmp_path / "script.log").write_text(log)
    assert done.returncode == 0, log[-6000:]
    job = (tmp_path / "job.log").read_text()
    assert "succeeded" in job, job[-4000:]
    assert "Stage screen: 2 trial(s) on nodes with 'proto'" in job
    assert "Stage full: 1 trial(s) on nodes with 'heavy'" in job

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["experiment_kind"] == "custom_model_development"
    runs = result["runs"]
    screens = [r for r in runs if r["tags"].get("stage") == "screen"]
    fulls = [r for r in runs if r["tags"].get("stage") == "full"]
    assert len(screens) == 2 and len(fulls) == 1
    assert all(r["status"] == "FINISHED" for r in screens + fulls)
    assert {r["tags"]["ray.node_ip"] for r in screens} == {"127.0.0.2"}  # the prototyping box
    assert fulls[0]["tags"]["ray.node_ip"] == "127.0.0.3" and fulls[0]["tags"]["ray.node_kind"] == "heavy"
    parent = next(r for r in runs if r["tags"].get("kind") == "search")
    assert "full: 127.0.0.3 (heavy)" in parent["tags"]["mlflow.note.content"]
    # nothing was written to the real home: keys, token and bootstrap config stayed in the overlay
    assert (tmp_path / "root-upper" / "ray_bootstrap_config.yaml").is_file()
