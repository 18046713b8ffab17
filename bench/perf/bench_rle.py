"""RLE encode and decode against the widely copied Kaggle kernel functions, side by side in one run.

    python bench/perf/bench_rle.py [csv=../shared/data/severstal_real/train_real_subset.csv] [repeats=5] [json=OUT.json]

Every real row (1,429 rows, 256 x 1600, column-major) is decoded by both decoders and the masks
compared; every mask is encoded by both encoders and the strings compared; then each is timed
(per row, the best of ``repeats`` tries, the two functions taking turns; summed over rows). Masks given to the encoders are C-ordered (what a predictor
holds), the same arrays for both. Prints a table; the speed-up is kernel time / ours.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from core.data.rle import rle_decode, rle_encode
from ensembling.cli import COUNT, TEXT, command, parse_args

# ../shared/data beside the checkout, or above it (a worktree)
SHARED = next((p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()), Path("../shared/data"))
DEFAULT_CSV = SHARED / "severstal_real" / "train_real_subset.csv"


# --- The kernel functions, as copied from notebook to notebook in the Severstal contest ----------
def mask2rle(img):
    """img: numpy array, 1 - mask, 0 - background. Returns run length as string formatted."""
    pixels = img.T.flatten()
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def rle2mask(mask_rle, shape=(1600, 256)):
    """mask_rle: run-length as string formatted (start length); shape: (width, height) of the array
    to return. Returns numpy array, 1 - mask, 0 - background."""
    s = mask_rle.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])]
    starts -= 1
    ends = starts + lengths
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, ends):  # noqa: B905  (as copied)
        img[lo:hi] = 1
    return img.reshape(shape).T


# -------------------------------------------------------------------------------------------------


def per_row_best(repeats: int, items: list, works: dict) -> dict[str, float]:
    """Summed over rows, each row's best time per function over ``repeats`` tries; the functions take
    turns on the same row, so load from other processes reaches both alike and the best try filters it."""
    total = dict.fromkeys(works, 0.0)
    clock = time.perf_counter
    for item in items:
        for name, work in works.items():
            best = float("inf")
            for _ in range(repeats):
                began = clock()
                work(item)
                best = min(best, clock() - began)
            total[name] += best
    return total


USAGE = "python bench/perf/bench_rle.py [csv=SEVERSTAL_TRAIN_CSV] [repeats=5] [json=OUT.json]"
KEYS = {"csv": TEXT, "repeats": COUNT, "json": TEXT}  # json: also write the results here


def main(argv: list[str]) -> int:
    return command(lambda: run(SimpleNamespace(**{"csv": str(DEFAULT_CSV), "repeats": 5, "json": "", **parse_args(argv, [], KEYS, USAGE)})))


def run(args: SimpleNamespace) -> None:
    rles = pd.read_csv(args.csv, dtype=str, keep_default_na=False)["EncodedPixels"].tolist()
    shape = (256, 1600)
    masks = [np.ascontiguousarray(rle2mask(r)) for r in rles]
    for rle, mask in zip(rles, masks, strict=True):  # the same answers before any timing
        assert np.array_equal(rle_decode(rle, shape, "F"), mask)
        assert rle_encode(mask, "F") == mask2rle(mask) == rle
    results = {
        **per_row_best(args.repeats, rles, {"decode_kernel_s": rle2mask, "decode_ours_s": lambda r: rle_decode(r, shape, "F")}),
        **per_row_best(args.repeats, masks, {"encode_kernel_s": mask2rle, "encode_ours_s": lambda m: rle_encode(m, "F")}),
    }
    n = len(rles)
    print(f"{n} real Severstal rows, {np.mean([len(r.split()) // 2 for r in rles]):.0f} runs per row on average, "
          f"per-row best of {args.repeats}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'':8} {'kernel us/row':>14} {'ours us/row':>12} {'speed-up':>9}")
    for what in ("decode", "encode"):
        kernel, ours = results[f"{what}_kernel_s"], results[f"{what}_ours_s"]
        results[f"{what}_speedup"] = kernel / ours
        print(f"{what:8} {kernel / n * 1e6:>14.1f} {ours / n * 1e6:>12.1f} {kernel / ours:>8.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": n, **results}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
