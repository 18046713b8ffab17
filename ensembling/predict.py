"""Write a submission: ``python -m ensembling.predict model=DIR images=DIR sample=CSV out=CSV``.

The sample submission decides which images and classes to predict and the file's layout; every
image is checked to exist before any model runs, masks are predicted at each image's own size and
encoded in the contest's pixel order, and the whole file is validated before it is written.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ensembling.cli import parse_args
from ensembling.predictor import Predictor
from ensembling.submission import SampleLayout, build_submission, read_sample, validate_submission, write_submission
from trainables.data.images import image_shape, read_rgb
from trainables.data.predictions import predict_into
from trainables.data.rle import rle_encode
from trainables.errors import exit_status


def _check_inputs(layout: SampleLayout, images: Path, predictor: Predictor, sample: Path) -> dict[str, tuple[int, int]]:
    """Image sizes from their headers; a missing image or unknown class is reported before any work."""
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: image folder not found")
    unknown = sorted(set(layout.class_ids()) - set(predictor.class_ids))
    if unknown:
        raise ValueError(f"{sample}: ClassId {unknown[0]} is not one the model predicts ({predictor.class_ids})")
    shapes = {}
    for image_id in layout.image_ids():
        path = images / image_id
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image {image_id} of {sample} not found")
        shapes[image_id] = image_shape(path)
    return shapes


def _batches(ids: list[str], shapes: dict[str, tuple[int, int]], size: int) -> list[list[str]]:
    """Batches of images of one size (a model batch needs one size)."""
    by_shape: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id in ids:
        by_shape[shapes[image_id]].append(image_id)
    return [group[i : i + size] for group in by_shape.values() for i in range(0, len(group), size)]


def predict(model: Path, images: Path, sample: Path, out: Path, batch_size: int = 8, device: str | None = None) -> int:
    predictor = Predictor(model, device)
    # --- data layer (issue 11): formats that write their own layout (carvana CSV, folder PNG masks) ---
    if predictor.manifest.get("data", {}).get("format") in ("carvana", "folder"):
        own_sample = None if str(sample).lower() in ("", "none") else sample
        return predict_into(predictor.manifest["data"], images, own_sample, out, predictor.masks, batch_size)
    # ---
    layout = read_sample(sample).for_classes(predictor.class_ids)
    shapes = _check_inputs(layout, images, predictor, sample)
    order = predictor.manifest["rle_order"]
    wanted = set(layout.keys)
    rles: dict[tuple[str, int], str] = {}
    began = time.perf_counter()
    for batch in _batches(layout.image_ids(), shapes, batch_size):
        for image_id, masks in zip(batch, predictor.masks([read_rgb(images / i) for i in batch]), strict=True):
            for channel, class_id in enumerate(predictor.class_ids):
                if (image_id, class_id) in wanted:
                    rles[(image_id, class_id)] = rle_encode(masks[channel], order)
    frame = build_submission(layout, rles)
    validate_submission(frame, layout, shapes)
    write_submission(frame, out)
    seconds = time.perf_counter() - began
    filled = sum(1 for rle in rles.values() if rle)
    print(f"Wrote {out}: {len(frame)} rows, {filled} with a mask, {len(shapes)} images in {seconds:.1f} s")
    return len(frame)


def main(argv: list[str]) -> int:
    usage = "python -m ensembling.predict model=EXPORT_DIR images=DIR sample=CSV out=CSV [batch_size=8] [device=cpu|cuda]"

    def body() -> None:
        args: dict[str, Any] = parse_args(argv, ["model", "images", "sample", "out"], ["batch_size", "device"], usage)
        paths = {k: Path(args[k]).expanduser() for k in ("model", "images", "sample", "out")}
        predict(**paths, batch_size=int(args.get("batch_size", 8)), device=args.get("device"))

    return exit_status(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
