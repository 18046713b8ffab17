"""Turn the real NEU-Seg steel set into a Severstal-format folder the project has never seen.

    python bench/data/neu_as_severstal.py out=OUT_DIR [source=NEU_SEG_DIR] [seed=S]

NEU-Seg (``source``, by default ../shared/data/neu_seg beside the checkout or above it: 200x200 grey JPEGs, PNG masks 0 background, 1 inclusions,
2 patches, 3 scratches) becomes ``train.csv`` (ImageId,ClassId,EncodedPixels, defective pairs only),
``train_images/``, ``test_images/`` (the source's test split), ``test_truth.csv`` and a
``sample_submission.csv`` in the first Severstal layout (ImageId_ClassId), so the whole chain runs
with ``data=severstal data.classes=3`` and the submission can be scored with ``ensembling.score``.

``seed=S``: instead of the source's split, a random split of all the images with the same sizes (894
train, 447 test), the same for the same seed. ``out`` must be new or empty, or a folder this script
wrote before (its marker), which is then replaced.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.data.rle import rle_encode
from ensembling.cli import TEXT, Typed, command, parse_args

# ../shared/data beside the checkout, or above it (a worktree)
SHARED = next((p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()), Path("../shared/data"))
SOURCE = SHARED / "neu_seg"
MARKER = ".neu_as_severstal"  # written into out: a later run may replace only a folder that has it


def test_stems_of(stems: list[str], source_test: set[str], seed: int | None) -> set[str]:
    """The test images: the source's split (no seed), or as many drawn at random from all of them."""
    if seed is None:
        return set(source_test)
    order = np.random.default_rng(seed).permutation(len(stems))
    return {sorted(stems)[i] for i in order[: len(source_test)]}


def clear(out: Path) -> None:
    """An empty or new ``out``, or one this script wrote (its marker), emptied; anything else is refused."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; give out= a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ValueError(f"{out}: a folder this script did not write (no {MARKER}); give out= a new or empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by bench/data/neu_as_severstal.py\n")


def convert(out: Path, source: Path = SOURCE, seed: int | None = None) -> None:
    stems = sorted(p.stem for p in (source / "images").glob("*.jpg"))
    test_stems = test_stems_of(stems, set((source / "source_split_test.txt").read_text().split()), seed)
    clear(out)
    for split in ("train_images", "test_images"):
        (out / split).mkdir(parents=True)
    rows: dict[str, list[tuple[str, int, str]]] = {"train": [], "test": []}
    for image_path in sorted((source / "images").glob("*.jpg")):
        split = "test" if image_path.stem in test_stems else "train"
        shutil.copy2(image_path, out / f"{split}_images" / image_path.name)
        mask = cv2.imread(str(source / "masks" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        for class_id in (1, 2, 3):
            rle = rle_encode(mask == class_id, "F")
            if rle:
                rows[split].append((image_path.name, class_id, rle))
    columns = ["ImageId", "ClassId", "EncodedPixels"]
    pd.DataFrame(rows["train"], columns=columns).to_csv(out / "train.csv", index=False)
    pd.DataFrame(rows["test"], columns=columns).to_csv(out / "test_truth.csv", index=False)
    test_ids = sorted(p.name for p in (out / "test_images").iterdir())
    sample = [(f"{i}_{c}", "1 1") for i in test_ids for c in (1, 2, 3)]
    pd.DataFrame(sample, columns=["ImageId_ClassId", "EncodedPixels"]).to_csv(out / "sample_submission.csv", index=False)


USAGE = "python bench/data/neu_as_severstal.py out=OUT_DIR [source=NEU_SEG_DIR] [seed=S]"


def main(argv: list[str]) -> int:
    def body() -> None:
        args = {"source": str(SOURCE), "seed": None, **parse_args(argv, ["out"], {"source": TEXT, "seed": Typed(int, 0)}, USAGE)}
        convert(Path(args["out"]), Path(args["source"]), args["seed"])

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
