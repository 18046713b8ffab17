"""Masks (smp families): per-pixel probabilities, the tuned post-processing score, uint8 OOF maps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_path
from core.config import TrialConfig
from core.contract import WORST_BEST_PNG, TrialFolder
from core.data.cache import DiskCache
from core.data.dataset import SegmentationDataset, study_cache
from core.data.study import Study
from core.metrics import PostProcessing
from core.postprocess import tuned_score
from core.preprocess import resize_image, scaled_size
from trainables.loop import FoldRun, evaluate
from trainables.losses import get_loss
from trainables.pictures import MAX_WIDTH, image_scores, pick, post_process, worst_best_picture, write_png
from trainables.tasks.base import Prepare

PICTURE_IMAGES = 4  # worst and best validation images drawn at the end of a trial


class MaskTask:
    name = "masks"
    dataset = SegmentationDataset
    labels = False

    def __init__(self, study: Study) -> None:
        self.study = study

    def check(self) -> None:
        if self.study.kind != "segmentation":
            raise ValueError(
                f"study {self.study.root} is {self.study.kind} (image labels); this model family outputs masks: "
                "use model.family=timm with a timm classifier (model.encoder=resnet18)"
            )

    def cache(self, size: tuple[int, int]) -> DiskCache:
        return study_cache(self.study, size)

    def loss(self, cfg: TrialConfig) -> Callable:
        return get_loss(cfg.train.loss, cfg.train.class_weights)

    def prepare(self, cfg: TrialConfig, fold: int, epoch: int) -> Prepare | None:
        return None

    def evaluate(self, model: torch.nn.Module, run: FoldRun, loss_fn: Callable, tta: str, device: torch.device, dtype: torch.dtype | None) -> tuple[np.ndarray, float]:
        return evaluate(model, run, loss_fn, tta, self.study.oof_size, device, dtype)

    def score(self, runs: list[FoldRun], probs: list[np.ndarray]) -> tuple[PostProcessing, dict[str, Any]]:
        rows = np.concatenate([run.val_rows for run in runs])
        post = tuned_score(np.concatenate(probs), self.study.truth()[rows], self.study.config.metric)
        return post, {"score": post.score, **{f"score_class{c + 1}": s for c, s in enumerate(post.class_scores)}}

    def candidate_fields(self) -> dict[str, Any]:
        return {}

    def write_oof(self, path: Path, runs: list[FoldRun], probs: list[np.ndarray]) -> None:
        """oof.npy: uint8 (N, C, h, w) in folds.csv order, written through a memory map then renamed."""
        study = self.study
        shape = (len(study.image_ids), study.data.num_classes, *study.oof_size)
        with atomic_path(path) as tmp:
            oof = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for run, fold_probs in zip(runs, probs, strict=True):
                oof[run.val_rows] = fold_probs
            oof.flush()
            del oof

    def picture(self, trial: TrialFolder, runs: list[FoldRun], probs: list[np.ndarray], state: PostProcessing) -> None:
        study, truth = self.study, self.study.truth()
        rows = np.concatenate([run.val_rows for run in runs])
        pred = post_process(np.concatenate(probs), state)
        scores = image_scores(pred, truth[rows])
        ids = [study.image_ids[r] for r in rows]
        worst, best = pick(scores, truth[rows].reshape(len(rows), -1).any(axis=1), PICTURE_IMAGES)
        wanted = set(worst.tolist()) | set(best.tolist())
        full = study.data.shape
        display = full if full[1] <= MAX_WIDTH else scaled_size(full, MAX_WIDTH / full[1])
        blank = np.zeros((1, 1, 3), np.uint8)  # images not drawn are never read
        images = [resize_image(study.data.read_image(ids[i]), display) if i in wanted else blank for i in range(len(ids))]
        picture = worst_best_picture(images, pred, truth[rows], scores, ids, PICTURE_IMAGES)
        write_png(trial.pictures_dir / WORST_BEST_PNG, picture)
