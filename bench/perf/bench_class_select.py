"""Time of class-ensemble selection on synthetic OOF: one greedy selection per metric (tuning every blend).

    python bench/perf/bench_class_select.py [images=10000] [classes=10] [candidates=30] [steps=10] [out=OUT.json]

Prints a table (metric, label kind, seconds, greedy steps, seconds per candidate blend tuned) and writes
it as JSON to ``out`` when given. CPU only; set OMP_NUM_THREADS to fix the threads.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from types import SimpleNamespace

import numpy as np

from ensembling.cli import COUNT, TEXT, command, parse_args
from ensembling.scoring.class_knobs import ClassScorer
from ensembling.scoring.greedy import GreedyConfig, greedy_select


def candidates(truth: np.ndarray, n: int, multi: bool, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for i in range(n):
        logits = truth * 2.0 + rng.normal(0, 1.0 + i / n, truth.shape)
        if multi:
            p = 1 / (1 + np.exp(-(logits - 1)))
        else:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
        out.append(p.astype(np.float16))
    return out


USAGE = "python bench/perf/bench_class_select.py [images=10000] [classes=10] [candidates=30] [steps=10] [out=OUT.json]"
KEYS = {"images": COUNT, "classes": COUNT, "candidates": COUNT, "steps": COUNT, "out": TEXT}
DEFAULTS = {"images": 10000, "classes": 10, "candidates": 30, "steps": 10, "out": ""}


def main(argv: list[str]) -> int:
    return command(lambda: run(SimpleNamespace(**{**DEFAULTS, **parse_args(argv, [], KEYS, USAGE)})))


def run(args: SimpleNamespace) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for multi, metrics in ((False, ("accuracy", "log_loss", "roc_auc")), (True, ("macro_f1", "accuracy", "log_loss"))):
        if multi:
            truth = (rng.random((args.images, args.classes)) < 0.2).astype(np.uint8)
        else:
            truth = np.eye(args.classes, dtype=np.uint8)[rng.integers(0, args.classes, args.images)]
        oofs = candidates(truth, args.candidates, multi, rng)
        for metric in metrics:
            scorer = ClassScorer(oofs, truth, metric, multi)
            tuned = 0

            def scores(counts, cands, scorer=scorer):  # type: ignore[no-untyped-def]
                nonlocal tuned
                tuned += len(cands)
                return scorer.scores(counts, cands)

            began = time.perf_counter()
            singles = scores({}, list(range(len(oofs))))
            selection = greedy_select(singles, [1.0] * len(oofs), 1e9, scores, config=GreedyConfig(max_steps=args.steps, patience=args.steps))
            seconds = time.perf_counter() - began
            rows.append({"metric": metric, "multi_label": multi, "seconds": seconds, "steps": len(selection.history) - 1,
                         "blends_tuned": tuned, "ms_per_blend": 1000 * seconds / tuned})
            print(f"{metric:<9} {'multi' if multi else 'single':<6} {seconds:7.1f} s  {len(selection.history) - 1:3d} steps  "
                  f"{tuned:5d} blends  {rows[-1]['ms_per_blend']:7.1f} ms/blend", flush=True)
    record = {"images": args.images, "classes": args.classes, "candidates": args.candidates, "machine": platform.processor() or platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
