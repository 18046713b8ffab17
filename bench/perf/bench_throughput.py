"""A trial's training throughput against a bare PyTorch loop of the same model, batch, size and precision.

    python bench/perf/bench_throughput.py out=OUT.json                           # CPU: a tiny Unet, 1 thread, fp32
    python bench/perf/bench_throughput.py out=OUT.json gpu=true                  # Unet-resnet34, bf16, channels_last, 16 x 256x1600
    python bench/perf/bench_throughput.py out=OUT.json gpu=true processes=4      # ... and 4 trial processes sharing the GPU

Both sides train on the same pre-made batches of random tensors (pinned in host memory, copied to the
device each step, as a loader's batches are), so the ratio measures only what the trial's loop adds:
``trainables.loop.train_epoch`` with our optimizer, per-step schedule, loss and precision handling,
against the ten lines a user writes. The sides alternate for ``repeats`` rounds and the best round of
each counts. No Ray, no data layer. Prints a table and writes the numbers to OUT.json.

Other keys (unset ones take the CPU or GPU preset): ``encoder``, ``depth``, ``decoder=[256,128,64]``,
``batch``, ``height``, ``width``, ``classes=4``, ``precision``, ``channels_last=false``, ``compile=true``,
``steps``, ``warmup``, ``repeats=3``, ``distinct=4`` (pre-made batches, cycled), ``threads=1`` (CPU mode).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from core.config import TrialConfig, from_flat
from core.models import build_model
from ensembling.cli import COUNT, FLAG, TEXT, Typed, command, parse_args
from trainables.loop import FoldRun, autocast, autocast_dtype, train_epoch
from trainables.losses import get_loss
from trainables.optim import make_optimizer, make_schedule


def trial_config(args: SimpleNamespace) -> TrialConfig:
    flat = {
        "model.arch": "Unet",
        "model.encoder": args.encoder,
        "model.encoder_depth": args.depth,
        "train.batch_size": args.batch,
        "train.precision": args.precision,
        "train.channels_last": args.channels_last,
        "train.compile": args.compile,
        "train.loss": "bce_dice",
    }
    if args.decoder:
        flat["model.decoder_channels"] = args.decoder
    return from_flat(TrialConfig, flat)


def make_batches(args: SimpleNamespace, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.distinct):
        images = torch.randn(args.batch, 3, args.height, args.width, generator=generator)
        masks = (torch.rand(args.batch, args.classes, args.height, args.width, generator=generator) > 0.9).float()
        if device.type == "cuda":
            images, masks = images.pin_memory(), masks.pin_memory()
        batches.append((images, masks))
    return batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model: torch.nn.Module, batches: list, steps: int, device: torch.device, dtype: torch.dtype | None, channels_last: bool) -> float:
    """What a user writes: AdamW, autocast, BCE + soft Dice, no scheduler. Returns images per second."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()
    _sync(device)
    began = time.perf_counter()
    for step in range(steps):
        images, masks = batches[step % len(batches)]
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(images).float()
            probs = torch.sigmoid(logits).flatten(2)
            target = masks.flatten(2)
            dice = 1 - (2 * (probs * target).sum(-1) + 1) / (probs.sum(-1) + target.sum(-1) + 1)
            loss = F.binary_cross_entropy_with_logits(logits, masks) + dice.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return steps * batches[0][0].shape[0] / (time.perf_counter() - began)


def trial_loop(model: torch.nn.Module, batches: list, steps: int, device: torch.device, dtype: torch.dtype | None, cfg: TrialConfig) -> float:
    """The trial's own epoch loop over the same batches. Returns images per second."""
    optimizer = make_optimizer("adamw", model, 1e-3, 1e-4, 0.9)
    loader = [batches[step % len(batches)] for step in range(steps)]  # a loader is anything with len and iter
    run = FoldRun(
        fold=0,
        seed=0,
        model=model,
        forward=torch.compile(model) if cfg.train.compile else model,
        optimizer=optimizer,
        scheduler=make_schedule("cosine", optimizer, steps, 0, 1),
        scaler=torch.amp.GradScaler(device.type) if dtype == torch.float16 else None,
        ema=None,
        augment=None,  # type: ignore[arg-type]
        generator=torch.Generator(),
        train_loader=loader,  # type: ignore[arg-type]
        val_loader=[],  # type: ignore[arg-type]
        val_rows=np.zeros(0, int),
    )
    _sync(device)
    out = train_epoch(run, get_loss(cfg.train.loss), device, dtype)
    return out["images"] / out["seconds"]


def new_model(cfg: TrialConfig, classes: int, device: torch.device, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg.model, classes).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def measure(args: SimpleNamespace) -> dict:
    """Alternate bare and trial rounds on one device; the best round of each side counts."""
    device = torch.device("cuda" if args.gpu else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cfg = trial_config(args)
    dtype = autocast_dtype(args.precision, device)
    channels_last = args.channels_last  # the trainer uses it on a CPU too
    batches = make_batches(args, device)
    result: dict = {"bare": [], "trial": [], "peak_gib": {}}
    sides = ["trial"] if args.only_trial else ["bare", "trial"]
    for side in sides:  # warm-up: cuDNN autotuning, allocator, compile
        model = new_model(cfg, args.classes, device, channels_last)
        run_side(side, model, batches, args.warmup, device, dtype, cfg, channels_last)
    for _ in range(args.repeats):
        for side in sides:
            model = new_model(cfg, args.classes, device, channels_last)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            result[side].append(run_side(side, model, batches, args.steps, device, dtype, cfg, channels_last))
            if device.type == "cuda":
                result["peak_gib"][side] = torch.cuda.max_memory_allocated(device) / 1024**3
            del model
    return result


def run_side(side: str, model, batches, steps, device, dtype, cfg, channels_last) -> float:  # type: ignore[no-untyped-def]
    if side == "bare":
        return bare_loop(model, batches, steps, device, dtype, channels_last)
    return trial_loop(model, batches, steps, device, dtype, cfg)


def concurrent(args: SimpleNamespace) -> dict:
    """``processes`` trial processes on one GPU at once (as Ray packs fractional trials), summed."""
    outs = [Path(args.out).with_suffix(f".proc{i}.json") for i in range(args.processes)]
    base = [sys.executable, __file__, "gpu=true", "only_trial=true", "repeats=1", f"steps={args.steps}", f"warmup={args.warmup}"]
    base += [f"encoder={args.encoder}", f"batch={args.batch}", f"height={args.height}", f"width={args.width}"]
    base += [f"precision={args.precision}", f"distinct={args.distinct}", f"channels_last={str(args.channels_last).lower()}"]
    procs = [subprocess.Popen([*base, f"out={out}"]) for out in outs]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise ValueError(f"a concurrent trial process failed (exit codes {codes}); its error is printed above")
    each = [json.loads(out.read_text()) for out in outs]
    return {"per_process": [e["trial_img_s"] for e in each], "sum": sum(e["trial_img_s"] for e in each), "peak_gib": [e["peak_gib"].get("trial") for e in each]}


USAGE = ("python bench/perf/bench_throughput.py out=OUT.json [gpu=true] [processes=0] [encoder=NAME] [depth=N] [decoder=[256,128,64]] "
         "[batch=N] [height=N] [width=N] [classes=4] [precision=fp32|bf16|fp16] [channels_last=true] [compile=false] "
         "[steps=N] [warmup=N] [repeats=3] [distinct=4] [threads=1]")
# gpu: Unet-resnet34, bf16, channels_last, batch 16, 256x1600 unless overridden; processes: also run this many trial
# processes at once on the GPU; only_trial: what each of those processes runs (no bare loop, no table)
KEYS = {"gpu": FLAG, "processes": Typed(int, 0), "only_trial": FLAG, "encoder": TEXT, "depth": COUNT, "decoder": None,
        "batch": COUNT, "height": COUNT, "width": COUNT, "classes": COUNT, "precision": TEXT, "channels_last": FLAG,
        "compile": FLAG, "steps": COUNT, "warmup": Typed(int, 0), "repeats": COUNT, "distinct": COUNT, "threads": COUNT}
DEFAULTS = {"gpu": False, "processes": 0, "only_trial": False, "encoder": None, "depth": None, "decoder": None, "batch": None,
            "height": None, "width": None, "classes": 4, "precision": None, "channels_last": True, "compile": False,
            "steps": None, "warmup": None, "repeats": 3, "distinct": 4, "threads": 1}


def decoder_channels(value: object) -> list[int] | None:
    """``decoder=[256,128,64]``: one positive integer per decoder block, or unset."""
    if value is None:
        return None
    if not (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"decoder must be a list of integers >= 1, one per decoder block, got {value!r} (e.g. decoder=[256,128,64])")
    return value


def main(argv: list[str]) -> int:
    def body() -> None:
        args = SimpleNamespace(**{**DEFAULTS, **parse_args(argv, ["out"], KEYS, USAGE)})
        args.decoder = decoder_channels(args.decoder)
        run(args)

    return command(body)


def run(args: SimpleNamespace) -> None:
    gpu = {"encoder": "resnet34", "depth": 5, "batch": 16, "height": 256, "width": 1600, "precision": "bf16", "steps": 40, "warmup": 15}
    cpu = {"encoder": "resnet18", "depth": 3, "batch": 8, "height": 64, "width": 64, "precision": "fp32", "steps": 30, "warmup": 5}
    for key, value in (gpu if args.gpu else cpu).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.gpu and not torch.cuda.is_available():
        raise ValueError("gpu=true asked for, but torch sees no CUDA device; leave gpu= out to measure on the CPU")
    if not args.gpu:
        torch.set_num_threads(args.threads)
    measured = measure(args)
    report = {
        "device": torch.cuda.get_device_name() if args.gpu else f"cpu ({torch.get_num_threads()} threads)",
        "model": f"Unet-{args.encoder} depth {args.depth}",
        "batch": args.batch,
        "size": [args.height, args.width],
        "precision": args.precision,
        "channels_last": bool(args.channels_last),
        "compile": args.compile,
        "torch": torch.__version__,
        "trial_img_s": max(measured["trial"]),
        "peak_gib": measured["peak_gib"],
        "rounds": {k: measured[k] for k in ("bare", "trial")},
    }
    if not args.only_trial:
        report["bare_img_s"] = max(measured["bare"])
        report["ratio"] = report["trial_img_s"] / report["bare_img_s"]
        report["ratio_median"] = float(np.median(measured["trial"]) / np.median(measured["bare"]))
    if args.processes:
        del measured
        torch.cuda.empty_cache()
        report["concurrent"] = concurrent(args)
    Path(args.out).write_text(json.dumps(report, indent=2))
    if not args.only_trial:
        print_table(report)


def print_table(report: dict) -> None:
    peak = report["peak_gib"]
    print(f"{report['device']}, {report['model']}, batch {report['batch']}, {report['size'][0]}x{report['size'][1]}, {report['precision']}, channels_last={report['channels_last']}")
    print(f"{'loop':<28}{'img/s':>10}{'peak GiB':>10}")
    print(f"{'bare PyTorch':<28}{report['bare_img_s']:>10.1f}{peak.get('bare', float('nan')):>10.2f}")
    print(f"{'trial (trainables.loop)':<28}{report['trial_img_s']:>10.1f}{peak.get('trial', float('nan')):>10.2f}")
    print(f"{'ratio trial / bare':<28}{report['ratio']:>10.3f}   (of the medians: {report['ratio_median']:.3f})")
    if "concurrent" in report:
        c = report["concurrent"]
        print(f"{len(c['per_process'])} trial processes at once: " + " + ".join(f"{v:.1f}" for v in c["per_process"]) + f" = {c['sum']:.1f} img/s; peak GiB each {c['peak_gib']}")


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    sys.exit(main(sys.argv[1:]))
