"""A trial's checkpoint: every fold's weights, EMA, optimizer, schedule and grad-scaler state, and the epoch.

Weights are safetensors; the optimizer/schedule state is ``torch.save``d tensors and numbers, read back
with ``weights_only=True`` (no pickled code). Together with the per-epoch seeds of ``loop``, a trial
resumed from epoch e's checkpoint trains epoch e+1 exactly as an unbroken run does.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from core.atomic import write_json
from core.contract import CHECKPOINT_STATE, EMA_WEIGHTS, TRAIN_STATE, fold_weights
from core.models import load_weights, save_weights
from trainables.loop import FoldRun


def _state_path(folder: Path, fold: int, name: str) -> Path:
    return fold_weights(folder, fold).with_name(name)


def save_checkpoint(runs: list[FoldRun], epoch: int, folder: Path) -> None:
    for run in runs:
        save_weights(run.model, fold_weights(folder, run.fold))
        if run.ema is not None:
            save_weights(run.ema, _state_path(folder, run.fold, EMA_WEIGHTS))
        state = {"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict()}
        if run.scaler is not None:
            state["scaler"] = run.scaler.state_dict()
        torch.save(state, _state_path(folder, run.fold, TRAIN_STATE))
    write_json(folder / CHECKPOINT_STATE, {"epoch": epoch})


@contextmanager
def checkpoint_dir(runs: list[FoldRun], epoch: int) -> Iterator[Path]:
    """A temp folder holding the checkpoint of ``epoch`` (0-based, completed); removed after use."""
    folder = Path(tempfile.mkdtemp(prefix="ckpt-"))
    try:
        save_checkpoint(runs, epoch, folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resume(runs: list[FoldRun], folder: Path) -> int:
    """Load every fold's weights and training state from a checkpoint; returns the next epoch to train.

    A checkpoint written before optimizer state was kept (weights and epoch only) still resumes: the
    schedule is then fast-forwarded by the steps already taken and the optimizer starts afresh.
    """
    epoch = int(json.loads((Path(folder) / CHECKPOINT_STATE).read_text())["epoch"]) + 1
    for run in runs:
        load_weights(run.model, fold_weights(folder, run.fold))
        ema_path = _state_path(folder, run.fold, EMA_WEIGHTS)
        if run.ema is not None and ema_path.is_file():
            load_weights(run.ema, ema_path)
        state_path = _state_path(folder, run.fold, TRAIN_STATE)
        if state_path.is_file():
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            run.optimizer.load_state_dict(state["optimizer"])
            run.scheduler.load_state_dict(state["scheduler"])
            if run.scaler is not None and "scaler" in state:
                run.scaler.load_state_dict(state["scaler"])
        else:
            steps = epoch * len(run.train_loader)
            for group in run.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * run.scheduler.lr_lambdas[0](steps)
            run.scheduler.last_epoch = steps
    return epoch
