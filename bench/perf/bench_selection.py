"""A whole selection at Severstal size on this machine, and the share of pixels a real study keeps.

    python bench/perf/bench_selection.py mode=synthetic dir=/tmp/selbench [images=12568] [candidates=8] [steps=10] [noise=16] [path=compact|fused] [reuse=true]
    python bench/perf/bench_selection.py mode=study study=studies/quick

``synthetic`` writes memory-mapped OOF of (images, 4, 64, 400) uint8 per candidate to ``dir`` (never all
in memory), then times what ``ensembling.select`` does: gathering the pixels that can pass a threshold,
every single's score, the greedy steps, the component tuning of the chosen blend. ``study`` reports, for
a real study's trials, the share of pixels kept (what a greedy step reads instead of every pixel).
``path=compact`` is what select uses when few pixels can pass (the default), ``fused`` the dense pass;
``reuse=true`` reuses the memmaps already in ``dir``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_greedy import CLASSES, H, W, make_data

from core.postprocess import GATE_BLEND_MAX, Tuner
from ensembling.cli import COUNT, FLAG, TEXT, Typed, command, parse_args
from ensembling.scoring.blend import BlendScorer
from ensembling.scoring.greedy import GreedyConfig
from ensembling.select import choose


def write_memmaps(folder: Path, images: int, candidates: int, noise: int) -> tuple[list[np.ndarray], np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    shape = (images, CLASSES, H, W)
    truth = np.lib.format.open_memmap(folder / "truth.npy", "w+", np.uint8, shape)
    oofs = [np.lib.format.open_memmap(folder / f"oof{k}.npy", "w+", np.uint8, shape) for k in range(candidates)]
    for start in range(0, images, 512):
        size = min(512, images - start)
        parts, t = make_data(size, candidates, seed=start, noise=noise)
        truth[start : start + size] = t
        for k in range(candidates):
            oofs[k][start : start + size] = parts[k]
    for array in [truth, *oofs]:
        array.flush()
    return [np.load(folder / f"oof{k}.npy", mmap_mode="r") for k in range(candidates)], np.load(folder / "truth.npy", mmap_mode="r")


def synthetic(args: SimpleNamespace) -> None:
    start = time.perf_counter()
    files = [args.dir / "truth.npy", *(args.dir / f"oof{k}.npy" for k in range(args.candidates))]
    if args.reuse and all(f.exists() for f in files) and np.load(files[0], mmap_mode="r").shape[0] == args.images:
        oofs, truth = [np.load(f, mmap_mode="r") for f in files[1:]], np.load(files[0], mmap_mode="r")
        print(f"reusing {args.candidates} x {truth.nbytes / 1e9:.2f} GB of OOF in {args.dir}")
    else:
        oofs, truth = write_memmaps(args.dir, args.images, args.candidates, args.noise)
        print(f"wrote {args.candidates} x {truth.nbytes / 1e9:.2f} GB of OOF in {time.perf_counter() - start:.0f} s (not counted)")
    load = os.getloadavg()[0]
    scorer = BlendScorer(oofs, truth, Tuner(), compact=args.path == "compact")
    times = {}
    start = time.perf_counter()
    print(f"counting path: {scorer.path}")
    times["gather the pixels that can pass a threshold" if args.path == "compact" else "nothing gathered (the dense fused pass)"] = time.perf_counter() - start
    kept = sum(c.values.shape[1] for c in scorer.compact_chunks()) / truth.size if args.path == "compact" else 1.0
    start = time.perf_counter()
    selection, tuned, _ = choose(scorer, [1.0] * args.candidates, 1e9, GreedyConfig(max_steps=args.steps, patience=args.steps), GATE_BLEND_MAX)
    times[f"singles + {len(selection.history) - 1} greedy steps + component tuning"] = time.perf_counter() - start
    print(f"{args.images} images x {CLASSES} x {H}x{W}, {args.candidates} candidates, kept {100 * kept:.2f}% of pixels")
    for name, seconds in times.items():
        print(f"  {name:<60} {seconds:7.1f} s")
    print(f"  members {selection.counts}, tuned {tuned.score:.4f} (stages {tuned.stage_scores})")
    print(f"  total {sum(times.values()):.1f} s; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores")


def study(args: SimpleNamespace) -> None:
    from core.data.study import open_study
    from ensembling.select import split_candidates

    opened = open_study(args.study)
    candidates, _ = split_candidates(opened)
    scorer = BlendScorer([c.oof() for c in candidates], opened.truth(), Tuner(), max_kept_share=1.0)
    chunks = scorer.compact_chunks()
    kept = sum(c.values.shape[1] for c in chunks) / opened.truth().size
    print(f"{args.study}: {len(candidates)} candidates, OOF {opened.truth().shape}, kept {100 * kept:.2f}% of pixels")


USAGE = ("python bench/perf/bench_selection.py mode=synthetic|study [dir=/tmp/selbench] [images=12568] [candidates=8] [steps=10] "
         "[noise=16] [path=compact|fused] [reuse=true] [study=STUDY_DIR]")
KEYS = {"dir": TEXT, "images": COUNT, "candidates": COUNT, "steps": COUNT, "noise": COUNT, "study": TEXT,
        "path": Typed(str, choices=("compact", "fused")), "reuse": FLAG}
DEFAULTS = {"dir": "/tmp/selbench", "images": 12568, "candidates": 8, "steps": 10, "noise": 16, "study": "", "path": "compact", "reuse": False}


def main(argv: list[str]) -> int:
    def body() -> None:
        given = parse_args(argv, ["mode"], KEYS, USAGE)
        Typed(str, choices=("synthetic", "study")).check("mode", given["mode"])
        args = SimpleNamespace(**{**DEFAULTS, **given})
        args.dir = Path(args.dir)
        if args.mode == "study" and not args.study:
            raise ValueError(f"mode=study needs study=STUDY_DIR; usage: {USAGE}")
        synthetic(args) if args.mode == "synthetic" else study(args)

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
