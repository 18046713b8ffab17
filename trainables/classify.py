"""A classification trial: a timm classifier per fold, image labels instead of masks.

``trainables.fit.run_trial`` hands a config whose model family outputs labels (``model.family=timm``)
here, so a trial is the same for a search, Ray and resume: folds trained side by side, one report per
epoch (train and validation loss, the study's metric and each class's, every classification metric,
the learning rate and images per second), a checkpoint of every fold's full state, cyclic-low and EMA
snapshots as further candidates, TTA on the last epoch, cost measured with that TTA.

Single-label studies train cross-entropy over a softmax, multi-label ones (``data.multi_label`` or
``data.task=presence``) one sigmoid per class with BCE; ``train.label_smoothing`` softens the targets and
``train.mixup`` / ``train.cutmix`` mix batches. The trial folder holds ``oof.npy``: (N, K) float16
probabilities in folds.csv order (``trainables/contract.py``), ``cost.json``, the weights, the worst and
best validation images, and ``metrics.json`` last.

``score`` (what ASHA and Optuna maximise) and ``oof_score`` are always higher-is-better: the metric's value,
or minus it for a lower-is-better metric (``log_loss``: ``score`` = -log loss); ``metrics.json`` also
holds ``metric`` and the raw value under the metric's name. Multi-label metrics that decide labels
(accuracy, macro F1) are scored after per-class thresholds tuned on the pooled validation predictions,
as segmentation's score is after its tuned post-processing; the thresholds are in ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.atomic import atomic_path
from trainables.checkpoint import checkpoint_dir, resume
from trainables.class_metrics import CLASS_METRICS, get_class_metric, is_class_metric, oriented, tune_thresholds
from trainables.config import TrialConfig
from trainables.contract import CLASS_OOF_DTYPE, CLASSIFICATION, WORST_BEST_PNG, TrialFolder
from trainables.cost import measure_cost
from trainables.data.cache import DiskCache
from trainables.data.dataset import ClassificationDataset
from trainables.data.study import Study
from trainables.gpu import free_memory
from trainables.loop import FoldRun, all_images_run, autocast, current_lr, epoch_seed, make_fold_run, train_epoch
from trainables.losses import label_loss, smooth_targets
from trainables.mix import Mixer
from trainables.models import save_weights
from trainables.optim import cycle_ends
from trainables.tta import predict_labels_tta

PICTURE_IMAGES = 4
MIX_STREAM = 7919  # the mixer's seed differs from the loader's and the augmentation's of the same epoch


def check_class_study(study: Study) -> None:
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


def train_labels(
    study: Study,
    cfg: TrialConfig,
    trial: TrialFolder,
    folds: list[int],
    size: tuple[int, int],
    device: torch.device,
    dtype: torch.dtype | None,
    report: Any,
    resume_from: Path | None,
) -> dict[str, Any]:
    check_class_study(study)
    cache = DiskCache(study.folder.cache_dir, study.data, study.image_ids, size, masks=False)
    runs = [make_fold_run(study, cfg, k, size, device, cache, dtype, dataset=ClassificationDataset) for k in folds]
    try:
        start = resume(runs, resume_from) if resume_from else 0
        return _train(study, cfg, trial, runs, start, size, device, dtype, report)
    finally:
        runs.clear()
        free_memory()


def train_all_labels(study: Study, cfg: TrialConfig, size: tuple[int, int], device: torch.device, dtype: torch.dtype | None) -> tuple[torch.nn.Module, list[float]]:
    """Refit: one classifier on every training image for ``cfg.train.epochs``, with the trial's loss,
    label smoothing and mixing (``ensembling.refit``); returns the model and each epoch's train loss."""
    check_class_study(study)
    cache = DiskCache(study.folder.cache_dir, study.data, study.image_ids, size, masks=False)
    run = all_images_run(study, cfg, size, device, cache, dtype, dataset=ClassificationDataset)
    t = cfg.train
    loss_fn = label_loss(study.multi_label, t.class_weights)
    mixer = Mixer(t.mixup, t.cutmix)
    losses = []
    for epoch in range(t.epochs):
        run.start_epoch(epoch)
        mixer.reseed(epoch_seed(cfg.seed, run.fold, epoch) + MIX_STREAM)
        losses.append(train_epoch(run, loss_fn, device, dtype, t.accumulate, _prepare(mixer, t.label_smoothing, study.multi_label))["loss"])
    return run.model, losses


@torch.no_grad()
def evaluate_labels(
    model: torch.nn.Module, run: FoldRun, loss_fn: Any, tta: str, multi_label: bool, device: torch.device, dtype: torch.dtype | None
) -> tuple[np.ndarray, float]:
    """Validation probabilities of one fold (n_val, K) float32 with ``tta``, and the mean loss."""
    model.eval()
    parts, total, count = [], 0.0, 0
    for images, labels in run.val_loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(images)
            total += loss_fn(logits, labels).item() * len(images)
            probs = predict_labels_tta(model, images, tta, multi_label, plain_logits=logits)
        parts.append(probs.float().cpu().numpy())
        count += len(images)
    return np.concatenate(parts), total / max(count, 1)


def score_labels(study: Study, runs: list[FoldRun], probs: list[np.ndarray], truth: np.ndarray) -> dict[str, Any]:
    """The study's metric on the pooled validation predictions (tuned thresholds where it decides labels),
    each class's, and every registered metric as ``val_<name>`` for the record."""
    rows = np.concatenate([run.val_rows for run in runs])
    pooled, target = np.concatenate(probs), np.asarray(truth[rows])
    multi = study.multi_label
    metric = get_class_metric(study.config.metric)
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
    return out


def _prepare(mixer: Mixer, smoothing: float, multi_label: bool) -> Any:
    def prepare(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mixer(images, smooth_targets(labels, smoothing, multi_label))

    return prepare


def _train(study: Study, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], start: int, size: tuple[int, int], device: torch.device, dtype: torch.dtype | None, report: Any) -> dict[str, Any]:
    multi = study.multi_label
    loss_fn = label_loss(multi, cfg.train.class_weights)
    truth = study.truth()
    t = cfg.train
    mixers = {run.fold: Mixer(t.mixup, t.cutmix) for run in runs}
    snapshot_epochs = cycle_ends(t.epochs, t.cycles)[:-1] if t.schedule == "cyclic" else []
    cost: dict[str, Any] = {}
    began = time.perf_counter()
    metrics: dict[str, Any] = {}
    for epoch in range(start, t.epochs):
        last = epoch == t.epochs - 1
        lr = current_lr(runs[0])
        trained = []
        for run in runs:
            run.start_epoch(epoch)
            mixers[run.fold].reseed(epoch_seed(cfg.seed, run.fold, epoch) + MIX_STREAM)
            trained.append(train_epoch(run, loss_fn, device, dtype, t.accumulate, _prepare(mixers[run.fold], t.label_smoothing, multi)))
        metrics = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean([x["loss"] for x in trained])),
            "lr": lr,
            "images_per_second": sum(x["images"] for x in trained) / max(sum(x["seconds"] for x in trained), 1e-9),
        }
        if not (last or epoch + 1 in snapshot_epochs or (epoch + 1) % t.val_every == 0):
            if report is not None:
                with checkpoint_dir(runs, epoch) as folder:
                    report({**metrics, "seconds": time.perf_counter() - began}, folder)
            continue
        tta = cfg.tta if last or epoch + 1 in snapshot_epochs else "none"
        evaluated = [evaluate_labels(run.model, run, loss_fn, tta, multi, device, dtype) for run in runs]
        probs = [p for p, _ in evaluated]
        scores = score_labels(study, runs, probs, truth)
        metrics = {**metrics, "val_loss": float(np.mean([v for _, v in evaluated])), **scores, "seconds": time.perf_counter() - began}
        if epoch + 1 in snapshot_epochs:
            name = f"cycle{snapshot_epochs.index(epoch + 1) + 1}"
            cost = cost or _measure(cfg, runs, size, device)
            summary = _candidate_metrics(study, runs, {**metrics, "snapshot": name}, cost["ms_per_image_all_folds"])
            write_candidate(study, trial.snapshot(name), runs, [r.model for r in runs], probs, summary)
        if last:
            cost = cost or _measure(cfg, runs, size, device)
            metrics = _finish(study, cfg, trial, runs, probs, metrics, truth, cost, device, dtype, loss_fn)
        if report is not None:
            with checkpoint_dir(runs, epoch) as folder:
                report(metrics, folder)
    return metrics


def _measure(cfg: TrialConfig, runs: list[FoldRun], size: tuple[int, int], device: torch.device) -> dict[str, Any]:
    cost = measure_cost(runs[0].model, size, cfg.tta, device, batch_size=min(cfg.train.batch_size, 8), labels=True)
    cost["folds"] = len(runs)
    cost["ms_per_image_all_folds"] = cost["ms_per_image"] * len(runs)
    return cost


def _candidate_metrics(study: Study, runs: list[FoldRun], summary: dict, ms_per_image: float) -> dict:
    return {
        **summary,
        "oof_score": summary["score"],
        "metric": study.config.metric,
        "kind": CLASSIFICATION,
        "multi_label": study.multi_label,
        "ms_per_image": ms_per_image,
        "folds": [run.fold for run in runs],
        "complete": len(runs) == study.n_folds,
        "folds_hash": study.folds_hash,
    }


def write_oof(study: Study, path: Path, runs: list[FoldRun], probs: list[np.ndarray]) -> None:
    """oof.npy: (N, K) float16 probabilities in folds.csv order, written under a temp name then renamed."""
    oof = np.zeros((len(study.image_ids), study.data.num_classes), CLASS_OOF_DTYPE)
    for run, fold_probs in zip(runs, probs, strict=True):
        oof[run.val_rows] = fold_probs
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, oof)


def write_candidate(study: Study, folder: TrialFolder, runs: list[FoldRun], models: list[torch.nn.Module], probs: list[np.ndarray], metrics: dict) -> None:
    for run, model in zip(runs, models, strict=True):
        save_weights(model, folder.weights(run.fold))
    write_oof(study, folder.oof, runs, probs)
    folder.write_metrics(metrics)


def _finish(study: Study, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], summary: dict, truth: np.ndarray, cost: dict, device: torch.device, dtype: torch.dtype | None, loss_fn: Any) -> dict:
    trial.write_cost(cost)
    _picture(study, trial, runs, probs, truth)
    ms = cost["ms_per_image_all_folds"]
    if cfg.train.ema > 0:
        ema_probs = [evaluate_labels(run.ema.module, run, loss_fn, cfg.tta, study.multi_label, device, dtype)[0] for run in runs]
        ema_scores = score_labels(study, runs, ema_probs, truth)
        ema_metrics = _candidate_metrics(study, runs, {**summary, **ema_scores, "snapshot": "ema"}, ms)
        write_candidate(study, trial.snapshot("ema"), runs, [run.ema.module for run in runs], ema_probs, ema_metrics)
        summary = {**summary, "ema_score": ema_scores["score"]}
    metrics = _candidate_metrics(study, runs, summary, ms)
    write_candidate(study, trial, runs, [run.model for run in runs], probs, metrics)  # metrics.json last
    return metrics


def image_scores(probs: np.ndarray, truth: np.ndarray, multi_label: bool) -> np.ndarray:
    """How right each image is, in [0, 1]: the true class's probability, or 1 - mean |p - t| (multi-label)."""
    truth = truth.astype(bool)
    if multi_label:
        return 1 - np.abs(probs - truth).mean(axis=1)
    return probs[truth]


def _picture(study: Study, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], truth: np.ndarray) -> None:
    """The worst and best validation images with their true and predicted labels, into pictures/."""
    from trainables.data.inspect import draw_tile
    from trainables.pictures import write_png

    rows = np.concatenate([run.val_rows for run in runs])
    pooled, target = np.concatenate(probs), np.asarray(truth[rows]).astype(bool)
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
