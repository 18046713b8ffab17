"""The baseline a classification search must beat: a plain timm script given the same time.

    OMP_NUM_THREADS=2 python bench/baselines/plain_classes.py train=/tmp/neu_split/train test=/tmp/neu_split/test/images \
        labels=/tmp/neu_split/test_labels.csv seconds=300 [size=96] [model=resnet18] [holdout=0.2] [out=plain.json]

What a competitor writes in an afternoon: timm ``model`` from scratch at ``size``x``size``, AdamW 2e-3,
a cosine schedule over the time budget ``seconds`` (the whole process's wall time, from its first line;
epochs until the next would overrun it), horizontal and
vertical flips, a stratified ``holdout`` of the training images to keep the best epoch, then accuracy
on the test images against the hidden labels. No Ray, no project code but the command-line parsing.
"""

# ruff: noqa: E402  (the clock starts before the imports: they are part of the wall time a budget counts)
from __future__ import annotations

import time

BEGAN = time.perf_counter()

import csv
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import timm
import torch
import torch.nn.functional as F

from ensembling.cli import POSITIVE, TEXT, Typed, command, parse_args

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def load(paths: list[Path], size: int) -> torch.Tensor:
    out = np.empty((len(paths), 3, size, size), np.float32)
    for i, path in enumerate(paths):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        out[i] = ((image - MEAN) / STD).transpose(2, 0, 1)
    return torch.from_numpy(out)


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(images[i : i + 64]).argmax(1) for i in range(0, len(images), 64)]).numpy()
    return float((pred == labels).mean())


USAGE = ("python bench/baselines/plain_classes.py train=TRAIN_DIR test=TEST_IMAGES labels=TEST_LABELS_CSV [seconds=300] [size=96] "
         "[model=resnet18] [holdout=0.2] [out=OUT.json]")
KEYS = {"seconds": POSITIVE, "size": Typed(int, 8), "model": TEXT, "holdout": Typed(float, 0, above=True), "out": TEXT}
DEFAULTS = {"seconds": 300.0, "size": 96, "model": "resnet18", "holdout": 0.2, "out": ""}


def main(argv: list[str]) -> int:
    return command(lambda: run({**DEFAULTS, **parse_args(argv, ["train", "test", "labels"], KEYS, USAGE)}))


def run(args: dict) -> int:
    size, seconds, holdout = args["size"], args["seconds"], args["holdout"]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train_paths = sorted(p for p in Path(args["train"]).iterdir() if p.suffix.lower() in {".jpg", ".png", ".bmp"})
    names = sorted({p.stem.rpartition("_")[0] for p in train_paths})
    y = np.array([names.index(p.stem.rpartition("_")[0]) for p in train_paths])
    val = np.zeros(len(y), bool)
    for c in range(len(names)):
        members = np.flatnonzero(y == c)
        val[rng.choice(members, max(1, round(holdout * len(members))), replace=False)] = True
    began = BEGAN  # the budget is the whole process's wall time, imports included
    x = load(train_paths, size)
    with open(args["labels"]) as handle:
        rows = list(csv.DictReader(handle))
    x_test = load([Path(args["test"]) / r["image"] for r in rows], size)
    y_test = np.array([names.index(r["label"]) for r in rows])
    model = timm.create_model(args["model"], pretrained=False, num_classes=len(names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    train_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    epoch, best, best_state, last_epoch = 0, -1.0, None, 0.0
    # cosine over the time budget: the learning rate follows the clock, and training stops when the
    # next epoch (as long as the last one) would not finish in time
    while epoch == 0 or time.perf_counter() - began + last_epoch <= seconds:
        start = time.perf_counter()
        model.train()
        for batch in np.array_split(rng.permutation(train_idx), math.ceil(len(train_idx) / 32)):
            for group in optimizer.param_groups:
                group["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(1.0, (time.perf_counter() - began) / seconds)))
            images = x[batch]
            if rng.random() < 0.5:
                images = images.flip(-1)
            if rng.random() < 0.5:
                images = images.flip(-2)
            loss = F.cross_entropy(model(images), torch.from_numpy(y[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = accuracy(model, x[val_idx], y[val_idx])
        if score >= best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
        epoch += 1
        last_epoch = time.perf_counter() - start
        print(f"epoch {epoch}  loss {loss.item():.3f}  holdout accuracy {score:.3f}  {time.perf_counter() - began:.0f}s", flush=True)
    epochs = epoch
    model.load_state_dict(best_state)
    result = {
        "test_accuracy": accuracy(model, x_test, y_test),
        "holdout_accuracy": best,
        "epochs": epochs,
        "seconds": time.perf_counter() - began,
        "size": size,
        "model": args["model"],
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    if args["out"]:
        Path(args["out"]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
