"""Score a classification study's best trial on held-out images with hidden labels.

    python bench/studies/classes_holdout.py study=studies/classes_quick images=/tmp/neu_split/test/images \
        labels=/tmp/neu_split/test_labels.csv [trials=1] [out=ours.json]

Takes the ``trials`` best complete trials by OOF score, averages every fold model's probabilities (with
each trial's TTA, at its training size) over the test images, and prints accuracy against the hidden
labels beside the trials' OOF score. A stand-in for the ensemble's predict while that is built; it uses
the trial folders exactly as the contract (core/contract.py) writes them.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from core.config import TrialConfig, from_flat
from core.contract import StudyFolder
from core.data.images import read_rgb
from core.data.study import open_study
from core.models import build_model, load_weights
from core.preprocess import MULTIPLE, resize_image, scaled_size, to_tensor
from core.tta import predict_labels_tta
from ensembling.cli import COUNT, TEXT, command, parse_args

USAGE = "python bench/studies/classes_holdout.py study=STUDY_DIR images=TEST_IMAGES labels=TEST_LABELS_CSV [trials=1] [out=OUT.json]"


def main(argv: list[str]) -> int:
    return command(lambda: run({"trials": 1, **parse_args(argv, ["study", "images", "labels"], {"trials": COUNT, "out": TEXT}, USAGE)}))


def run(args: dict) -> int:
    study = open_study(args["study"])
    folder = StudyFolder(Path(args["study"]))
    finished = [t for t in folder.trial_folders() if t.complete and t.read_metrics()["complete"]]
    ranked = sorted(finished, key=lambda t: -t.read_metrics()["oof_score"])[: args["trials"]]
    with open(args["labels"]) as handle:
        rows = list(csv.DictReader(handle))
    names = list(study.data.class_names)
    truth = np.array([names.index(r["label"]) for r in rows])
    raw = [read_rgb(Path(args["images"]) / r["image"]) for r in rows]
    total = np.zeros((len(rows), len(names)))
    for trial in ranked:
        cfg = from_flat(TrialConfig, trial.read_config())
        size = scaled_size(study.data.shape, cfg.train.scale, MULTIPLE)
        images = to_tensor(np.stack([resize_image(image, size) for image in raw]))
        for fold in range(study.n_folds):
            model = load_weights(build_model(cfg.model, len(names), load_weights=False), trial.weights(fold)).eval()
            with torch.no_grad():
                probs = torch.cat([predict_labels_tta(model, images[i : i + 32], cfg.tta, study.multi_label) for i in range(0, len(images), 32)])
            total += probs.numpy()
    result = {
        "test_accuracy": float((total.argmax(axis=1) == truth).mean()),
        "trials": [t.trial_id for t in ranked],
        "oof_scores": [t.read_metrics()["oof_score"] for t in ranked],
        "metric": study.config.metric,
        "test_images": len(rows),
    }
    print(json.dumps(result, indent=2))
    if args.get("out"):
        Path(args["out"]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
