"""The offline predictor must not need Ray, MLflow, Optuna or the fold stratifier (a Kaggle kernel)."""

from __future__ import annotations

import subprocess
import sys


def test_predict_imports_nothing_of_the_search() -> None:
    code = "import sys, ensembling.predict; print(sorted(m for m in ('ray', 'mlflow', 'optuna', 'iterstrat') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
