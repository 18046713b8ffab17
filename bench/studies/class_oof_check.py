"""Does a classification trial's OOF match what its fold models predict through the predictor's path?

    python bench/studies/class_oof_check.py study=STUDY_DIR images=TEST_IMAGES labels=TEST_LABELS_CSV

Takes the study's best complete trial; for each fold model, recomputes its validation images' probabilities
the way the predictor reads an image (``read_rgb``, ``resize_image``, ``to_tensor``, the trial's TTA) and
prints the largest difference from ``oof.npy``, then each fold model's accuracy on the test images
(labels from ``image,label`` rows), the fold average's, and the confusions of test and OOF.
A gap between OOF and test accuracy with differences near 0 is the data, not the pipeline.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
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
from ensembling.cli import command, parse_args

USAGE = "python bench/studies/class_oof_check.py study=STUDY_DIR images=TEST_IMAGES labels=TEST_LABELS_CSV"


def main(argv: list[str]) -> int:
    return command(lambda: run(parse_args(argv, ["study", "images", "labels"], [], USAGE)))


def run(args: dict[str, str]) -> int:
    study = open_study(args["study"])
    folder = StudyFolder(Path(args["study"]))
    trial = max((t for t in folder.trial_folders() if t.complete), key=lambda t: t.read_metrics()["oof_score"])
    cfg = from_flat(TrialConfig, trial.read_config())
    size = scaled_size(study.data.shape, cfg.train.scale, MULTIPLE)
    oof = np.load(trial.oof).astype(np.float64)
    truth = study.truth().argmax(axis=1)
    folds = study.folds["fold"].to_numpy()
    names = list(study.data.class_names)
    with open(args["labels"]) as handle:
        rows = list(csv.DictReader(handle))
    test_truth = np.array([names.index(r["label"]) for r in rows])
    test_images = to_tensor(np.stack([resize_image(read_rgb(Path(args["images"]) / r["image"]), size) for r in rows]))
    total = np.zeros((len(rows), len(names)))
    for k in range(study.n_folds):
        model = load_weights(build_model(cfg.model, len(names), load_weights=False), trial.weights(k)).eval()
        idx = np.flatnonzero(folds == k)
        val_images = to_tensor(np.stack([resize_image(read_rgb(study.data.image_path(study.image_ids[i])), size) for i in idx]))
        with torch.no_grad():
            val = predict_labels_tta(model, val_images, cfg.tta, study.multi_label).numpy()
            test = predict_labels_tta(model, test_images, cfg.tta, study.multi_label).numpy()
        total += test
        print(f"trial {trial.trial_id} fold {k}: max |recomputed - OOF| {np.abs(val - oof[idx]).max():.4f}; "
              f"validation accuracy {(val.argmax(1) == truth[idx]).mean():.3f}; test accuracy {(test.argmax(1) == test_truth).mean():.3f}")
    print(f"fold average, test accuracy {(total.argmax(1) == test_truth).mean():.4f} over {len(rows)} images")
    print("test errors (true, predicted):", dict(Counter((names[a], names[b]) for a, b in zip(test_truth, total.argmax(1), strict=True) if a != b)))
    print("OOF errors (true, predicted):", dict(Counter((names[a], names[b]) for a, b in zip(truth, oof.argmax(1), strict=True) if a != b)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
