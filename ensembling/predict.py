"""Write a submission: ``python -m ensembling.predict model=DIR images=DIR sample=CSV out=CSV``.

Before any model runs: ``out`` must be a new file or one predict wrote (its sidecar holds its checksum);
another plain file only with ``overwrite=true``, never an input (the sample, an image, the export, a
study: ``core.targets``); ``device=`` must be one torch can use here. Then the weights are checked, and every test image the sample names is decoded (a pool of readers, a progress
bar): a missing or garbage image is one line naming it. Then images are read ahead by the pool, predicted
in batches of one size, encoded in the contest's pixel order as they come (masks are never all held),
and the whole file is validated before it is written. A sidecar ``<out>.ensemble.json`` names the
ensemble, so ``python -m ensembling.lb`` can record a leaderboard score against it. ``bench=true``
prints seconds per image, the projected time for the budget's image count, and what selection expected.
"""

from __future__ import annotations

import hashlib
import json
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
        "device": Key("cpu, cuda or cuda:N (null: cuda where there is one); checked before any work", None, TEXT),
        "workers": Key("threads that read and decode images ahead of the model", 4, Typed(int, 1)),
        "bench": Key("also print ms per image and the time projected for the budget's images", False, FLAG),
        "overwrite": Key("replace an existing out= this command did not write (never the sample, an image or an export's file)", False, FLAG),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    PREDICT.answer_early(sys.argv[1:])

from tqdm import tqdm

from core.atomic import write_json
from core.contract import ENSEMBLE_JSON, SIDECAR_SUFFIX, sidecar
from core.data.images import read_rgb
from core.data.predictions import predict_into
from core.data.rle import rle_encode
from core.targets import check_file_target
from ensembling.runtime.manifest import Manifest, read_manifest
from ensembling.runtime.predict_classes import predict_classes
from ensembling.runtime.predictor import Predictor
from ensembling.runtime.read_ahead import read_ahead
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


def predict(
    model: Path,
    images: Path,
    sample: Path,
    out: Path | str,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 4,
    bench: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    out = check_out(out, model, images, sample, overwrite)
    began = time.perf_counter()
    manifest = read_manifest(model / ENSEMBLE_JSON)
    if manifest.is_classification:  # image labels: the sample's label or probability columns
        record = predict_classes(manifest, model, images, sample, out, batch_size, device, workers)
        if bench:
            print(bench_lines(manifest, record["images"], record["predicting_seconds"], record["seconds"]))
        return record
    predictor = Predictor(model, device)
    # --- data layer (issue 11): formats that write their own layout (carvana CSV, folder PNG masks) ---
    fmt = predictor.manifest.data.get("format")
    if fmt in ("carvana", "folder"):
        own_sample = None if str(sample).lower() in ("", "none") else sample
        written = predict_into(predictor.manifest.data, images, own_sample, out, predictor.masks, batch_size)
        if fmt == "carvana":  # a CSV: its sidecar lets the next run replace it, and names the ensemble for lb
            write_json(sidecar(out), _record(predictor, out, written, time.perf_counter() - began))
        return written  # type: ignore[return-value]
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
    manifest = predictor.manifest
    record = _record(predictor, out, len(shapes), seconds)
    write_json(sidecar(out), record)
    filled = sum(1 for rle in rles.values() if rle)
    print(f"Wrote {out}: {len(frame)} rows, {filled} with a mask, {len(shapes)} images in {seconds:.1f} s")
    if predictor.gate is not None:
        expected = predictor.gate.section.segmented_share
        print(f"Gate: segmented {predictor.segmented} of {len(shapes)} images, the rest judged clean in every class"
              + (f" (OOF: {expected:.1%} segmented)" if isinstance(expected, float) else ""))
    if bench:
        print(bench_lines(manifest, len(shapes), predicting, seconds))
    return record


def _record(predictor: Predictor, out: Path, images: int, seconds: float) -> dict[str, Any]:
    """The sidecar: which ensemble wrote ``out``, and its checksum (how a later run knows the file is ours)."""
    manifest = predictor.manifest
    return {
        "ensemble_id": manifest.ensemble_id,
        "models": manifest.models,
        "oof_score": manifest.oof_score,
        "submission_sha256": _sha256(out),
        "images": images,
        "seconds": seconds,
        "device": str(predictor.device),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecar_record(path: Path) -> dict[str, Any] | None:
    """The record a sidecar of ours holds (a JSON object naming a checksum), else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("submission_sha256"), str) else None


def wrote_submission(out: Path) -> bool:
    """True when ``out`` is a file predict wrote and nobody changed since: its sidecar holds its checksum."""
    record = _sidecar_record(sidecar(out))
    return record is not None and record["submission_sha256"] == _sha256(out)


def check_out(out: Path | str, model: Path, images: Path, sample: Path, overwrite: bool = False) -> Path:
    """``out`` and its sidecar, before any model loads: new or ours, or (overwrite=true) a plain file that is no input."""
    inputs = {"sample": sample, "images folder": images, "export folder": model}
    path = check_file_target(out, "out", inputs, wrote_submission, f"no sidecar {Path(out).name}{SIDECAR_SUFFIX} with its checksum", overwrite)
    mark = "not a prediction record"
    check_file_target(sidecar(path), "out", inputs, lambda p: _sidecar_record(p) is not None, mark, overwrite, f"submission.csv{SIDECAR_SUFFIX}")
    return path


def check_device(device: str | None) -> str | None:
    """``device=`` when it is parsed: cpu, cuda or cuda:N that torch can use here (None: cuda when present)."""
    if device is None or device == "":
        return None
    import torch

    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device}: torch sees no CUDA device here; use device=cpu (or leave device out)")
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"device={device}: torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return device


def bench_lines(manifest: Manifest, images: int, predicting: float, total: float) -> str:
    """Seconds per image (models only, and the whole command), projected to the budget's image count."""
    budget = manifest.budget
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
        device = check_device(args.get("device"))
        paths = {k: Path(args[k]).expanduser() for k in ("model", "images", "sample")}
        predict(
            **paths,
            out=args["out"],
            batch_size=args.get("batch_size", 8),
            device=device,
            workers=args.get("workers", 4),
            bench=args.get("bench", False),
            overwrite=args.get("overwrite", False),
        )

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
