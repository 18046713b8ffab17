"""The one training loop of a trial, for every task (``trainables/tasks``): masks and image labels.

All folds advance one epoch at a time and the report is their pooled validation score, so a
scheduler comparing trials at epoch e compares like with like. A cyclic schedule writes each cycle's
low point, and an EMA its average, as snapshot candidates of the trial. On the last epoch the trial
predicts its validation images with TTA, writes ``cost.json``, the worst/best picture, the weights and
``oof.npy``, then ``metrics.json`` last and atomically, and only then makes its final report (a
scheduler may stop the trial the moment that report lands). :func:`train_all` is the refit's loop: one
model on every training image, with the trial's loss and batch preparation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import TrialConfig
from core.contract import TrialFolder
from core.data.extra import open_extra
from core.models import save_weights
from trainables.checkpoint import checkpoint_dir
from trainables.clock import epoch_pace, epochs_in_time
from trainables.cost import measure_cost
from trainables.loop import FoldRun, all_images_run, current_lr, steps_per_epoch, train_epoch
from trainables.optim import cycle_ends, set_total_steps, total_steps
from trainables.tasks.base import Task

# A report: the epoch's metrics and, when given, a folder holding a checkpoint of every fold.
Reporter = Callable[[dict[str, Any], Path], None]


def train_folds(task: Task, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], start: int, size: tuple[int, int], device: torch.device, dtype: torch.dtype | None, report: Reporter | None) -> dict[str, Any]:
    """Train ``runs`` from epoch ``start`` to ``train.epochs`` (or, under ``train.time_limit``, to the epochs
    the clock allows, re-planned after every epoch: ``trainables/clock.py``); returns the last epoch's metrics."""
    loss_fn = task.loss(cfg)
    t = cfg.train
    clocked = _clocked(cfg)
    epochs = _planned_epochs(cfg, runs) if clocked else t.epochs
    snapshot_epochs = cycle_ends(t.epochs, t.cycles)[:-1] if t.schedule == "cyclic" else []
    cost: dict[str, Any] = {}
    began = time.perf_counter()
    metrics: dict[str, Any] = {}
    paces: list[float] = []  # each epoch's training seconds (this process's)
    val_s: float | None = None  # one validation pass without TTA, once measured
    epoch = start
    while epoch < epochs:
        tick = time.perf_counter()
        metrics = _train_one_epoch(task, cfg, runs, epoch, loss_fn, device, dtype)
        paces.append(time.perf_counter() - tick)
        if clocked:
            epochs = _replan(cfg, runs, epoch + 1, t.time_limit - (time.perf_counter() - began), paces, val_s)
            metrics["epochs"] = epochs
        last = epoch == epochs - 1
        if not (last or epoch + 1 in snapshot_epochs or (epoch + 1) % t.val_every == 0):
            # no validation this epoch (train.val_every): a report without a score, which schedulers skip
            if report is not None:
                with checkpoint_dir(runs, epoch) as folder:
                    report({**metrics, "seconds": time.perf_counter() - began}, folder)
            epoch += 1
            continue
        tta = cfg.tta if last or epoch + 1 in snapshot_epochs else "none"
        tick = time.perf_counter()
        evaluated = [task.evaluate(run.model, run, loss_fn, tta, device, dtype) for run in runs]
        if tta == "none":
            val_s = time.perf_counter() - tick
        probs = [p for p, _ in evaluated]
        state, scores = task.score(runs, probs)
        metrics = {**metrics, "val_loss": float(np.mean([v for _, v in evaluated])), **scores, "seconds": time.perf_counter() - began}
        if epoch + 1 in snapshot_epochs:
            name = f"cycle{snapshot_epochs.index(epoch + 1) + 1}"
            cost = cost or measure(task, cfg, runs, size, device)
            summary = candidate_metrics(task, runs, {**metrics, "snapshot": name}, cost["ms_per_image_all_folds"])
            write_candidate(task, trial.snapshot(name), runs, [r.model for r in runs], probs, summary)
        if last:
            cost = cost or measure(task, cfg, runs, size, device)
            metrics = _finish(task, cfg, trial, runs, probs, metrics, state, cost, device, dtype, loss_fn)
        if report is not None:
            with checkpoint_dir(runs, epoch) as folder:
                report(metrics, folder)
        epoch += 1
    return metrics


def _clocked(cfg: TrialConfig) -> bool:
    """Whether the clock re-plans the epochs: a time limit, and a schedule whose snapshots do not need a
    fixed count (a cyclic schedule of several cycles keeps ``train.epochs``, and says so)."""
    t = cfg.train
    if t.time_limit <= 0:
        return False
    if t.schedule == "cyclic" and t.cycles > 1:
        print(f"train.time_limit={t.time_limit:g} not followed: a cyclic schedule's {t.cycles} snapshots need a fixed "
              f"count, so the trial trains its train.epochs={t.epochs}", flush=True)
        return False
    return True


def _planned_epochs(cfg: TrialConfig, runs: list[FoldRun]) -> int:
    """The epochs the schedule spans now: ``train.epochs``, or where a resumed trial had re-planned them."""
    steps = steps_per_epoch(len(runs[0].train_loader), cfg.train.accumulate)
    return max(1, total_steps(runs[0].scheduler) // max(steps, 1))


def _replan(cfg: TrialConfig, runs: list[FoldRun], done: int, seconds_left: float, paces: list[float], val_s: float | None) -> int:
    """The epochs in all that end within the limit; every fold's schedule stretched or shortened to them.
    Before a validation has been timed, one is taken to cost as long a training epoch per image (more than
    it does: it has no backward pass)."""
    if val_s is None:
        train_images = sum(len(run.train_loader.dataset) for run in runs)
        val_images = sum(len(run.val_loader.dataset) for run in runs)
        val_s = epoch_pace(paces) * val_images / max(train_images, 1)
    epochs = epochs_in_time(done, seconds_left, epoch_pace(paces), val_s, cfg.train.val_every)
    for run in runs:
        set_total_steps(run.scheduler, epochs * steps_per_epoch(len(run.train_loader), cfg.train.accumulate))
    return epochs


def _train_one_epoch(task: Task, cfg: TrialConfig, runs: list[FoldRun], epoch: int, loss_fn: Callable, device: torch.device, dtype: torch.dtype | None) -> dict[str, Any]:
    lr = current_lr(runs[0])
    trained = []
    for run in runs:
        run.start_epoch(epoch)
        trained.append(train_epoch(run, loss_fn, device, dtype, cfg.train.accumulate, task.prepare(cfg, run.fold, epoch)))
    return {
        "epoch": epoch + 1,
        "train_loss": float(np.mean([x["loss"] for x in trained])),
        "lr": lr,
        "images_per_second": sum(x["images"] for x in trained) / max(sum(x["seconds"] for x in trained), 1e-9),
    }


def measure(task: Task, cfg: TrialConfig, runs: list[FoldRun], size: tuple[int, int], device: torch.device) -> dict[str, Any]:
    """``cost.json``: ms per image with the trial's TTA, for one fold model and for all of them."""
    cost = measure_cost(runs[0].model, size, cfg.tta, device, batch_size=min(cfg.train.batch_size, 8), labels=task.labels)
    cost["folds"] = len(runs)
    cost["ms_per_image_all_folds"] = cost["ms_per_image"] * len(runs)
    return cost


def candidate_metrics(task: Task, runs: list[FoldRun], summary: dict, ms_per_image: float) -> dict:
    study = task.study
    return {
        **summary,
        "oof_score": summary["score"],
        **task.candidate_fields(),
        "ms_per_image": ms_per_image,
        "folds": [run.fold for run in runs],
        "complete": len(runs) == study.n_folds,
        "folds_hash": study.folds_hash,
    }


def write_candidate(task: Task, folder: TrialFolder, runs: list[FoldRun], models: list[torch.nn.Module], probs: list[np.ndarray], metrics: dict) -> None:
    """Weights of every fold, oof.npy, then metrics.json last: the folder is a complete candidate."""
    for run, model in zip(runs, models, strict=True):
        save_weights(model, folder.weights(run.fold))
    task.write_oof(folder.oof, runs, probs)
    folder.write_metrics(metrics)


def _finish(task: Task, cfg: TrialConfig, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], summary: dict, state: Any, cost: dict, device: torch.device, dtype: torch.dtype | None, loss_fn: Callable) -> dict:
    trial.write_cost(cost)
    task.picture(trial, runs, probs, state)
    ms = cost["ms_per_image_all_folds"]
    if cfg.train.ema > 0:
        ema_probs = [task.evaluate(run.ema.module, run, loss_fn, cfg.tta, device, dtype)[0] for run in runs]
        _, ema_scores = task.score(runs, ema_probs)
        ema_metrics = candidate_metrics(task, runs, {**summary, **ema_scores, "snapshot": "ema"}, ms)
        write_candidate(task, trial.snapshot("ema"), runs, [run.ema.module for run in runs], ema_probs, ema_metrics)
        summary = {**summary, "ema_score": ema_scores["score"]}
    metrics = candidate_metrics(task, runs, summary, ms)
    write_candidate(task, trial, runs, [run.model for run in runs], probs, metrics)  # metrics.json last
    return metrics


def train_all(task: Task, cfg: TrialConfig, size: tuple[int, int], device: torch.device, dtype: torch.dtype | None) -> tuple[torch.nn.Module, list[float]]:
    """Refit: one model on every training image for ``train.epochs``, with the trial's loss and batch
    preparation (``ensembling.refit``); returns the model and each epoch's train loss."""
    extra = open_extra(task.study, cfg.train.extra) if cfg.train.extra else None  # the folder's "all" targets
    run = all_images_run(task.study, cfg, size, device, task.cache(size), dtype, dataset=task.dataset, extra=extra)
    loss_fn = task.loss(cfg)
    losses = []
    for epoch in range(cfg.train.epochs):
        run.start_epoch(epoch)
        losses.append(train_epoch(run, loss_fn, device, dtype, cfg.train.accumulate, task.prepare(cfg, run.fold, epoch))["loss"])
    return run.model, losses
