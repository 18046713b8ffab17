"""Every python script under bench/ reads key=value words with ``ensembling.cli``: a bogus key is one
``error:`` line naming the key and the script's own usage (its path under bench/), and exit status 2,
before any measurement starts.

The scripts are loaded in this process (torch is imported once, not once per script); two cheap ones are
also run as a user runs them, to check that ``python bench/...`` exits with the status ``main`` returns.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(ROOT.glob("bench/*/*.py"))
GROUPS = {"perf", "studies", "data", "baselines"}


def load(script: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Import a bench script as a module; its siblings (``from bench_greedy import ...``) resolve beside it."""
    monkeypatch.setattr(sys, "path", [str(script.parent), *sys.path])
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # bench_rle sets a default
    spec = importlib.util.spec_from_file_location(f"bench_cli_{script.parent.name}_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_is_grouped() -> None:
    assert len(SCRIPTS) >= 20
    assert {s.parent.name for s in SCRIPTS} == GROUPS
    assert not list(ROOT.glob("bench/*.py")) and not list(ROOT.glob("bench/*.sh")), "a script left at bench/'s top"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: f"{s.parent.name}/{s.name}")
def test_bogus_key_is_one_error_line(script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(script, monkeypatch)
    assert module.main(["bogus=1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: command line: unknown key 'bogus'")
    assert f"usage: python bench/{script.parent.name}/{script.name}" in lines[0]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: f"{s.parent.name}/{s.name}")
def test_runs_main_with_its_arguments(script: Path) -> None:
    text = script.read_text()
    assert 'if __name__ == "__main__":' in text and "sys.exit(main(sys.argv[1:]))" in text
    assert "argparse" not in text and "split(\"=\", 1)" not in text


@pytest.mark.parametrize("script", ["bench/perf/bench_metric.py", "bench/data/neu_det_split.py"])
def test_run_as_a_user_runs_it(script: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, script, "bogus=1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: command line: unknown key 'bogus'") and len(result.stderr.strip().splitlines()) == 1


def test_a_wrong_value_names_the_key_and_rule(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(ROOT / "bench/perf/bench_greedy.py", monkeypatch)
    assert module.main(["mode=tpu"]) == 2
    assert capsys.readouterr().err == "error: mode must be one of cpu, gpu, got 'tpu'\n"
    assert module.main(["mode=cpu", "images=0"]) == 2
    assert capsys.readouterr().err == "error: images must be an integer >= 1, got 0\n"


@pytest.mark.parametrize("script", sorted(ROOT.glob("bench/*/*.sh")), ids=lambda s: f"{s.parent.name}/{s.name}")
def test_shell_script_parses_and_finds_its_siblings(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    for called in re.findall(r'"\$here/([^"]+)"', script.read_text()):
        assert (script.parent / called).is_file(), f"{script.name} calls $here/{called}, which is not there"
