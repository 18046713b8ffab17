"""Turn the real NEU-Seg steel set into a Severstal-format folder the project has never seen.

    python bench/data/neu_as_severstal.py out=OUT_DIR [source=NEU_SEG_DIR]

NEU-Seg (``source``, by default ../shared/data/neu_seg beside the checkout or above it: 200x200 grey JPEGs, PNG masks 0 background, 1 inclusions,
2 patches, 3 scratches) becomes ``train.csv`` (ImageId,ClassId,EncodedPixels, defective pairs only),
``train_images/``, ``test_images/`` (the source's test split), ``test_truth.csv`` and a
``sample_submission.csv`` in the first Severstal layout (ImageId_ClassId), so the whole chain runs
with ``data=severstal data.classes=3`` and the submission can be scored with ``ensembling.score``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import pandas as pd

from core.data.rle import rle_encode
from ensembling.cli import TEXT, command, parse_args

# ../shared/data beside the checkout, or above it (a worktree)
SHARED = next((p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()), Path("../shared/data"))
SOURCE = SHARED / "neu_seg"


def convert(out: Path, source: Path = SOURCE) -> None:
    test_stems = set((source / "source_split_test.txt").read_text().split())
    for split in ("train_images", "test_images"):
        (out / split).mkdir(parents=True, exist_ok=True)
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


USAGE = "python bench/data/neu_as_severstal.py out=OUT_DIR [source=NEU_SEG_DIR]"


def main(argv: list[str]) -> int:
    def body() -> None:
        args = {"source": str(SOURCE), **parse_args(argv, ["out"], {"source": TEXT}, USAGE)}
        convert(Path(args["out"]), Path(args["source"]))

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
