"""The offline predictor must not need Ray, MLflow, Optuna, the fold stratifier or pandas (a Kaggle kernel)."""

from __future__ import annotations

import subprocess
import sys


def test_predict_imports_nothing_of_the_search() -> None:
    code = "import sys, ensembling.predict; print(sorted(m for m in ('ray', 'mlflow', 'optuna', 'iterstrat', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
