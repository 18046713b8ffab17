"""What a kernel spends per test image besides the models: decode, resize back, post-processing, RLE.

    python bench/perf/bench_kernel_overhead.py [height=256] [width=1600] [classes=4] [images=20]

Prints milliseconds per image for each part on this machine (one thread), the numbers
``ensembling/scoring/budget.py`` keeps as ``OVERHEAD_MS``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch

from core.data.rle import rle_encode
from core.postprocess import apply_postprocessing
from core.preprocess import resize_probs
from ensembling.cli import COUNT, Typed, command, parse_args


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - start) / repeats


USAGE = "python bench/perf/bench_kernel_overhead.py [height=256] [width=1600] [classes=4] [images=20]"
KEYS = {"height": Typed(int, 4), "width": Typed(int, 4), "classes": COUNT, "images": COUNT}
DEFAULTS = {"height": 256, "width": 1600, "classes": 4, "images": 20}


def main(argv: list[str]) -> int:
    return command(lambda: run(SimpleNamespace(**{**DEFAULTS, **parse_args(argv, [], KEYS, USAGE)})))


def run(args: SimpleNamespace) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    h, w, c = args.height, args.width, args.classes
    image = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 2)
    small = torch.from_numpy(rng.random((1, c, h // 2, w // 2)).astype(np.float32))
    probs = np.zeros((c, h, w), np.float32)
    probs[:, h // 4 : h // 2, w // 4 : w // 3] = 0.9
    post = {"steps": ["threshold", "min_component", "min_area", "gate"], "per_class": [{"threshold": 0.5, "min_component": 0.0005, "min_area": 0.002, "gate": 0.6}] * c}
    masks = apply_postprocessing(probs, post)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.jpg"
        cv2.imwrite(str(path), image)
        parts = {
            "decode (jpg)": timed(lambda: cv2.imread(str(path)), args.images),
            "resize back (per member)": timed(lambda: resize_probs(small, (h, w)), args.images),
            "post-processing": timed(lambda: apply_postprocessing(probs, post), args.images),
            "rle": timed(lambda: [rle_encode(m) for m in masks], args.images),
        }
    print(f"{h}x{w}, {c} classes, ms per image on one thread:")
    for name, ms in parts.items():
        print(f"  {name:<26} {ms:7.2f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
