"""Post-processing as a registry of steps, tuned per class on OOF and applied the same way by the predictor.

One module per step; registering it is the import line below.
"""

from core.postprocess import area, component, gate, threshold  # noqa: F401  (one line per step: registers it)
from core.postprocess.apply import apply_postprocessing, steps_of
from core.postprocess.base import STEPS, PairStats, Step, get_step, list_steps
from core.postprocess.tune import (
    GATE_BLEND_MAX,
    Tuned,
    Tuner,
    describe_values,
    image_probs_from,
    tune,
    tune_arrays,
    tuned_score,
)

__all__ = [
    "GATE_BLEND_MAX",
    "STEPS",
    "PairStats",
    "Step",
    "Tuned",
    "Tuner",
    "apply_postprocessing",
    "describe_values",
    "get_step",
    "image_probs_from",
    "list_steps",
    "steps_of",
    "tune",
    "tune_arrays",
    "tuned_score",
]
