"""The predictor's throughput on one device: fp32 against bf16, one forward pass per TTA view against all
views in one batch, at Severstal's size (256x1600 images, members at 128x800), with random weights.

    python bench/perf/bench_predict.py out=OUT.json [device=cuda] [images=64] [members=2] [folds=5] [batch=8]

No Ray, no study, no network: it writes a synthetic export (Unet/resnet34 members, hflip TTA) to a temp
folder, then times ``Predictor.probabilities`` (models, TTA, resize back, blend) on random images after a
warm-up, and ``Predictor.masks`` (plus post-processing) for the winner. Prints a table and writes JSON.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from core.config import TrialConfig, from_flat, to_flat
from core.models import build_model, save_weights
from core.tta import predict_tta
from ensembling.cli import COUNT, TEXT, command, parse_args
from ensembling.runtime.manifest import SEGMENTATION, Manifest, MemberEntry, write_manifest
from ensembling.runtime.predictor import Predictor


def make_export(folder: Path, members: int, folds: int, classes: int = 4) -> None:
    entries = []
    for m in range(members):
        flat = to_flat(from_flat(TrialConfig, {"model.arch": "Unet", "model.encoder": "resnet34", "tta": "hflip", "train.scale": 0.5}))
        checkpoints = []
        for k in range(folds):
            torch.manual_seed(m * 100 + k)
            path = folder / "members" / f"m{m}" / f"fold{k}.safetensors"
            save_weights(build_model(from_flat(TrialConfig, flat).model, classes, load_weights=False), path)
            checkpoints.append(str(path.relative_to(folder)))
        entries.append(MemberEntry(trial_id=f"m{m}", weight=1 / members, config=flat, tta="hflip", input_size=(128, 800), checkpoints=checkpoints, ms_per_image=0.0))
    manifest = Manifest(
        format_version=1,
        kind=SEGMENTATION,
        num_classes=classes,
        class_ids=list(range(1, classes + 1)),
        rle_order="F",
        members=entries,
        metric="dice_pairs",
        oof_score=0.0,
        postprocessing={"thresholds": [0.5] * classes, "min_area_fractions": [0.001] * classes, "min_area_px": [400] * classes},
        budget={"seconds": 3600, "images": 5506, "expected_seconds": 0},
    )
    write_manifest(folder / "ensemble.json", manifest)


def timed(fn, images: list[np.ndarray], batch: int, device: torch.device) -> float:
    fn(images[:batch])  # warm-up (cuDNN autotune, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for i in range(0, len(images), batch):
        fn(images[i : i + batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - began) / len(images) * 1000


USAGE = "python bench/perf/bench_predict.py out=OUT.json [device=cuda|cpu] [images=64] [members=2] [folds=5] [batch=8]"
KEYS = {"device": TEXT, "images": COUNT, "members": COUNT, "folds": COUNT, "batch": COUNT}


def main(argv: list[str]) -> int:
    def body() -> None:
        defaults = {"device": "cuda" if torch.cuda.is_available() else "cpu", "images": 64, "members": 2, "folds": 5, "batch": 8}
        run(SimpleNamespace(**{**defaults, **parse_args(argv, ["out"], KEYS, USAGE)}))

    return command(body)


def run(args: SimpleNamespace) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (256, 1600, 3), np.uint8) for _ in range(args.images)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_export(Path(tmp), args.members, args.folds)
        predictor = Predictor(tmp, args.device)
        device = predictor.device
        per_view = Predictor._member_probs

        def one_pass_per_view(self, member, batch):  # the previous predictor: a forward pass per view
            return sum(predict_tta(m, batch, member.tta) for m in member.models) / len(member.models)

        for label, bf16, views_together in (("fp32, a pass per view", False, False), ("fp32, views in one batch", False, True), ("bf16, views in one batch", True, True)):
            if bf16 and device.type != "cuda":
                continue
            predictor.bf16 = bf16
            Predictor._member_probs = per_view if views_together else one_pass_per_view
            ms = timed(predictor.probabilities, images, args.batch, device)
            rows.append({"variant": label, "ms_per_image": ms})
        Predictor._member_probs = per_view
        predictor.bf16 = device.type == "cuda"
        ms = timed(lambda b: list(predictor.masks(b)), images, args.batch, device)
        rows.append({"variant": f"{'bf16' if predictor.bf16 else 'fp32'} masks (with post-processing)", "ms_per_image": ms})
    models = args.members * args.folds
    print(f"{args.members} member(s) x {args.folds} folds = {models} Unet/resnet34 at 128x800, hflip TTA, batch {args.batch}, {args.images} images of 256x1600 on {device}")
    for row in rows:
        row["projected_s_5506"] = row["ms_per_image"] * 5506 / 1000
        print(f"  {row['variant']:<40} {row['ms_per_image']:8.2f} ms/image   {row['projected_s_5506']:7.0f} s for 5506 images")
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu", "torch": torch.__version__, **vars(args)}
    Path(args.out).write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
