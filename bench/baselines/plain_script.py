"""The script a competent user writes instead of using this project: the baseline a search must beat.

    python bench/baselines/plain_script.py data=DATA_ROOT out=OUT.csv [epochs=15 | seconds=S] [scale=0.5] [seed=0] [json=OUT.json]

A Severstal folder (train.csv, train_images/, test_images/, sample_submission.csv in either Severstal
layout): smp Unet-resnet18 from scratch at half scale, BCE + Dice, Adam 1e-3, flips; 10% of the training
images held out to choose each class's minimum area at threshold 0.5; then the test images predicted and
written in the sample's layout. Nothing of this package is used but its command-line parsing (score it
with ``python -m ensembling.score``).

``epochs=E`` (default 15): E epochs at a constant learning rate. ``seconds=S`` instead: S is the whole
process's wall time, from its first line (imports and image loading included) to the written
submission. The script keeps back what the holdout and test predictions will take (timed on a holdout
batch after the first epoch, per image, times the holdout and test images), trains with a cosine
schedule that follows the clock to that point, and starts no epoch (as long as the last one) that would
overrun it. ``json=`` writes the epochs trained, the wall time and the budget for a harness to read.
"""

# ruff: noqa: E402  (the clock starts before the imports: they are part of the wall time a budget counts)
import time

BEGAN = time.perf_counter()

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from ensembling.cli import COUNT, POSITIVE, TEXT, Typed, command, parse_args

AREAS = [0, 50, 100, 200, 400, 800, 1600, 3200]
SLACK = 1.15  # the prediction reserve's margin over its timed estimate (the timing batch is small)


def decode(rle, shape):
    mask = np.zeros(shape[0] * shape[1], np.uint8)
    nums = [int(x) for x in str(rle).split()] if isinstance(rle, str) else []
    for start, length in zip(nums[0::2], nums[1::2], strict=True):
        mask[start - 1 : start - 1 + length] = 1
    return mask.reshape(shape, order="F")


def encode(mask):
    pixels = np.concatenate([[0], mask.flatten(order="F"), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs))


def load(folder, ids, side, labels=None, classes=3):
    images, masks = [], []
    for image_id in ids:
        image = cv2.imread(str(folder / image_id))[:, :, ::-1]
        images.append(cv2.resize(image, (side[1], side[0]), interpolation=cv2.INTER_AREA))
        if labels is not None:
            full = np.stack([decode(labels.get((image_id, c + 1)), image.shape[:2]) for c in range(classes)])
            masks.append(np.stack([cv2.resize(m, (side[1], side[0]), interpolation=cv2.INTER_NEAREST) for m in full]))
    x = (np.stack(images).astype(np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float32), torch.tensor(np.stack(masks), dtype=torch.float32) if masks else None


def predict(model, x):
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.sigmoid(model(x[i : i + 32])) for i in range(0, len(x), 32)])


def full_masks(model, x, full):
    """Binary masks at the images' own size (N, classes, H, W)."""
    return F.interpolate(predict(model, x), size=full, mode="bilinear") > 0.5


def test_ids_of(sample: pd.DataFrame) -> tuple[list[str], str]:
    """The test images in the sample's order, and its layout: ImageId_ClassId (first) or ImageId,ClassId (final)."""
    if "ImageId_ClassId" in sample.columns:
        return list(dict.fromkeys(k.rsplit("_", 1)[0] for k in sample.ImageId_ClassId)), "pairs"
    return list(dict.fromkeys(sample.ImageId)), "columns"


def finish_seconds_per_image(model, x, full):
    """What predicting one image costs at the end (forward pass, upsampling, RLE per class), timed on a batch."""
    began = time.perf_counter()
    masks = full_masks(model, x, full).numpy()
    for image in masks:
        for mask in image:
            encode(mask)
    return (time.perf_counter() - began) / len(x)


def train_epoch(model, optimizer, x, y, rng, lr=None):
    """One pass over (x, y) in batches of 16 with flips; ``lr``: a function of nothing giving each step's rate."""
    model.train()
    total = 0.0
    for batch in torch.randperm(len(x)).split(16):
        if lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr()
        xb, yb = x[batch], y[batch]
        if rng.random() < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        if rng.random() < 0.5:
            xb, yb = xb.flip(-2), yb.flip(-2)
        logits = model(xb)
        probs = torch.sigmoid(logits)
        dice = 1 - (2 * (probs * yb).sum((2, 3)) + 1) / (probs.sum((2, 3)) + yb.sum((2, 3)) + 1)
        loss = F.binary_cross_entropy_with_logits(logits, yb) + dice.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    return total / len(x)


def train(model, x, y, rng, epochs, seconds, reserve_images, timing, full):
    """Epochs at a constant rate (``epochs``), or a cosine over the clock (``seconds``): the epochs trained.

    With ``seconds``, training must end by BEGAN + seconds - reserve, where the reserve is the end's
    predictions: ``reserve_images`` images at the per-image time measured on ``timing`` after epoch 1.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    clock = {"start": time.perf_counter(), "reserve": 0.0}  # the reserve is known after epoch 1

    def cosine():
        end = BEGAN + seconds - clock["reserve"]
        share = (time.perf_counter() - clock["start"]) / max(end - clock["start"], 1e-9)
        return 1e-3 * 0.5 * (1 + math.cos(math.pi * min(1.0, share)))

    epoch = 0
    while True:
        start = time.perf_counter()
        loss = train_epoch(model, optimizer, x, y, rng, cosine if seconds else None)
        epoch += 1
        last = time.perf_counter() - start
        if seconds and epoch == 1:
            clock["reserve"] = SLACK * finish_seconds_per_image(model, timing, full) * reserve_images + 1.0
            print(f"prediction reserve {clock['reserve']:.1f} s ({reserve_images} images)", flush=True)
        elapsed = time.perf_counter() - BEGAN
        print(f"epoch {epoch}{'' if seconds else f'/{epochs}'} loss {loss:.4f} {elapsed:.0f}s", flush=True)
        if (not seconds and epoch >= epochs) or (seconds and elapsed + last + clock["reserve"] > seconds):
            return epoch


def min_areas(hp, hy, classes):
    """Each class's minimum predicted area (one of AREAS) with the best holdout Dice at threshold 0.5."""
    best = []
    for c in range(classes):
        def dice(a, c=c):
            pred = hp[:, c] & (hp[:, c].sum((1, 2)) >= a)[:, None, None]
            truth = hy[:, c] > 0
            inter, tot = (pred & truth).sum((1, 2)).float(), (pred.sum((1, 2)) + truth.sum((1, 2))).float()
            return torch.where(tot == 0, 1.0, 2 * inter / tot.clamp(min=1)).mean().item()
        best.append(max(AREAS, key=dice))
        print(f"class {c + 1}: min area {best[-1]} holdout dice {dice(best[-1]):.4f}")
    return best


def write_submission(sample, layout, test_ids, tp, best, classes, out):
    rles = {}
    for i, image_id in enumerate(test_ids):
        for c in range(classes):
            rles[(image_id, c + 1)] = encode(tp[i, c]) if tp[i, c].sum() >= best[c] else ""
    if layout == "pairs":
        sample["EncodedPixels"] = [rles[(k.rsplit("_", 1)[0], int(k.rsplit("_", 1)[1]))] for k in sample.ImageId_ClassId]
    else:
        sample["EncodedPixels"] = [rles[(i, int(c))] for i, c in zip(sample.ImageId, sample.ClassId, strict=True)]
    sample.to_csv(out, index=False)


def run(root, out, epochs=15, scale=0.5, seed=0, seconds=None, json_out=""):
    root = Path(root)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_csv = pd.read_csv(root / "train.csv")
    labels = {(r.ImageId, r.ClassId): r.EncodedPixels for r in train_csv.itertuples()}
    ids = sorted(p.name for p in (root / "train_images").iterdir())
    full = cv2.imread(str(root / "train_images" / ids[0])).shape[:2]
    side = tuple(max(32, round(s * scale / 32) * 32) for s in full)
    classes = int(train_csv.ClassId.max())
    order = rng.permutation(len(ids))
    hold = [ids[i] for i in order[: len(ids) // 10]]
    fit = [ids[i] for i in order[len(ids) // 10 :]]
    sample = pd.read_csv(root / "sample_submission.csv")
    test_ids, layout = test_ids_of(sample)
    x, y = load(root / "train_images", fit, side, labels, classes)
    hx, hy = load(root / "train_images", hold, full, labels, classes)  # holdout truth at full size
    hx = F.interpolate(hx, size=side, mode="area")
    tx, _ = load(root / "test_images", test_ids, side)
    model = smp.Unet("resnet18", encoder_weights=None, classes=classes)
    done = train(model, x, y, rng, epochs, seconds, len(hx) + len(tx), hx[:16], full)
    best = min_areas(full_masks(model, hx, full), hy, classes)
    write_submission(sample, layout, test_ids, full_masks(model, tx, full).numpy(), best, classes, out)
    wall = time.perf_counter() - BEGAN
    record = {"epochs": done, "seconds": round(wall, 1), "budget": seconds, "min_areas": best,
              "threads": torch.get_num_threads(), "scale": scale, "seed": seed}
    print(f"wrote {out}: {done} epochs, {wall:.0f}s wall" + (f" of a {seconds:.0f}s budget" if seconds else ""))
    if json_out:
        Path(json_out).write_text(json.dumps(record) + "\n")
    return record


USAGE = "python bench/baselines/plain_script.py data=DATA_ROOT out=OUT.csv [epochs=15 | seconds=S] [scale=0.5] [seed=0] [json=OUT.json]"
KEYS = {"epochs": COUNT, "seconds": POSITIVE, "scale": POSITIVE, "seed": Typed(int, 0), "json": TEXT}


def main(argv: list[str]) -> int:
    """The project's ``key=value`` parsing, so bad input is one ``error:`` line; the training uses none of it."""

    def body() -> None:
        given = parse_args(argv, ["data", "out"], KEYS, USAGE)
        if "epochs" in given and "seconds" in given:
            raise ValueError("give epochs= (a fixed count) or seconds= (a wall-time budget), not both")
        args = {"epochs": 15, "scale": 0.5, "seed": 0, "seconds": None, "json": "", **given}
        run(args["data"], args["out"], args["epochs"], args["scale"], args["seed"], args["seconds"], args["json"])

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
