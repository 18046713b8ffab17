"""One greedy step (every candidate scored once against the current blend) against the bytes it must read.

    python bench/perf/bench_greedy.py mode=cpu [images=1024] [candidates=8] [json=out.json]
    python bench/perf/bench_greedy.py mode=gpu [images=12568] [candidates=16] [json=out.json]   # needs CUDA; no Ray
    python bench/perf/bench_greedy.py mode=cpu images=2048 candidates=16 select_device=cuda   # select's whole step on CUDA

Other keys: ``chunk=8``, ``noise=16`` (background values are uniform in [0, noise - 4): 16 keeps ~0%, 40 ~10%
of pixels), ``repeats=3``, ``slow_paths=true`` (cpu: also time the dense paths this replaced; minutes under
load), ``device=cuda`` (gpu mode: cuda, or cpu for a dry run; Triton then needs TRITON_INTERPRET=1).

A step reads each candidate's OOF once, plus the blend's members and the truth once per chunk:
``(candidates + members + 1) x images x classes x 64 x 400`` bytes at Severstal's 1/4 scale. Its floor is
that many bytes at the machine's copy bandwidth, measured in the same run (a copy of N bytes moves 2N:
bandwidth = 2N / t). The table gives each path's time, the floor, their ratio, and for the CPU the
projection to Severstal's 12,568 images x 50 candidates.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ensembling.cli import COUNT, FLAG, TEXT, Typed, command, parse_args

CLASSES, H, W = 4, 64, 400
SEVERSTAL_IMAGES, SEVERSTAL_CANDIDATES = 12568, 50


def make_data(images: int, candidates: int, seed: int = 0, noise: int = 16) -> tuple[list[np.ndarray], np.ndarray]:
    """Sparse blobs as truth (1 pair in 8); candidates see them at ~0.67 and fire on a few false blobs, with
    low noise elsewhere: like real OOF, most pixels sit near 0 and most pairs have no pixel over 0.1."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((images, CLASSES, H, W), np.uint8)
    for _ in range(images // 2):
        i, c = rng.integers(images), rng.integers(CLASSES)
        y, x = rng.integers(0, H - 16), rng.integers(0, W - 60)
        truth[i, c, y : y + rng.integers(4, 16), x : x + rng.integers(10, 60)] = 1
    base = truth.astype(np.int16) * 170
    oofs = []
    for _ in range(candidates):
        jitter = rng.integers(0, noise, truth.shape, dtype=np.int16) - 4
        oof = np.clip(base + jitter, 0, 255).astype(np.uint8)
        for _ in range(images // 8):  # false alarms
            i, c, y, x = rng.integers(images), rng.integers(CLASSES), rng.integers(0, H - 8), rng.integers(0, W - 20)
            oof[i, c, y : y + 6, x : x + 16] = 120
        oofs.append(oof)
    return oofs, truth


def copy_bandwidth(nbytes: int = 1 << 29, repeats: int = 5) -> float:
    """Bytes per second moved by a memcpy (reads + writes), best of a few."""
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * nbytes / best


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_cpu(args: SimpleNamespace) -> dict:
    import ensembling.scoring.blend as blend
    from core.postprocess import Tuner
    from ensembling.scoring import counting
    from ensembling.scoring.blend import BlendScorer

    oofs, truth = make_data(args.images, args.candidates, noise=args.noise)
    counts = {0: 1, 1: 1}
    dense_bytes = (args.candidates + len(counts) + 1) * truth.nbytes
    bandwidth = copy_bandwidth()
    scale = (SEVERSTAL_CANDIDATES + len(counts) + 1) * SEVERSTAL_IMAGES / ((args.candidates + len(counts) + 1) * args.images)
    everyone = list(range(args.candidates))
    rows = []
    # compact: the pixels where some candidate reaches the lowest threshold, gathered once
    scorer = BlendScorer(oofs, truth, Tuner(), chunk=args.chunk, max_kept_share=1.0)
    gather = _timed(scorer.compact_chunks)
    chunks = scorer.compact_chunks()
    compact_bytes = sum(c.nbytes for c in chunks) + sum(2 * c.values.shape[1] for c in chunks)  # + the uint16 base
    scorer.sums(counts, [0])  # warm-up (numba compiles)
    seconds = min(_timed(lambda: scorer.sums(counts, everyone)) for _ in range(args.repeats))
    rows.append({"path": "compact + numba (the default)", "bytes": compact_bytes, "seconds": seconds, "floor_seconds": compact_bytes / bandwidth,
                 "ratio": seconds / (compact_bytes / bandwidth), "severstal_step_seconds": seconds * scale, "gather_seconds": gather,
                 "kept_share": sum(c.values.shape[1] for c in chunks) / truth.size})
    paths = [("dense + fused numba (one read per candidate)", True, True), ("dense + numba per chunk (before)", False, True), ("dense + numpy bincount", False, False)]
    for name, fused, use_numba in paths[: 3 if args.slow_paths else 1]:
        if use_numba and counting.numba is None:
            continue
        scorer = BlendScorer(oofs, truth, Tuner(), chunk=args.chunk, compact=False, fused=fused)
        original = blend.count_blend
        blend.count_blend = lambda *a, _use=use_numba, _f=original, **k: _f(*a, use_numba=_use, **k)
        try:
            scorer.sums(counts, [0])
            seconds = min(_timed(lambda s=scorer: s.sums(counts, everyone)) for _ in range(args.repeats))
        finally:
            blend.count_blend = original
        rows.append({"path": name, "bytes": dense_bytes, "seconds": seconds, "floor_seconds": dense_bytes / bandwidth,
                     "ratio": seconds / (dense_bytes / bandwidth), "severstal_step_seconds": seconds * scale})
    if args.select_device:  # what `select device=cuda` runs: the step through BlendScorer on the device, tuner on the CPU
        scorer = BlendScorer(oofs, truth, Tuner(), compact=False, device=args.select_device)
        scorer.sums(counts, everyone)  # warm-up: compiles, and copies the OOF to the device when they fit
        seconds = min(_timed(lambda s=scorer: s.sums(counts, everyone)) for _ in range(args.repeats))
        rows.append({"path": f"select device={args.select_device}: {scorer.path}", "bytes": dense_bytes, "seconds": seconds, "floor_seconds": dense_bytes / bandwidth,
                     "ratio": seconds / (dense_bytes / bandwidth), "severstal_step_seconds": seconds * scale})
    if counting.numba is not None:  # the kernel alone, without the tuner's scoring of every setting
        from core.metrics import THRESHOLDS
        from ensembling.scoring.fused import StepChunk

        def kernel_only() -> None:
            workspace: dict = {}
            for start in range(0, args.images, blend.STEP_CHUNK):
                window = slice(start, start + blend.STEP_CHUNK)
                step = StepChunk([(oofs[i][window], c) for i, c in counts.items()], truth[window], THRESHOLDS, workspace=workspace)
                for k in everyone:
                    step.count(oofs[k][window])

        kernel_only()
        seconds = min(_timed(kernel_only) for _ in range(args.repeats))
        rows.append({"path": "  of which the fused counts alone", "bytes": dense_bytes, "seconds": seconds, "floor_seconds": dense_bytes / bandwidth,
                     "ratio": seconds / (dense_bytes / bandwidth), "severstal_step_seconds": seconds * scale})
    # the floor uses the best copy bandwidth seen (measured again after the paths: the load moves)
    again = copy_bandwidth()
    if again > bandwidth:
        for row in rows:
            row["floor_seconds"] = row["bytes"] / again
            row["ratio"] = row["seconds"] / row["floor_seconds"]
        bandwidth = again
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threading = counting.numba.threading_layer() if counting.numba is not None else "-"
    threads = counting.numba.get_num_threads() if counting.numba is not None else 1
    return {"mode": "cpu", "numba_threading_layer": threading, "numba_threads": threads, "images": args.images, "candidates": args.candidates, "noise": args.noise, "step_bytes": dense_bytes,
            "copy_bandwidth_GBps": bandwidth / 1e9, "threads": os.cpu_count(), "load_average": load,
            "machine": platform.processor() or platform.machine(), "rows": rows}


def run_gpu(args: SimpleNamespace) -> dict:
    import torch

    from ensembling.scoring.counting_gpu import PATHS, device_copy_bandwidth, reference_counts

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("mode=gpu needs CUDA; run `python bench/perf/bench_greedy.py mode=cpu` here (or mode=gpu device=cpu for a dry run)")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    pairs = args.images * CLASSES
    rng = torch.Generator(device=device).manual_seed(0)
    started = time.perf_counter()
    truth = (torch.rand((pairs, H * W), device=device, generator=rng) < 0.03).to(torch.uint8)
    cands = torch.randint(0, 12, (args.candidates, pairs, H * W), device=device, dtype=torch.uint8, generator=rng)
    for k in range(args.candidates):
        cands[k] += truth * 170  # in place: no second copy of the candidates
    base = cands[0].to(torch.int16) + cands[1].to(torch.int16)  # the blend holds two members
    weight = 3
    step_bytes = args.candidates * pairs * H * W + base.numel() * 2 + truth.numel()
    bandwidth = device_copy_bandwidth(device, nbytes=1 << 31 if device.type == "cuda" else 1 << 26)
    floor = step_bytes / bandwidth
    # correctness first: every path's counts equal the CPU reference on a slice
    check = slice(0, min(pairs, 64))
    want = reference_counts(base[check].cpu().numpy(), weight, cands[2, check].cpu().numpy(), truth[check].cpu().numpy())
    rows = []
    for name, path in PATHS.items():
        try:
            got = path(base[check], weight, cands[2:3, check], truth[check])
            ok = all(np.array_equal(g[0].cpu().numpy(), w) for g, w in zip(got, want, strict=True))
            path(base, weight, cands[:1], truth)  # warm-up / compile
            sync()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                path(base, weight, cands, truth)
                sync()
                times.append(time.perf_counter() - start)
            seconds = min(times)
            rows.append({"path": name, "seconds": seconds, "floor_seconds": floor, "ratio": seconds / floor, "counts_match_cpu": ok})
        except Exception as error:  # a path that cannot run here is reported, not fatal
            rows.append({"path": name, "error": f"{type(error).__name__}: {str(error)[:300]}"})
    return {"mode": "gpu", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)", "images": args.images, "candidates": args.candidates,
            "step_bytes": step_bytes, "copy_bandwidth_GBps": bandwidth / 1e9, "torch": torch.__version__, "rows": rows,
            "wall_seconds": time.perf_counter() - started}


def print_table(result: dict) -> None:
    where = result.get("device") or f"{result['machine']}, {result['threads']} cores"
    print(f"one greedy step: {result['images']} images x {CLASSES} x {H}x{W}, {result['candidates']} candidates, "
          f"{result['step_bytes'] / 1e9:.2f} GB to read; copy bandwidth {result['copy_bandwidth_GBps']:.1f} GB/s ({where})")
    if "load_average" in result:
        print(f"load average while measuring: {result['load_average']:.1f} on {result['threads']} cores; numba: {result['numba_threads']} threads, {result['numba_threading_layer']} layer")
    print(f"{'path':<40} {'read MB':>9} {'step ms':>10} {'floor ms':>10} {'ratio':>7}  extra")
    for row in result["rows"]:
        if "error" in row:
            print(f"{row['path']:<40} {'-':>10} {'-':>10} {'-':>7}  {row['error']}")
            continue
        extra = f"Severstal x 50: {row['severstal_step_seconds']:.0f} s/step" if "severstal_step_seconds" in row else f"counts match CPU: {row['counts_match_cpu']}"
        if "gather_seconds" in row:
            extra += f"; kept {100 * row['kept_share']:.1f}% of pixels, gathered once in {row['gather_seconds']:.1f} s"
        read = row.get("bytes", result["step_bytes"]) / 1e6
        print(f"{row['path']:<40} {read:>9.1f} {1000 * row['seconds']:>10.1f} {1000 * row['floor_seconds']:>10.1f} {row['ratio']:>7.2f}  {extra}")


USAGE = ("python bench/perf/bench_greedy.py mode=cpu|gpu [images=1024|12568] [candidates=8|16] [chunk=8] [noise=16] [repeats=3] "
         "[select_device=cuda] [slow_paths=true] [json=OUT.json] [device=cuda]")
KEYS = {"images": COUNT, "candidates": COUNT, "chunk": COUNT, "noise": COUNT, "repeats": COUNT,
        "select_device": TEXT, "slow_paths": FLAG, "json": TEXT, "device": TEXT}
# images and candidates default by mode: 1024 and 8 on the CPU, 12568 and 16 on the GPU
DEFAULTS = {"images": None, "candidates": None, "chunk": 8, "noise": 16, "repeats": 3, "select_device": "", "slow_paths": False, "json": "", "device": "cuda"}


def main(argv: list[str]) -> int:
    def body() -> None:
        given = parse_args(argv, ["mode"], KEYS, USAGE)
        Typed(str, choices=("cpu", "gpu")).check("mode", given["mode"])
        args = SimpleNamespace(**{**DEFAULTS, **given})
        args.json = Path(args.json) if args.json else None
        run(args)

    return command(body)


def run(args: SimpleNamespace) -> None:
    args.images = args.images or (1024 if args.mode == "cpu" else SEVERSTAL_IMAGES)
    args.candidates = args.candidates or (8 if args.mode == "cpu" else 16)
    result = run_cpu(args) if args.mode == "cpu" else run_gpu(args)
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
