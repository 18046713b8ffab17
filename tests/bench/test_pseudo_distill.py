"""The pure parts of the pseudo-label and distillation benchmark: the control's epochs, the table, bad keys.
No training runs here (the benchmark itself is bench/studies/pseudo_distill.py)."""

from __future__ import annotations

import pytest
from bench_scripts import load


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return load("bench/studies/pseudo_distill.py", monkeypatch)


def test_the_control_sees_as_many_images_as_round_two(bench) -> None:  # type: ignore[no-untyped-def]
    # a fold of 24 images gains 24 pseudo-labelled ones: twice the images an epoch, so twice the epochs
    assert bench.control_epochs(5, 24, 24) == 10
    assert bench.control_epochs(5, 24, 6) == 6  # 5 x 30 / 24 = 6.25
    assert bench.control_epochs(5, 24, 0) == 5  # nothing kept: the control is the base


def test_the_table_gives_each_set_its_seeds_and_mean(bench) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for seed, shift in ((0, 0.0), (3, 0.1)):
        for i, label in enumerate(bench.SETS):
            rows.append({"seed": seed, "set": label, "oof": 0.5 + i / 100, "test": 0.6 + i / 100 + shift, "train_s": 10.0 * (i + 1), "all_empty": 0.875})
    text = bench.table(rows)
    first = next(line for line in text.splitlines() if line.startswith("| base (A, B)"))
    assert "0.5000 / 0.6000" in first and "0.5000 / 0.7000" in first and "**0.6500**" in first and first.endswith("| 10 |")
    assert "| seed 0 OOF / test | seed 3 OOF / test |" in text and "all-empty per seed: 0.8750 / 0.8750" in text


@pytest.mark.parametrize(("argv", "expected"), [
    (["work=/tmp/x", "images=7"], "images must be an even number >= 8"),
    (["work=/tmp/x", "seeds=0,0"], "splits must be distinct integers"),
    (["work=/tmp/x", "precision=1.5"], "precision must be a share in (0, 1]"),
])
def test_bad_keys_are_one_line_before_anything_is_written(bench, argv, expected, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = [a.replace("/tmp/x", str(tmp_path / "work")) for a in argv]
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()
