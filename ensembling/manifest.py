"""The ensemble manifest, ``ensemble.json``: everything a predictor needs, and where it came from.

Members name their trial (and snapshot, when the candidate was one of its snapshots), weight,
per-fold checkpoints (paths relative to the manifest's folder), model config and TTA; post-processing
lists its steps in the order they apply and each class's value of each (format 1 had a threshold and a
minimum area only, and is still read). The folds hash ties it to one split; ``format_version`` lets a
later reader refuse what it cannot read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.atomic import write_json
from trainables.preprocess import MULTIPLE, scaled_size

if TYPE_CHECKING:  # building a manifest needs a study; reading one (the offline predictor) must not
    from ensembling.greedy import Selection
    from ensembling.store import TrialRecord
    from trainables.data.study import Study
    from trainables.postprocess import Tuned

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def _member(study: Study, trial: TrialRecord, weight: float) -> dict[str, Any]:
    scale = float(trial.config["train.scale"])
    return {
        "trial_id": trial.trial_id,
        "candidate_id": trial.candidate_id,
        "snapshot": trial.snapshot,
        "weight": weight,
        "oof_score": trial.score,
        "config": trial.config,
        "tta": trial.config["tta"],
        "input_size": list(scaled_size(study.data.shape, scale, MULTIPLE)),
        "checkpoints": [str(trial.checkpoint(k).relative_to(study.root)) for k in trial.folds],
        "ms_per_image": trial.ms_per_image,
    }


def build_manifest(
    study: Study,
    trials: list[TrialRecord],
    selection: Selection,
    post: Tuned,
    budget: dict[str, Any],
    best_single: TrialRecord,
    best_single_score: float,
    estimates: dict[str, Any],
) -> dict[str, Any]:
    height, width = study.data.shape
    members = [_member(study, trials[i], w) for i, w in selection.weights.items()]
    return {
        "format_version": FORMAT_VERSION,
        "study": str(study.root),
        "folds_hash": study.folds_hash,
        "num_classes": study.data.num_classes,
        "class_ids": list(range(1, study.data.num_classes + 1)),
        "image_shape": [height, width],
        "rle_order": study.data.order,
        "data": {"format": study.data.format or study.config.data.format, "mask_mode": study.data.mask_mode},
        "members": members,
        "metric": post.metric,
        "postprocessing": post.to_manifest((height, width)),
        "oof_score": post.score,
        "class_scores": post.class_scores,
        **estimates,
        "best_single": {"trial_id": best_single.candidate_id, "oof_score": best_single_score},
        "budget": budget,
        "history": [{"members": {trials[i].candidate_id: c for i, c in counts.items()}, "score": s} for counts, s in selection.history],
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    write_json(path, manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ensemble manifest (run `python -m ensembling.select` first)")
    manifest = json.loads(path.read_text())
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: format_version must be one of {READABLE_VERSIONS}, got {version!r}; re-run the selection with this version"
        )
    return manifest
