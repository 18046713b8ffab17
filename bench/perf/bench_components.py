"""What tuning the post-processing costs on a Severstal-size OOF blend, stage by stage.

    python bench/perf/bench_components.py [images=12568] [chunk=256]

Stage 1 (threshold x minimum area x gate from per-pair counts) and stage 2 (connected components
computed once per pair at each class's chosen threshold, then component size x area x gate) on
12,568 images x 4 classes x 64 x 400 uint8, generated a chunk at a time (never all in memory).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_greedy import make_data

from core.metrics import pair_counts
from core.postprocess import PairStats, Tuner, image_probs_from
from ensembling.cli import COUNT, command, parse_args

USAGE = "python bench/perf/bench_components.py [images=12568] [chunk=256]"
KEYS = {"images": COUNT, "chunk": COUNT}
DEFAULTS = {"images": 12568, "chunk": 256}


def main(argv: list[str]) -> int:
    return command(lambda: run(SimpleNamespace(**{**DEFAULTS, **parse_args(argv, [], KEYS, USAGE)})))


def run(args: SimpleNamespace) -> None:
    tuner = Tuner()
    [step] = tuner.component_steps
    chunks = [(s, min(args.chunk, args.images - s)) for s in range(0, args.images, args.chunk)]
    generate = stage1 = stage2 = 0.0
    total1 = total2 = None
    pairs_with_mask = 0
    tuned = None
    for pass_ in (1, 2):
        for start, size in chunks:
            t0 = time.perf_counter()
            [probs], truth = make_data(size, 1, seed=start)
            t1 = time.perf_counter()
            generate += t1 - t0
            if pass_ == 1:
                counts = pair_counts(probs, truth, tuner.threshold.grid)
                stats = PairStats(counts.pred_area, counts.inter, counts.truth_area, image_probs_from(counts.max_level, None), 64 * 400)
                part = tuner.sums(stats)
                total1 = part if total1 is None else total1 + part
                stage1 += time.perf_counter() - t1
            else:
                stats = tuner.component_stats(probs, truth, image_probs_from(probs.max(axis=(2, 3)), None), tuned, step)
                pairs_with_mask += int((stats.pred[..., 0] > 0).sum())
                part = tuner.sums(stats)
                total2 = part if total2 is None else total2 + part
                stage2 += time.perf_counter() - t1
        if pass_ == 1:
            tuned = tuner.stage1(total1)
    final = tuner.stage2(tuned, total2, step)
    print(f"{args.images} images x 4 classes x 64x400, chunks of {args.chunk}")
    print(f"  stage 1 (threshold x area x gate, {len(tuner.threshold.grid)}x{len(tuner.pair_steps[0].grid)}x{len(tuner.pair_steps[1].grid)}): {stage1:6.1f} s  score {tuned.score:.4f}")
    print(f"  stage 2 (components once per pair, {pairs_with_mask} pairs with a mask):   {stage2:6.1f} s  score {final.score:.4f}")
    print(f"  (generating the data: {generate:.1f} s, not counted)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
