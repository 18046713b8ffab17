"""Data-loader images/s at Severstal size (1600x256), epoch 1 and 2, 0/1/2 workers, beside the training step.

    python bench/perf/bench_loader.py [images=48] [batch=8] [steps=2] [json=out.json]

On the synthetic set (real Severstal size, JPEG), three ways to feed a trial:

- ``decode``: every epoch decodes every JPEG and mask again (no cache);
- ``memory``: the per-trial in-memory dict cache (``make_cache``) that trials used before; each
  DataLoader worker fills its own copy, and workers are started again each epoch, so with workers it
  decodes again every epoch;
- ``disk``: the study's on-disk cache (``study_cache``), built once (its build time is shown apart),
  memory-mapped by every worker and every later trial.

Beside them, the model's own training step (Unet resnet18, encoder_weights None, forward + backward +
step on the same batch size and size) in images/s on this machine, so the loader's share is visible.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader

import core.data  # noqa: F401
from core.config import ModelConfig
from core.data.cache import DiskCache
from core.data.dataset import SegmentationDataset, make_cache
from core.data.synthetic import read_synthetic
from core.models import build_model
from ensembling.cli import COUNT, TEXT, command, parse_args

SIZE = (256, 1600)


def loader_rate(dataset: SegmentationDataset, workers: int, batch: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)
    began = time.perf_counter()
    n = sum(len(images) for images, _ in loader)
    return n / (time.perf_counter() - began)


def step_rate(batch: int, steps: int) -> float:
    model = build_model(ModelConfig(), 4)
    optimiser = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.randn(batch, 3, *SIZE), (torch.rand(batch, 4, *SIZE) > 0.9).float()
    model.train()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        began = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - began)
    return batch / min(times[1:])


USAGE = "python bench/perf/bench_loader.py [images=48] [batch=8] [steps=2] [json=OUT.json]"
KEYS = {"images": COUNT, "batch": COUNT, "steps": COUNT, "json": TEXT}
DEFAULTS = {"images": 48, "batch": 8, "steps": 2, "json": ""}


def main(argv: list[str]) -> int:
    return command(lambda: run(SimpleNamespace(**{**DEFAULTS, **parse_args(argv, [], KEYS, USAGE)})))


def run(args: SimpleNamespace) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    results: dict = {"images": args.images, "batch": args.batch, "cpus": os.cpu_count(), "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        data = read_synthetic(Path(tmp) / "synthetic", images=args.images)
        ids = data.image_ids
        began = time.perf_counter()
        disk = DiskCache(Path(tmp) / "cache", data, ids, SIZE)
        results["disk_build_img_s"] = len(ids) / (time.perf_counter() - began)
        print(f"{len(ids)} synthetic images at {SIZE[1]}x{SIZE[0]}, batch {args.batch}; disk cache built at "
              f"{results['disk_build_img_s']:.0f} img/s (once per study and size)")
        print(f"{'cache':<8} {'workers':>7} {'epoch 1 img/s':>14} {'epoch 2 img/s':>14}")
        for mode in ("decode", "memory", "disk"):
            for workers in (0, 1, 2):
                cache = {"decode": None, "memory": make_cache(len(ids), SIZE, 4), "disk": disk}[mode]
                dataset = SegmentationDataset(data, ids, SIZE, cache=cache)
                rates = [loader_rate(dataset, workers, args.batch) for _ in range(2)]
                results[f"{mode}_w{workers}"] = rates
                print(f"{mode:<8} {workers:>7} {rates[0]:>14.1f} {rates[1]:>14.1f}")
    results["train_step_img_s"] = step_rate(args.batch, args.steps)
    print(f"training step (Unet resnet18, batch {args.batch}, {SIZE[1]}x{SIZE[0]}, {torch.get_num_threads()} threads): "
          f"{results['train_step_img_s']:.2f} img/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
