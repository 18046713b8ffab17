"""Split NEU-DET into a training folder and a test folder whose labels are hidden, stratified by class.

    python bench/data/neu_det_split.py src=../shared/data/neu_det_cls out=/tmp/neu_split [test=0.3] [seed=0]

Writes ``<out>/train/<class>_<n>.jpg`` (read with ``data=classes data.root=<out>/train``),
``<out>/test/images/test_<k>.jpg`` (names carry no class) and ``<out>/test_labels.csv`` (image,label),
which only the scoring reads. The same seed gives the same split.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np

from ensembling.cli import Typed, command, parse_args

MARKER = ".neu_det_split"  # written into out: a later run may replace only a folder that has it
WRITTEN = ("train", "test", "test_labels.csv")


def clear(out: Path) -> None:
    """Make room for a split: an empty or missing folder, or one this script wrote (its marker), of which
    only what the script writes is removed. Anything else is refused, never deleted."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; give out= a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ValueError(f"{out}: a folder this script did not write (no {MARKER}); give out= a new or empty folder")
        for name in WRITTEN:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by bench/data/neu_det_split.py\n")


def split(src: Path, out: Path, test: float, seed: int) -> dict[str, int]:
    images = src / "IMAGES" if (src / "IMAGES").is_dir() else src
    by_class: dict[str, list[Path]] = {}
    for path in sorted(images.iterdir()):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}:
            by_class.setdefault(path.stem.rpartition("_")[0], []).append(path)
    if not by_class:
        raise ValueError(f"{images}: no <class>_<n> images found")
    clear(out)
    (out / "train").mkdir(parents=True)
    (out / "test" / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    held: list[tuple[Path, str]] = []
    for name, paths in sorted(by_class.items()):
        order = rng.permutation(len(paths))
        n_test = max(1, round(test * len(paths)))
        for i in order[:n_test]:
            held.append((paths[i], name))
        for i in order[n_test:]:
            shutil.copy(paths[i], out / "train" / paths[i].name)
    rows = []
    for k, i in enumerate(rng.permutation(len(held))):
        path, name = held[i]
        image = f"test_{k:04d}{path.suffix.lower()}"
        shutil.copy(path, out / "test" / "images" / image)
        rows.append((image, name))
    with open(out / "test_labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        writer.writerows(rows)
    return {"train": sum(len(p) for p in by_class.values()) - len(rows), "test": len(rows), "classes": len(by_class)}


USAGE = "python bench/data/neu_det_split.py src=NEU_DET_DIR out=DIR [test=0.3] [seed=0]"
KEYS = {"test": Typed(float, 0, above=True), "seed": Typed(int, 0)}


def main(argv: list[str]) -> int:
    return command(lambda: run({"test": 0.3, "seed": 0, **parse_args(argv, ["src", "out"], KEYS, USAGE)}))


def run(args: dict) -> int:
    if args["test"] >= 1:
        raise ValueError(f"test must be a share of the images below 1, got {args['test']!r}")
    counts = split(Path(args["src"]), Path(args["out"]), args["test"], args["seed"])
    print(f"{counts['train']} training images, {counts['test']} test images (labels hidden in test_labels.csv), {counts['classes']} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
