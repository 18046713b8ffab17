"""Score a submission against known labels: ``python -m ensembling.score submission=CSV truth=CSV images=DIR``.

For a holdout of your own (or the synthetic set's ``test_truth.csv``): the competition metric, mean
Dice over every image-class pair of the submission (1 when both are empty), beside the score an
all-empty submission would get, so a model that loses to predicting nothing is seen at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ensembling.cli import command, parse_args
from ensembling.submission import read_sample, read_submission
from trainables.data.images import image_shape
from trainables.data.rle import rle_decode
from trainables.data.severstal import read_label_rows
from trainables.metrics import mean_dice


def score_submission(submission: Path, truth_csv: Path, images: Path) -> dict[str, float]:
    """Mean pair Dice of the submission and of an all-empty one, over the submission's pairs."""
    predicted = read_submission(submission, read_sample(submission))
    truth = {(r.ImageId, r.ClassId): r.EncodedPixels for r in read_label_rows(truth_csv).itertuples(index=False)}
    shapes: dict[str, tuple[int, int]] = {}
    scores, empty_scores = [], []
    for (image_id, class_id), rle in predicted.items():
        if image_id not in shapes:
            shapes[image_id] = image_shape(images / image_id)
        true_mask = rle_decode(truth.get((image_id, class_id), ""), shapes[image_id]).astype(bool)
        scores.append(mean_dice(rle_decode(rle, shapes[image_id])[None, None], true_mask[None, None]))
        empty_scores.append(1.0 if not true_mask.any() else 0.0)
    return {"score": float(np.mean(scores)), "all_empty": float(np.mean(empty_scores)), "pairs": len(scores)}


def main(argv: list[str]) -> int:
    usage = "python -m ensembling.score submission=CSV truth=TRAIN_CSV_LAYOUT images=DIR"

    def body() -> None:
        args: dict[str, Any] = parse_args(argv, ["submission", "truth", "images"], [], usage)
        result = score_submission(Path(args["submission"]), Path(args["truth"]), Path(args["images"]))
        print(f"mean Dice {result['score']:.4f}  (all-empty {result['all_empty']:.4f}) over {result['pairs']} pairs")

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
