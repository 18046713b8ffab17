"""The script a competent user writes instead of using this project: the baseline `space=quick` must beat.

    python bench/baselines/plain_script.py data=DATA_ROOT out=OUT.csv [epochs=15] [scale=0.5] [seed=0]

A Severstal folder (train.csv, train_images/, test_images/, sample_submission.csv): smp Unet-resnet18
from scratch at half scale, BCE + Dice, Adam 1e-3, 15 epochs, flips; 10% of the training images held
out to choose each class's minimum area at threshold 0.5; then the test images predicted and written
in the sample's layout. Nothing of this package is used but its command-line parsing (score it with
``python -m ensembling.score``).
"""

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from ensembling.cli import COUNT, POSITIVE, Typed, command, parse_args


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


def run(root, out, epochs=15, scale=0.5, seed=0):
    root, started = Path(root), time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = pd.read_csv(root / "train.csv")
    labels = {(r.ImageId, r.ClassId): r.EncodedPixels for r in train.itertuples()}
    ids = sorted(p.name for p in (root / "train_images").iterdir())
    full = cv2.imread(str(root / "train_images" / ids[0])).shape[:2]
    side = tuple(max(32, round(s * scale / 32) * 32) for s in full)
    classes = int(train.ClassId.max())
    order = rng.permutation(len(ids))
    hold = [ids[i] for i in order[: len(ids) // 10]]
    fit = [ids[i] for i in order[len(ids) // 10 :]]
    x, y = load(root / "train_images", fit, side, labels, classes)
    hx, hy = load(root / "train_images", hold, full, labels, classes)  # holdout truth at full size
    hx = F.interpolate(hx, size=side, mode="area")
    model = smp.Unet("resnet18", encoder_weights=None, classes=classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x)).split(16):
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
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.4f} {time.time() - started:.0f}s", flush=True)
    hp = F.interpolate(predict(model, hx), size=full, mode="bilinear") > 0.5
    areas = [0, 50, 100, 200, 400, 800, 1600, 3200]
    best = []
    for c in range(classes):
        def dice(a, c=c):
            pred = hp[:, c] & (hp[:, c].sum((1, 2)) >= a)[:, None, None]
            truth = hy[:, c] > 0
            inter, tot = (pred & truth).sum((1, 2)).float(), (pred.sum((1, 2)) + truth.sum((1, 2))).float()
            return torch.where(tot == 0, 1.0, 2 * inter / tot.clamp(min=1)).mean().item()
        best.append(max(areas, key=dice))
        print(f"class {c + 1}: min area {best[-1]} holdout dice {dice(best[-1]):.4f}")
    sample = pd.read_csv(root / "sample_submission.csv")
    test_ids = list(dict.fromkeys(k.rsplit("_", 1)[0] for k in sample.ImageId_ClassId))
    tx, _ = load(root / "test_images", test_ids, side)
    tp = (F.interpolate(predict(model, tx), size=full, mode="bilinear") > 0.5).numpy()
    rles = {}
    for i, image_id in enumerate(test_ids):
        for c in range(classes):
            rles[f"{image_id}_{c + 1}"] = encode(tp[i, c]) if tp[i, c].sum() >= best[c] else ""
    sample["EncodedPixels"] = sample.ImageId_ClassId.map(rles)
    sample.to_csv(out, index=False)
    print(f"wrote {out} in {time.time() - started:.0f}s")


USAGE = "python bench/baselines/plain_script.py data=DATA_ROOT out=OUT.csv [epochs=15] [scale=0.5] [seed=0]"
KEYS = {"epochs": COUNT, "scale": POSITIVE, "seed": Typed(int, 0)}


def main(argv: list[str]) -> int:
    """The project's ``key=value`` parsing, so bad input is one ``error:`` line; the training uses none of it."""

    def body() -> None:
        args = {"epochs": 15, "scale": 0.5, "seed": 0, **parse_args(argv, ["data", "out"], KEYS, USAGE)}
        run(args["data"], args["out"], args["epochs"], args["scale"], args["seed"])

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
