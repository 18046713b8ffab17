"""Write a submission: ``python -m ensembling.predict model=DIR images=DIR sample=CSV out=CSV``.

Before any model runs: ``out`` must be a file we may write (not a folder, not inside the export), the
weights are checked, and every test image the sample names is decoded (a pool of readers, a progress
bar): a missing or garbage image is one line naming it. Then images are read ahead by the pool, predicted
in batches of one size, encoded in the contest's pixel order as they come (masks are never all held),
and the whole file is validated before it is written. A sidecar ``<out>.ensemble.json`` names the
ensemble, so ``python -m ensembling.lb`` can record a leaderboard score against it. ``bench=true``
prints seconds per image, the projected time for the budget's image count, and what selection expected.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ensembling.cli import COUNT, FLAG, TEXT, Command, Key, Typed, command

PREDICT = Command(
    "python -m ensembling.predict model=EXPORT_DIR images=DIR sample=CSV out=CSV [key=value ...]",
    "Write a submission: an exported ensemble predicts the test images in the sample submission's layout.",
    {
        "model": Key("the folder ensembling.export wrote"),
        "images": Key("the folder of test images"),
        "sample": Key("the contest's sample submission: the rows (and their order) to write"),
        "out": Key("the submission CSV to write: a new file, or one this command wrote before"),
        "batch_size": Key("images per forward pass", 8, COUNT),
        "device": Key("cpu or cuda (null: cuda where there is one)", None, TEXT),
        "workers": Key("threads that read and decode images ahead of the model", 4, Typed(int, 1)),
        "bench": Key("also time each stage (read, model, post-processing, RLE) and print it", False, FLAG),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    PREDICT.answer_early(sys.argv[1:])

from tqdm import tqdm

from ensembling.manifest import read_manifest
from ensembling.places import check_file_target
from ensembling.predict_classes import predict_classes
from ensembling.predictor import Predictor
from ensembling.read_ahead import read_ahead
from ensembling.submission import SampleLayout, build_submission, read_sample, validate_submission, write_submission
from trainables.atomic import write_json
from trainables.contract import ENSEMBLE_JSON, sidecar
from trainables.data.images import read_rgb
from trainables.data.predictions import predict_into
from trainables.data.rle import rle_encode


def _decode_all(layout: SampleLayout, images: Path, sample: Path, pool: ThreadPoolExecutor) -> dict[str, tuple[int, int]]:
    """Every image decoded once (then dropped): sizes for the batches, and a bad file found before any model runs."""
    if not images.is_dir():
        raise FileNotFoundError(f"images={images}: image folder not found")
    ids = layout.image_ids()
    for image_id in ids:
        if not (images / image_id).is_file():
            raise FileNotFoundError(f"{images / image_id}: image {image_id} of {sample} not found")

    def shape(image_id: str) -> tuple[int, int]:
        return read_rgb(images / image_id).shape[:2]

    shapes = tqdm(pool.map(shape, ids), total=len(ids), desc="checking images", unit="img", leave=False)
    return dict(zip(ids, shapes, strict=True))


def _batches(ids: list[str], shapes: dict[str, tuple[int, int]], size: int) -> list[list[str]]:
    """Batches of images of one size (a model batch needs one size)."""
    by_shape: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id in ids:
        by_shape[shapes[image_id]].append(image_id)
    return [group[i : i + size] for group in by_shape.values() for i in range(0, len(group), size)]


def predict(
    model: Path,
    images: Path,
    sample: Path,
    out: Path,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 4,
    bench: bool = False,
) -> dict[str, Any]:
    out = out.expanduser()
    check_file_target(out, {"export folder": model})
    check_file_target(sidecar(out), {"export folder": model})
    began = time.perf_counter()
    manifest = read_manifest(model / ENSEMBLE_JSON)
    if manifest.get("kind") == "classification":  # image labels: the sample's label or probability columns
        record = predict_classes(manifest, model, images, sample, out, batch_size, device, workers)
        if bench:
            print(bench_lines(manifest, record["images"], record["predicting_seconds"], record["seconds"]))
        return record
    predictor = Predictor(model, device)
    # --- data layer (issue 11): formats that write their own layout (carvana CSV, folder PNG masks) ---
    if predictor.manifest.get("data", {}).get("format") in ("carvana", "folder"):
        own_sample = None if str(sample).lower() in ("", "none") else sample
        return predict_into(predictor.manifest["data"], images, own_sample, out, predictor.masks, batch_size)
    # ---
    layout = read_sample(sample).for_classes(predictor.class_ids)
    unknown = sorted(set(layout.class_ids()) - set(predictor.class_ids))
    if unknown:
        raise ValueError(f"{sample}: ClassId {unknown[0]} is not one the model predicts ({predictor.class_ids})")
    order = predictor.manifest["rle_order"]
    wanted = set(layout.keys)
    rles: dict[tuple[str, int], str] = {}
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        shapes = _decode_all(layout, images, sample, pool)
        started = time.perf_counter()
        bar = tqdm(total=len(shapes), desc="predicting", unit="img")
        for batch, pixels in read_ahead(_batches(layout.image_ids(), shapes, batch_size), lambda i: images / i, pool):
            for image_id, masks in zip(batch, predictor.masks(pixels), strict=True):
                for channel, class_id in enumerate(predictor.class_ids):
                    if (image_id, class_id) in wanted:
                        rles[(image_id, class_id)] = rle_encode(masks[channel], order)
            bar.update(len(batch))
        bar.close()
    predicting = time.perf_counter() - started
    frame = build_submission(layout, rles)
    validate_submission(frame, layout, shapes)
    write_submission(frame, out)
    seconds = time.perf_counter() - began
    manifest = predictor.manifest
    record = {
        "ensemble_id": manifest.get("ensemble_id"),
        "models": manifest.get("models", "folds"),
        "oof_score": manifest.get("oof_score"),
        "submission_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "images": len(shapes),
        "seconds": seconds,
        "device": str(predictor.device),
    }
    write_json(sidecar(out), record)
    filled = sum(1 for rle in rles.values() if rle)
    print(f"Wrote {out}: {len(frame)} rows, {filled} with a mask, {len(shapes)} images in {seconds:.1f} s")
    if predictor.gate is not None:
        expected = (manifest.get("gate") or {}).get("segmented_share")
        print(f"Gate: segmented {predictor.segmented} of {len(shapes)} images, the rest judged clean in every class"
              + (f" (OOF: {expected:.1%} segmented)" if isinstance(expected, float) else ""))
    if bench:
        print(bench_lines(manifest, len(shapes), predicting, seconds))
    return record


def bench_lines(manifest: dict[str, Any], images: int, predicting: float, total: float) -> str:
    """Seconds per image (models only, and the whole command), projected to the budget's image count."""
    budget = manifest.get("budget") or {}
    count = int(budget.get("images", images))
    per_image, per_image_all = predicting / max(images, 1), total / max(images, 1)
    lines = [
        f"bench: {per_image * 1000:.1f} ms per image predicting, {per_image_all * 1000:.1f} ms with loading and checking ({images} images)",
        f"bench: projected {per_image_all * count:.0f} s for the budget's {count} images",
    ]
    if "expected_seconds" in budget:
        lines.append(f"bench: selection expected {budget['expected_seconds']:.0f} s (budget {budget.get('seconds', float('nan')):.0f} s)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    def body() -> None:
        args: dict[str, Any] = PREDICT.parse(argv)
        paths = {k: Path(args[k]).expanduser() for k in ("model", "images", "sample", "out")}
        predict(
            **paths,
            batch_size=args.get("batch_size", 8),
            device=args.get("device") or None,
            workers=args.get("workers", 4),
            bench=args.get("bench", False),
        )

    return command(body)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
