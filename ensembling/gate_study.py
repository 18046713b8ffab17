"""The classifier gate of a segmentation selection: ``python -m ensembling.select study=SEG gate=CLS``.

``gate=`` names a multi-label classification study on the same images and folds as the segmentation
study (labels: presence of each defect class, e.g. made with ``data.task=presence``). Its selected
ensemble (``<CLS>/ensemble.json``, blended and calibrated as selected) or, when it has none, its best
trial gives each image's probability of each class on OOF; the segmentation selection tunes its
``gate`` step on them, and the exported ensemble carries the classifier member(s), which the predictor
runs before the masks: an image the gate judges clean in every class is not segmented at all.

A segmentation study with a classification trial of its own ((N, C) OOF) gets the same gate from that
trial. Any mismatch of images, folds or classes is one error naming the first difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.study import Study, open_study
from core.store import TrialRecord
from ensembling.runtime.decide import apply_temperature
from ensembling.runtime.manifest import Calibration, ClassSection, member_entry, read_manifest
from ensembling.scoring.budget import Budget
from ensembling.scoring.class_knobs import blend


@dataclass
class GateSource:
    """A classifier's OOF image probabilities (N, C) in [0, 1], and what the predictor needs to run it."""

    name: str  # the manifest's gate_source
    probs: np.ndarray
    section: ClassSection  # the manifest's "gate": members (checkpoints relative to the segmentation study), calibration
    costs: list[tuple[float, dict[str, Any]]]  # per member: ms per image (all folds, TTA) and its cost.json

    def seconds(self, budget: Budget) -> float:
        """The classifier's time for the budget's images on its target (it runs on every image)."""
        labels = Budget(budget.seconds, budget.images, budget.device, labels=True)
        return sum(labels.member_seconds(ms, cost) for ms, cost in self.costs)


def check_same_split(seg: Study, cls: Study, key: str = "gate") -> None:
    """Same images in the same order and the same folds, and as many classes; else one error naming the difference."""
    a, b = seg.folds, cls.folds
    where = f"{key}={cls.root}"
    if len(a) != len(b):
        raise ValueError(f"{where}: the classification study has {len(b)} images, the segmentation study {seg.root} has {len(a)}; "
                         "make the gate study on the same data, folds and seed")
    for i, (ia, fa, ib, fb) in enumerate(zip(a["image_id"], a["fold"], b["image_id"], b["fold"], strict=True)):
        if ia != ib or fa != fb:
            raise ValueError(f"{where}: folds.csv line {i + 2} is {ib} in fold {fb}, but {seg.root}'s is {ia} in fold {fa}; "
                             "the gate must be trained on the same images and folds (same data, folds and seed)")
    k_seg, k_cls = seg.truth().shape[1], cls.folder.class_truth().shape[1]
    if k_seg != k_cls:
        raise ValueError(f"{where}: the classification study has {k_cls} classes, the segmentation study {k_seg}")


def _relative(path: Path, root: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(root).resolve())


def _section(seg: Study, cls: Study, trials: list[TrialRecord], weights: list[float], temperature: float, source: str) -> ClassSection:
    members = []
    for trial, weight in zip(trials, weights, strict=True):
        member = member_entry(cls, trial, weight)
        member.checkpoints = [_relative(cls.root / c, seg.root) for c in member.checkpoints]
        members.append(member)
    k = int(cls.folder.class_truth().shape[1])
    names = [str(n) for n in cls.data.class_names] if len(cls.data.class_names) == k else [str(c) for c in range(1, k + 1)]
    return ClassSection(multi_label=True, num_classes=k, class_names=names, calibration=Calibration(temperature), members=members,
                        source=source, study=str(cls.root))


def gate_from_study(seg: Study, path: str | Path) -> GateSource:
    """The gate from a classification study: its selected ensemble, or else its best finished trial."""
    from core.store import usable_trials, with_snapshots
    from ensembling.select_classes import class_candidates, class_task, is_classification, oof_probs

    cls = open_study(path)
    if not is_classification(cls):
        raise ValueError(f"gate={path}: not a classification study (its study.yaml kind is {cls.folder.kind()!r}); "
                         "make one on the same data with data.task=presence")
    task = class_task(cls)
    if not task.multi_label:
        raise ValueError(f"gate={path}: a single-label study; the gate needs one probability per class (multi-label, data.task=presence)")
    check_same_split(seg, cls)
    trials = class_candidates(cls, usable_trials(cls))
    source = f"study:{cls.root.name}"
    manifest_path = cls.folder.ensemble_json
    if manifest_path.is_file():
        manifest = read_manifest(manifest_path)
        if manifest.is_classification and manifest.folds_hash == cls.folds_hash:
            by_id = {t.candidate_id: t for t in with_snapshots(usable_trials(cls))}
            missing = [m.name for m in manifest.members if m.name not in by_id]
            if missing:
                raise ValueError(f"gate={path}: its ensemble.json names {missing[0]}, which is not a usable finished trial; select that study again")
            chosen = [by_id[m.name] for m in manifest.members]
            weights = [m.weight for m in manifest.members]
            temperature = manifest.calibration.temperature
            probs = apply_temperature(blend([oof_probs(t) for t in chosen], {i: w for i, w in enumerate(weights)}), temperature, True)
            print(f"Gate: {cls.root}'s selected ensemble ({len(chosen)} member(s), temperature {temperature:.3f})", flush=True)
            return GateSource(source, probs, _section(seg, cls, chosen, weights, temperature, source), [(t.ms_per_image, t.cost) for t in chosen])
    best = max(trials, key=lambda t: t.score)  # metrics.json's oof_score is higher-better (minus a log loss)
    print(f"Gate: {cls.root} has no selected ensemble; its best trial {best.candidate_id} (oof_score {best.score:.4f}, {task.metric})", flush=True)
    return GateSource(source, oof_probs(best), _section(seg, cls, [best], [1.0], 1.0, source), [(best.ms_per_image, best.cost)])


def gate_from_trial(seg: Study, trial: TrialRecord) -> GateSource:
    """The gate from a classification trial of the segmentation study itself ((N, C) OOF)."""
    from ensembling.select_classes import oof_probs

    source = f"trial:{trial.trial_id}"
    k = seg.data.num_classes
    section = ClassSection(multi_label=True, num_classes=k, class_names=[str(c) for c in range(1, k + 1)], calibration=Calibration(),
                           members=[member_entry(seg, trial, 1.0)], source=source, study=str(seg.root))
    return GateSource(source, oof_probs(trial), section, [(trial.ms_per_image, trial.cost)])
