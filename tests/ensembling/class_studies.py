"""Tiny classification studies for the ensembling tests, written to the classification contract.

Images are real PNGs of three kinds (``bar_3.png``, ``dot_1.png``, ``ring_0.png``: the ``classes``
format's file-name prefix); trials are real timm models (``test_resnet``, untrained, weights in
safetensors) with OOF probabilities built here, so selection has known answers: one candidate is the
truth itself, the others noise. A multi-label study marks each image's classes in study.yaml's truth.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from core.config import TrialConfig, from_flat, to_flat
from core.contract import StudyFolder
from core.data.folds import folds_hash, write_folds
from core.models import build_model, save_weights

CLASS_NAMES = ["bar", "dot", "ring"]
SIZE = 24


def draw(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (SIZE, SIZE, 3), dtype=np.uint8)
    if kind == "bar":
        image[:, 10:14] = 220
    elif kind == "dot":
        cv2.circle(image, (12, 12), 4, (220, 220, 220), -1)
    else:
        cv2.circle(image, (12, 12), 8, (220, 220, 220), 2)
    return image


def write_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        kind = CLASS_NAMES[i % 3]
        name = f"{kind}_{i}.png"
        cv2.imwrite(str(folder / name), draw(kind, seed + i)[:, :, ::-1])
        names.append(name)
    return names


def trial_config(tta: str = "hflip") -> dict:
    flat = to_flat(TrialConfig())
    flat.update({"model.family": "timm", "model.encoder": "test_resnet", "train.scale": 1.0, "tta": tta, "train.epochs": 1})
    return flat


def make_class_study(root: Path, n: int = 24, multi_label: bool = False, metric: str = "log_loss", folds: int = 2) -> Path:
    """A study folder (study.yaml, folds.csv, truth.npy) over ``n`` images in ``root/data``."""
    names = write_images(root / "data", n)
    study = root / "study"
    study.mkdir(parents=True)
    fold_frame = pd.DataFrame({"image_id": sorted(names), "fold": [i % folds for i in range(n)]})
    write_folds(StudyFolder(study).folds_csv, fold_frame)
    labels = np.array([CLASS_NAMES.index(i.split("_")[0]) for i in fold_frame["image_id"]])
    truth = np.zeros((n, 3), np.uint8)
    truth[np.arange(n), labels] = 1
    if multi_label:  # a second class on every fourth image, none on every fifth
        truth[::4, (labels[::4] + 1) % 3] = 1
        truth[::5] = 0
    np.save(study / "truth.npy", truth)
    raw = {"data": {"format": "classes", "root": str(root / "data"), "limit": 0, "on_error": "stop", "options": {}},
           "folds": folds, "seed": 0, "oof_scale": 1.0, "metric": metric, "kind": "classification", "multi_label": multi_label,
           "mlflow": {"uri": f"sqlite:///{root / 'mlflow.db'}"}}
    (study / "study.yaml").write_text(yaml.safe_dump(raw))
    return study


def add_trial(study: Path, trial_id: str, oof: np.ndarray, ms: float = 10.0, score: float = 0.0, tta: str = "hflip", seed: int = 0) -> Path:
    """A complete trial folder: config, one untrained test_resnet per fold (safetensors), OOF, cost, metrics."""
    folder = StudyFolder(study).trial(trial_id)
    folder.root.mkdir(parents=True)
    config = trial_config(tta)
    folder.write_config(config)
    folds = pd.read_csv(StudyFolder(study).folds_csv)
    import torch

    for k in sorted(folds["fold"].unique()):
        torch.manual_seed(seed * 10 + int(k))
        save_weights(build_model(from_flat(TrialConfig, config).model, oof.shape[1], load_weights=False), folder.weights(int(k)))
    np.save(folder.oof, oof.astype(np.float16))
    folder.write_cost({"ms_per_image": ms / 2, "ms_per_image_all_folds": ms, "device": "cpu", "reference_ms": 1.6})
    folder.write_metrics({"oof_score": score, "ms_per_image": ms / 2, "folds": sorted(int(k) for k in folds["fold"].unique()),
                          "complete": True, "folds_hash": folds_hash(folds)})
    return folder.root


def noisy(truth: np.ndarray, seed: int, multi_label: bool, strength: float = 0.6) -> np.ndarray:
    """Probabilities that lean to the truth with noise: softmax rows or independent sigmoids."""
    rng = np.random.default_rng(seed)
    logits = truth * 2.0 + rng.normal(0, 1 / (1 - strength), truth.shape)
    if multi_label:
        return 1 / (1 + np.exp(-(logits - 1)))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
