"""Image labels (timm families): softmax or sigmoid probabilities, float16 ``(N, K)`` OOF.

Single-label studies train cross-entropy over a softmax, multi-label ones (``data.multi_label`` or
``data.task=presence``) one sigmoid per class with BCE; ``train.label_smoothing`` softens the targets and
``train.mixup`` / ``train.cutmix`` mix batches. ``score`` (what ASHA and Optuna maximise) and ``oof_score``
are always higher-is-better: the metric's value, or minus it for a lower-is-better metric (``log_loss``);
``metrics.json`` also holds ``metric`` and the raw value under the metric's name. Multi-label metrics that
decide labels (accuracy, macro F1) are scored after per-class thresholds tuned on the pooled validation
predictions, as segmentation's score is after its tuned post-processing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_path
from core.class_metrics import CLASS_METRICS, get_class_metric, is_class_metric, oriented, tune_thresholds
from core.config import TrialConfig
from core.contract import CLASS_OOF_DTYPE, CLASSIFICATION, WORST_BEST_PNG, TrialFolder
from core.data.cache import DiskCache
from core.data.dataset import ClassificationDataset
from core.data.study import Study
from core.tta import predict_labels_tta
from trainables.loop import FoldRun, autocast, epoch_seed
from trainables.losses import label_loss, smooth_targets
from trainables.mix import Mixer
from trainables.tasks.base import Prepare

PICTURE_IMAGES = 4
MIX_STREAM = 7919  # the mixer's seed differs from the loader's and the augmentation's of the same epoch


class LabelTask:
    name = "labels"
    dataset = ClassificationDataset
    labels = True

    def __init__(self, study: Study) -> None:
        self.study = study

    def check(self) -> None:
        study = self.study
        if study.kind != CLASSIFICATION:
            raise ValueError(
                f"model.family=timm trains image labels, but study {study.root} holds masks; for a classifier on "
                "segmentation data make a presence study (data.task=presence) on the same data, seed and folds"
            )
        if not is_class_metric(study.config.metric):
            raise ValueError(
                f"{study.folder.study_yaml}: metric {study.config.metric!r} scores masks; a classification study takes one of "
                f"{', '.join(CLASS_METRICS.names())}"
            )

    def cache(self, size: tuple[int, int]) -> DiskCache:
        return DiskCache(self.study.folder.cache_dir, self.study.data, self.study.all_image_ids, size, masks=False)

    def loss(self, cfg: TrialConfig) -> Callable:
        return label_loss(self.study.multi_label, cfg.train.class_weights)

    def prepare(self, cfg: TrialConfig, fold: int, epoch: int) -> Prepare | None:
        """Smoothed targets, then mixup or CutMix, seeded from (trial seed, fold, epoch)."""
        t, multi = cfg.train, self.study.multi_label
        mixer = Mixer(t.mixup, t.cutmix, seed=epoch_seed(cfg.seed, fold, epoch) + MIX_STREAM)

        def prepare(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return mixer(images, smooth_targets(labels, t.label_smoothing, multi))

        return prepare

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, run: FoldRun, loss_fn: Callable, tta: str, device: torch.device, dtype: torch.dtype | None) -> tuple[np.ndarray, float]:
        """Validation probabilities of one fold (n_val, K) float32 with ``tta``, and the mean loss."""
        model.eval()
        parts, total, count = [], 0.0, 0
        for images, labels in run.val_loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast(device, dtype):
                logits = model(images)
                total += loss_fn(logits, labels).item() * len(images)
                probs = predict_labels_tta(model, images, tta, self.study.multi_label, plain_logits=logits)
            parts.append(probs.float().cpu().numpy())
            count += len(images)
        return np.concatenate(parts), total / max(count, 1)

    def score(self, runs: list[FoldRun], probs: list[np.ndarray]) -> tuple[None, dict[str, Any]]:
        """The study's metric on the pooled validation predictions (tuned thresholds where it decides labels),
        each class's, and every registered metric as ``val_<name>`` for the record."""
        rows = np.concatenate([run.val_rows for run in runs])
        pooled, target = np.concatenate(probs), np.asarray(self.study.truth()[rows])
        multi = self.study.multi_label
        metric = get_class_metric(self.study.config.metric)
        thresholds, value = tune_thresholds(metric, pooled, target, multi_label=multi)
        per_class = metric.class_scores(pooled, target, thresholds, multi_label=multi)
        out: dict[str, Any] = {
            "score": oriented(metric, value),
            metric.name: value,
            **{f"score_class{k + 1}": oriented(metric, float(s)) for k, s in enumerate(per_class) if np.isfinite(s)},
        }
        for name in CLASS_METRICS.names():
            try:
                out[f"val_{name}"] = get_class_metric(name).score(pooled, target, None, multi_label=multi)
            except ValueError:  # roc_auc with no class having both kinds of image in the folds so far
                continue
        out["thresholds"] = None if thresholds is None else [float(t) for t in thresholds]
        return None, out

    def candidate_fields(self) -> dict[str, Any]:
        return {"metric": self.study.config.metric, "kind": CLASSIFICATION, "multi_label": self.study.multi_label}

    def write_oof(self, path: Path, runs: list[FoldRun], probs: list[np.ndarray]) -> None:
        """oof.npy: (N, K) float16 probabilities in folds.csv order, written under a temp name then renamed."""
        oof = np.zeros((len(self.study.image_ids), self.study.data.num_classes), CLASS_OOF_DTYPE)
        for run, fold_probs in zip(runs, probs, strict=True):
            oof[run.val_rows] = fold_probs
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, oof)

    def picture(self, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], state: None) -> None:
        """The worst and best validation images with their true and predicted labels, into pictures/."""
        from core.data.inspect import draw_tile
        from trainables.pictures import write_png

        study = self.study
        rows = np.concatenate([run.val_rows for run in runs])
        pooled, target = np.concatenate(probs), np.asarray(study.truth()[rows]).astype(bool)
        scores = image_scores(pooled, target, study.multi_label)
        order = np.argsort(scores, kind="stable")
        k = min(PICTURE_IMAGES, len(order) // 2 or 1)
        chosen = [*order[:k], *order[::-1][:k]]
        names = study.data.class_names or tuple(str(c + 1) for c in range(study.data.num_classes))

        def said(row: np.ndarray) -> str:
            return " ".join(names[c] for c in np.flatnonzero(row)) or "none"

        tiles = []
        for i in chosen:
            image_id = study.image_ids[rows[i]]
            if study.multi_label:
                predicted = pooled[i] >= 0.5
            else:
                predicted = np.zeros_like(target[i])
                predicted[pooled[i].argmax()] = True
            kind = "worst" if len(tiles) < k else "best"
            title = f"{kind} {scores[i]:.2f} {image_id}: true {said(target[i])}, pred {said(predicted)}"
            tiles.append(draw_tile(study.data.read_image(image_id), None, title, 320))
        height = max(tile.shape[0] for tile in tiles)
        tiles = [np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255) for tile in tiles]
        top, bottom = np.concatenate(tiles[:k], axis=1), np.concatenate(tiles[k:], axis=1)
        write_png(trial.pictures_dir / WORST_BEST_PNG, np.concatenate([top, bottom], axis=0))


def image_scores(probs: np.ndarray, truth: np.ndarray, multi_label: bool) -> np.ndarray:
    """How right each image is, in [0, 1]: the true class's probability, or 1 - mean |p - t| (multi-label)."""
    truth = truth.astype(bool)
    if multi_label:
        return 1 - np.abs(probs - truth).mean(axis=1)
    return probs[truth]
