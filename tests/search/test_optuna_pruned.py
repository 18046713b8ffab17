"""Trials stopped by ASHA reach Optuna as PRUNED; finished and failed trials keep their states."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from search.optuna_pruned import PrunedAwareOptunaSearch


def drive(searcher: OptunaSearch) -> dict[str, TrialState]:
    """Three trials as Tune's controller reports them: finished, stopped after epoch 1, failed."""
    searcher.set_search_properties("score", "max", {"lr": tune.loguniform(1e-4, 1e-2)})
    for trial_id in ("done", "stopped", "failed"):
        assert searcher.suggest(trial_id) is not None
    searcher.on_trial_result("done", {"score": 0.5, "training_iteration": 1})
    searcher.on_trial_result("stopped", {"score": 0.9, "training_iteration": 1})
    # the controller passes the last result on every completion; only a finished trial reports oof_score
    searcher.on_trial_complete("done", result={"score": 0.6, "oof_score": 0.6, "training_iteration": 2})
    searcher.on_trial_complete("stopped", result={"score": 0.9, "training_iteration": 1})
    searcher.on_trial_complete("failed", error=True)
    states = {}
    for trial_id, ot_trial in searcher._ot_trials.items():
        states[trial_id] = searcher._ot_study.trials[ot_trial.number].state
    return states


def test_a_stopped_trial_is_pruned_and_a_finished_one_complete() -> None:
    searcher = PrunedAwareOptunaSearch(seed=0)
    states = drive(searcher)
    assert states == {"done": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "failed": TrialState.FAIL}
    study = searcher.study
    assert study.best_value == pytest.approx(0.6)  # the truncated 0.9 is not the study's best
    stopped = next(t for t in study.trials if t.state == TrialState.PRUNED)
    assert stopped.intermediate_values == {1: 0.9}


def test_rays_own_searcher_records_the_stopped_trial_as_complete() -> None:
    """The bias this module fixes: without it, the epoch-1 score counts as a finished trial's."""
    states = drive(OptunaSearch(seed=0))
    assert states["stopped"] == TrialState.COMPLETE


REAL_RUN = """
import json, sys
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from search.optuna_pruned import PrunedAwareOptunaSearch

def trainable(config):
    for epoch in range(1, 5):
        score = config["x"] * epoch
        tune.report({"score": score, **({"oof_score": score} if epoch == 4 else {})})

searcher = PrunedAwareOptunaSearch(seed=0)
ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", configure_logging=False)
tuner = tune.Tuner(
    trainable,
    param_space={"x": tune.uniform(0.0, 1.0)},
    tune_config=tune.TuneConfig(
        metric="score", mode="max", search_alg=searcher, num_samples=8, max_concurrent_trials=2,
        scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
    ),
    run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0),
)
results = tuner.fit()
ray.shutdown()
states = [t.state for t in searcher.study.trials]
print(json.dumps({"finished": sum(1 for r in results if "oof_score" in r.metrics),
                  "complete": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED)}))
"""


@pytest.mark.slow
def test_asha_stops_reach_optuna_as_pruned_in_a_real_tune_run(tmp_path) -> None:
    """In a child process: a Ray session of its own, nothing left behind in this one."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", REAL_RUN, str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["complete"] == counts["finished"]
    assert counts["pruned"] == 8 - counts["finished"] > 0
