"""``-h``/``--help`` on every command: usage, its keys with their defaults, exit 0; and help or a typo is
answered before torch, Ray or MLflow is imported (they take seconds), so it comes back at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "mlflow")

# command -> words its help must show (keys, and a default beside its key)
COMMANDS = {
    "search.run": ["usage: python -m search.run", "trials ", "data.allow_empty", "ray.cpus_per_trial", "model.encoder ", "train.lr", "space=quick"],
    "search.node_start": ["--head", "--kind"],
    "trainables.fit": ["usage: python -m trainables.fit", "study ", "train.epochs", "model.encoder_weights"],
    "trainables.inspect": ["usage: python -m trainables.inspect", "data.root", "out ", "data.png"],
    "trainables.data": ["usage: python -m trainables.data", "severstal", "synthetic", "data.images"],
    "ensembling.select": ["usage: python -m ensembling.select", "budget.seconds", "3600", "nested.split", "images"],
    "ensembling.export": ["usage: python -m ensembling.export", "out ", "models ", "folds"],
    "ensembling.predict": ["usage: python -m ensembling.predict", "sample ", "batch_size", "8"],
    "ensembling.refit": ["usage: python -m ensembling.refit", "ray.address", "threads"],
    "ensembling.pseudo": ["usage: python -m ensembling.pseudo", "precision ", "0.9", "soft ", "limit "],
    "ensembling.distill": ["usage: python -m ensembling.distill", "alpha ", "0.5", "extra ", "student keys"],
    "ensembling.score": ["usage: python -m ensembling.score", "submission ", "truth ", "metric"],
    "ensembling.lb": ["usage: python -m ensembling.lb", "public ", "plot "],
}


def _run(*words: str, importtime: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", *words], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def _imported(stderr: str) -> set[str]:
    """Top-level packages that ``-X importtime`` lists as imported."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("module", list(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_keys_and_exits_0(module: str, flag: str, tmp_path: Path) -> None:
    result = _run(module, flag, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for word in COMMANDS[module]:
        assert word in result.stdout, (word, result.stdout)
    assert list(tmp_path.iterdir()) == []  # help writes nothing


@pytest.mark.parametrize("module", [m for m in COMMANDS if m != "search.node_start"])
def test_help_and_a_typo_import_no_torch_ray_or_mlflow(module: str, tmp_path: Path) -> None:
    result = _run(module, "--help", importtime=True, cwd=tmp_path)
    assert result.returncode == 0
    assert not _imported(result.stderr) & set(HEAVY), sorted(_imported(result.stderr) & set(HEAVY))
    typo = _run(module, "bogus_key=1", importtime=True, cwd=tmp_path)
    assert typo.returncode == 2
    errors = [line for line in typo.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    assert not _imported(typo.stderr) & set(HEAVY)


@pytest.mark.parametrize("word", ["data.limit=-1", "ray.cpus_per_trial=-1", "folds=1", "data.images=0"])
def test_a_search_value_out_of_range_is_answered_before_heavy_imports(word: str, tmp_path: Path) -> None:
    result = _run("search.run", word, importtime=True, cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {word.split('=')[0]} must be"), errors
    assert not _imported(result.stderr) & set(HEAVY)
    assert list(tmp_path.iterdir()) == []


def test_search_help_in_process_imports_no_torch() -> None:
    """The probe the issue asks for: main(['--help']) in a fresh interpreter, then sys.modules."""
    code = (
        "import sys\n"
        "from search import cli\n"
        "from core.errors import exit_status\n"
        "assert exit_status(lambda: cli.parse_command(['--help'])) == 0\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "run keys:" in result.stdout


def test_search_help_shows_the_named_space_and_the_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    from search import run as search_run

    assert search_run.main(["space=classes_quick", "trials=7", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Defaults below are those of space=classes_quick" in out
    assert any(line.split()[:2] == ["trials", "7"] for line in out.splitlines())
    assert any(line.split()[:2] == ["model.family", "timm"] for line in out.splitlines())
    assert search_run.main(["--help", "space=nope"]) == 2  # help on a bad command line names the error
    assert "unknown space 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["ensembling.select", "ensembling.export", "ensembling.predict", "ensembling.refit", "ensembling.pseudo", "ensembling.distill", "ensembling.score", "ensembling.lb", "trainables.fit", "trainables.inspect"])
def test_main_answers_help_in_process(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    assert importlib.import_module(module).main(["--help"]) == 0
    assert "usage: python -m " + module in capsys.readouterr().out


def test_every_ensembling_key_has_a_meaning_and_the_choices_match_the_code() -> None:
    from ensembling import distill, export, lb, predict, pseudo, refit, score, select
    from ensembling.scoring.nested import NESTED_SPLITS

    for command in (select.SELECT, export.EXPORT, predict.PREDICT, refit.REFIT, pseudo.PSEUDO, distill.DISTILL, score.SCORE, lb.LB):
        assert all(key.meaning for key in command.keys.values())
    assert select.SELECT.keys["nested.split"].typed.choices == NESTED_SPLITS
    assert select.SELECT.keys["budget.seconds"].default == select.Budget.seconds
    assert select.SELECT.keys["max_steps"].default == select.GreedyConfig.max_steps
