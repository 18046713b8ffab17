"""The classification branch of ``python -m ensembling.predict`` (an export whose manifest has ``kind: classification``).

Before any model runs, every test image the sample names is found and decoded once (a bad one is one line
naming it); then batches (any sizes: each member resizes to its own) are read ahead by a pool of threads
and predicted, and the submission is built in the sample's layout (``ensembling.runtime.class_submission``),
validated, and written with its sidecar naming the ensemble.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.data.images import read_rgb
from ensembling.runtime.class_predictor import load_class_predictor
from ensembling.runtime.class_submission import (
    build_class_submission,
    image_file,
    read_class_sample,
    validate_class_submission,
    write_class_submission,
)
from ensembling.runtime.manifest import Manifest
from ensembling.runtime.read_ahead import read_ahead
from ensembling.runtime.sidecar import write_record


def predict_classes(manifest: Manifest, model: Path, images: Path, sample: Path, out: Path, batch_size: int, device: str | None, workers: int) -> dict[str, Any]:
    began = time.perf_counter()
    names = list(manifest.class_names)
    layout = read_class_sample(sample, names)
    if not images.is_dir():
        raise FileNotFoundError(f"images={images}: image folder not found")
    files = {image_id: image_file(images, image_id) for image_id in layout.ids}
    predictor = load_class_predictor(model, manifest, device)
    probs: dict[str, np.ndarray] = {}
    decisions: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        list(tqdm(pool.map(lambda i: read_rgb(files[i]).shape, layout.ids), total=len(files), desc="checking images", unit="img", leave=False))
        batches = [layout.ids[i : i + batch_size] for i in range(0, len(layout.ids), batch_size)]
        started = time.perf_counter()
        bar = tqdm(total=len(files), desc="predicting", unit="img")
        for batch, pixels in read_ahead(batches, files.__getitem__, pool):
            p = predictor.probabilities(pixels)
            for image_id, row, decided in zip(batch, p, predictor.decisions(p), strict=True):
                probs[image_id], decisions[image_id] = row, decided
            bar.update(len(batch))
        bar.close()
    predicting = time.perf_counter() - started
    frame = build_class_submission(layout, names, probs, decisions, predictor.multi_label)
    validate_class_submission(frame, layout, names, predictor.multi_label)
    write_class_submission(frame, out)
    seconds = time.perf_counter() - began
    record = write_record(manifest, out, len(files), seconds, predicting, str(predictor.device))
    print(f"Wrote {out}: {len(frame)} rows ({layout.kind} layout), {len(files)} images in {seconds:.1f} s")
    return record
