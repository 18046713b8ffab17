"""Score a submission against known labels: ``python -m ensembling.score submission=CSV truth=CSV images=DIR [metric=NAME | study=DIR]``.

For a holdout of your own (or the synthetic set's ``test_truth.csv``): the study's metric (``metric=``,
or the one in ``study=DIR``'s study.yaml; by default ``dice_pairs``, mean Dice over every image-class
pair, 1 when both are empty), beside the score an all-empty submission would get, so a model that loses
to predicting nothing is seen at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ensembling.cli import Command, Key, command

SCORE = Command(
    "python -m ensembling.score submission=CSV truth=TRAIN_CSV_LAYOUT images=DIR [metric=NAME | study=DIR]",
    "Score a submission against known labels, beside the score an all-empty submission would get.",
    {
        "submission": Key("the submission CSV to score"),
        "truth": Key("the known labels, in train.csv's layout (the synthetic set's test_truth.csv)"),
        "images": Key("the folder of the images scored (their sizes decode the RLE)"),
        "metric": Key("dice_pairs, dice_image or iou_dataset (null: the study's, else dice_pairs)", None),
        "study": Key("a study folder whose study.yaml names the metric", None),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    SCORE.answer_early(sys.argv[1:])

import numpy as np

from core.contract import StudyFolder
from core.data.images import image_shape
from core.data.rle import rle_decode
from core.data.severstal import read_label_rows
from core.metrics import get_metric
from ensembling.runtime.submission import read_sample, read_submission


def score_submission(submission: Path, truth_csv: Path, images: Path, metric: str | None = None) -> dict[str, float]:
    """The metric of the submission and of an all-empty one, over the submission's pairs."""
    predicted = read_submission(submission, read_sample(submission))
    truth = {(r.ImageId, r.ClassId): r.EncodedPixels for r in read_label_rows(truth_csv).itertuples(index=False)}
    shapes: dict[str, tuple[int, int]] = {}
    images_order: dict[str, int] = {}
    classes_order: dict[object, int] = {}
    rows = []  # (image, class, predicted area, overlap, true area)
    for (image_id, class_id), rle in predicted.items():
        if image_id not in shapes:
            shapes[image_id] = image_shape(images / image_id)
        true_mask = rle_decode(truth.get((image_id, class_id), ""), shapes[image_id]).astype(bool)
        pred_mask = rle_decode(rle, shapes[image_id]).astype(bool)
        i = images_order.setdefault(image_id, len(images_order))
        c = classes_order.setdefault(class_id, len(classes_order))
        rows.append((i, c, pred_mask.sum(), (pred_mask & true_mask).sum(), true_mask.sum()))
    scorer = get_metric(metric)
    pred, inter, area = (np.zeros((len(images_order), len(classes_order))) for _ in range(3))
    for i, c, p, o, t in rows:
        pred[i, c], inter[i, c], area[i, c] = p, o, t
    present = np.zeros_like(pred, bool)
    for i, c, *_ in rows:
        present[i, c] = True

    def score(p: np.ndarray, o: np.ndarray) -> float:
        values = scorer.pair_values(p, o, area) * present[..., None]  # pairs missing from the submission count for nothing
        return float(scorer.class_scores(values.sum(axis=0)).mean())

    zero = np.zeros_like(pred)
    return {"score": score(pred, inter), "all_empty": score(zero, zero), "pairs": len(rows), "metric": scorer.name}


def metric_of(args: dict[str, Any]) -> str | None:
    """``metric=`` as given, else the study's (study.yaml), else None (the default)."""
    if args.get("metric"):
        return str(args["metric"])
    if args.get("study"):
        return StudyFolder(Path(str(args["study"]))).read_config().get("metric")
    return None


def main(argv: list[str]) -> int:
    def body() -> None:
        args: dict[str, Any] = SCORE.parse(argv)
        result = score_submission(Path(args["submission"]), Path(args["truth"]), Path(args["images"]), metric_of(args))
        print(f"{result['metric']} {result['score']:.4f}  (all-empty {result['all_empty']:.4f}) over {result['pairs']} pairs")

    return command(body)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
