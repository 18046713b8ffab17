"""The masks branch of ``python -m ensembling.predict`` (an export of a segmentation ensemble).

Every test image the sample names is checked and decoded once before any model runs (a pool of readers, a
bar: a missing or garbage image is one line naming it); then images are read ahead by the pool, predicted
in batches of one size, encoded in the contest's pixel order as they come (masks are never all held), and
the whole file is validated before it is written with its sidecar. Formats that write their own layout
(carvana's CSV, folder's PNG masks) go through ``core.data.predictions``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.data.images import read_rgb
from core.data.predictions import predict_into
from core.data.rle import rle_encode
from ensembling.runtime.manifest import Manifest
from ensembling.runtime.predictor import Predictor
from ensembling.runtime.read_ahead import read_ahead
from ensembling.runtime.sidecar import write_record
from ensembling.runtime.submission import (
    SampleLayout,
    build_submission,
    read_sample,
    validate_submission,
    write_submission,
)


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


def predict_masks(manifest: Manifest, model: Path, images: Path, sample: Path, out: Path, batch_size: int, device: str | None, workers: int) -> dict[str, Any]:
    began = time.perf_counter()
    predictor = Predictor(model, device, manifest)
    # --- data layer (issue 11): formats that write their own layout (carvana CSV, folder PNG masks) ---
    fmt = predictor.manifest.data.get("format")
    if fmt in ("carvana", "folder"):
        own_sample = None if str(sample).lower() in ("", "none") else sample
        written = predict_into(predictor.manifest.data, images, own_sample, out, predictor.masks, batch_size)
        seconds = time.perf_counter() - began
        if fmt == "carvana":  # a CSV: its sidecar lets the next run replace it, and names the ensemble for lb
            return write_record(predictor.manifest, out, written, seconds, seconds, str(predictor.device))
        return {"images": written, "seconds": seconds, "predicting_seconds": seconds}
    # ---
    layout = read_sample(sample).for_classes(predictor.class_ids)
    unknown = sorted(set(layout.class_ids()) - set(predictor.class_ids))
    if unknown:
        raise ValueError(f"{sample}: ClassId {unknown[0]} is not one the model predicts ({predictor.class_ids})")
    order = predictor.manifest.rle_order
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
    record = write_record(predictor.manifest, out, len(shapes), seconds, predicting, str(predictor.device))
    filled = sum(1 for rle in rles.values() if rle)
    print(f"Wrote {out}: {len(frame)} rows, {filled} with a mask, {len(shapes)} images in {seconds:.1f} s")
    if predictor.gate is not None:
        expected = predictor.gate.section.segmented_share
        print(f"Gate: segmented {predictor.segmented} of {len(shapes)} images, the rest judged clean in every class"
              + (f" (OOF: {expected:.1%} segmented)" if isinstance(expected, float) else ""))
    return record
