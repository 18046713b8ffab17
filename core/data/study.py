"""The study folder that every trial shares: its data, its fixed folds and the OOF truth.

``check_study_data`` reads the data, decodes every image and splits it, writing nothing, so a bad
input leaves no study behind; then ``prepare_study`` runs once, before any trial: it writes ``folds.csv``
(or checks an existing one) and ``truth.npy`` (the masks at the stored OOF scale, in folds.csv order).
Trials and the selector only ``open_study``. The data keys and their checks live in ``config.py``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from core.atomic import atomic_path, write_with
from core.contract import CLASSIFICATION, STUDY_KIND, STUDY_MULTI_LABEL, StudyFolder, open_array
from core.data.config import (  # noqa: F401  (their home was here: importers keep working)
    SHARED_KEYS,
    TASKS,
    DataConfig,
    check_data_config,
    data_format,
    data_kind,
    fold_data_options,
    is_data_option,
    resolve_root,
    study_metric,
)
from core.data.folds import TRAIN_ONLY, folds_hash, make_folds, read_folds, write_folds
from core.data.formats import SegmentationData, get_format
from core.data.images import verify_image
from core.data.problems import Problems
from core.preprocess import resize_masks, scaled_size


@dataclass
class StudyConfig:
    data: DataConfig = field(default_factory=DataConfig)
    folds: int = 5
    seed: int = 0
    oof_scale: float = 0.25  # OOF probabilities and truth are stored at this fraction of each side
    metric: str = "dice_pairs"  # what trials report and selection optimises (core.metrics registry)
    # the share of the images split into the K folds; the rest train in every fold (core/data/folds.py).
    # None: every image (1.0), unless a time budget's planner re-splits the new study as a holdout
    oof_share: float | None = None


@dataclass
class Study:
    """An opened study: the data, the images of the split in folds.csv order, and the OOF size.

    ``folds`` holds the validated (OOF) images only; ``train_only`` the images folds.csv marks TRAIN_ONLY,
    which every fold model trains on besides its other folds' images."""

    root: Path
    config: StudyConfig
    data: SegmentationData
    folds: pd.DataFrame
    train_only: list[str] = field(default_factory=list)
    split: pd.DataFrame | None = field(default=None, repr=False)  # folds.csv as written, TRAIN_ONLY rows included

    def __post_init__(self) -> None:
        if self.split is None:
            self.split = self.folds
        held = self.split["fold"] == TRAIN_ONLY
        self.folds = self.split[~held].reset_index(drop=True)
        self.train_only = self.split.loc[held, "image_id"].tolist()

    @property
    def image_ids(self) -> list[str]:
        return self.folds["image_id"].tolist()

    @property
    def n_folds(self) -> int:
        return int(self.folds["fold"].max()) + 1

    @property
    def oof_size(self) -> tuple[int, int]:
        return scaled_size(self.data.shape, self.config.oof_scale)

    @property
    def folds_hash(self) -> str:
        return folds_hash(self.split)

    @property
    def all_image_ids(self) -> list[str]:
        """Every image the study trains on, the OOF and the TRAIN_ONLY ones, in folds.csv order (the caches' order)."""
        return self.split["image_id"].tolist()

    @property
    def training_images(self) -> int:
        return len(self.split)

    @property
    def folder(self) -> StudyFolder:
        return StudyFolder(self.root)

    @property
    def kind(self) -> str:
        """``segmentation`` (masks) or ``classification`` (labels, one per image or several)."""
        return self.data.kind

    @property
    def multi_label(self) -> bool:
        return self.data.multi_label

    @property
    def truth_shape(self) -> tuple[int, ...]:
        """(N, C, h, w) masks at the OOF scale, or (N, K) labels for a classification study."""
        if self.kind == CLASSIFICATION:
            return (len(self.image_ids), self.data.num_classes)
        return (len(self.image_ids), self.data.num_classes, *self.oof_size)

    def truth(self) -> np.ndarray:
        """The OOF truth, uint8 0/1 memory-mapped: (N, C, h, w) masks, or (N, K) labels (classification)."""
        return open_array(self.folder.truth)


def study_record(study: Study) -> dict[str, Any]:
    """What study.yaml records about the study's kind beside its settings (core/contract.py)."""
    return {STUDY_KIND: study.kind, STUDY_MULTI_LABEL: study.multi_label}


def load_data(config: DataConfig, problems: Problems | None = None) -> SegmentationData:
    fmt, options = data_format(config)
    if config.root is None:
        raise ValueError(f"data.root must name the data folder for data.format={config.format}")
    data = fmt.read(Path(config.root), options, problems if problems is not None else Problems(config.on_error))
    return as_presence(data) if config.task == "presence" else data


def as_presence(data: SegmentationData) -> SegmentationData:
    """A segmentation set as multi-label classification: label k = the image has any pixel of class k.

    The masks stay (pictures draw them) and ``labels()`` is the same presence the masks' study stratifies
    on, so a presence study with the same data, seed and folds splits exactly as the masks' study does."""
    labels = data.labels()
    presence = {image_id: labels[i] for i, image_id in enumerate(data.image_ids)}
    names = data.class_names or tuple(str(c + 1) for c in range(data.num_classes))
    return dataclasses.replace(data, multi_label=True, presence=presence, class_names=names)


def _subset(data: SegmentationData, limit: int, seed: int) -> list[str]:
    if not limit or limit >= len(data.image_ids):
        return data.image_ids
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(data.image_ids, size=limit, replace=False).tolist())


@dataclass(frozen=True)
class CheckedData:
    """A study's data, read and checked by :func:`check_study_data` before the study folder is written."""

    data: SegmentationData
    problems: Problems
    split: pd.DataFrame  # the folds of a new study (image_id, fold): every image, or data.limit of them


def check_study_data(config: StudyConfig) -> CheckedData:
    """Read the data, decode every image and split it; refuse more folds than images (or than a class has),
    or a set with no label at all (unless data.allow_empty=true). Writes nothing: a bad input leaves no study."""
    problems = Problems(config.data.on_error)
    data = check_images(load_data(config.data, problems), problems)
    ids = _subset(data, config.data.limit, config.seed)
    if len(ids) < config.folds:
        limited = f" (data.limit={config.data.limit})" if len(ids) < len(data.image_ids) else ""
        raise ValueError(
            f"folds={config.folds} must not exceed the number of images: {data.image_dir} has {len(ids)}{limited}; "
            f"use folds={max(2, len(ids))} or fewer, or more images"
        )
    index = {image_id: i for i, image_id in enumerate(data.image_ids)}
    labels = data.labels()[[index[i] for i in ids]]
    if not labels.any():
        _refuse_empty(config.data, len(ids))
    single_label = data.kind == CLASSIFICATION and not data.multi_label
    split = make_folds(ids, labels, config.folds, config.seed, single_label=single_label, oof_share=config.oof_share or 1.0)
    return CheckedData(data=data, problems=problems, split=split)


def resplit_study(study: Study, folds: int, oof_share: float) -> Study:
    """A new study split again before any trial has run (a time budget's planner choosing a holdout):
    folds.csv and truth.npy written anew, each by a temp name then a rename. The old truth.npy goes first,
    so a run stopped half-way leaves a split without its truth, which the next ``prepare_study`` writes."""
    if any(study.folder.trial_folders()):
        raise ValueError(f"{study.root}: trials were already trained on its split, so it cannot be split again; start a new study (study=NAME)")
    labels = study.data.labels()
    index = {image_id: i for i, image_id in enumerate(study.data.image_ids)}
    ids = study.split["image_id"].tolist()
    single_label = study.kind == CLASSIFICATION and not study.multi_label
    split = make_folds(ids, labels[[index[i] for i in ids]], folds, study.config.seed, single_label=single_label, oof_share=oof_share)
    study.folder.truth.unlink(missing_ok=True)
    write_folds(study.folder.folds_csv, split)
    new = Study(root=study.root, config=study.config, data=study.data, folds=split)
    _write_truth(new)
    return new


def _refuse_empty(config: DataConfig, images: int) -> None:
    """No image has any labelled pixel (or label): every score would be a perfect 1.0 of predicting nothing."""
    what = f"data.root={config.root}: none of the {images} training images has a label (no mask pixel, no class)"
    if not config.allow_empty:
        raise ValueError(f"{what}, so every trial would score 1.0 by predicting nothing; check the labels file, or set data.allow_empty=true to search it anyway")
    print(f"warning: {what}; searching it anyway (data.allow_empty=true): every score will be 1.0", file=sys.stderr)


def prepare_study(root: Path, config: StudyConfig, checked: CheckedData | None = None) -> Study:
    """Write folds.csv and truth.npy once (a study re-run with another split is refused), from the data
    ``checked`` (read here when not given). With data.on_error=skip the bad rows and images are listed
    in the study's report file."""
    checked = checked or check_study_data(config)
    data, problems = checked.data, checked.problems
    root.mkdir(parents=True, exist_ok=True)
    write_problems(StudyFolder(root).data_errors, problems)
    folds_path = StudyFolder(root).folds_csv
    if folds_path.exists():
        folds = read_folds(folds_path)
        _check_split(folds_path, folds, config)
        missing = sorted(set(folds["image_id"]) - set(data.image_ids))
        if missing:
            raise ValueError(f"{folds_path}: image {missing[0]} of the split is not in {data.image_dir}")
    else:
        folds = checked.split
        write_folds(folds_path, folds)
    study = Study(root=root, config=config, data=data, folds=folds)
    if StudyFolder(root).truth.exists():
        _check_truth(study)
    else:
        _write_truth(study)
    return study


def _check_split(path: Path, folds: pd.DataFrame, config: StudyConfig) -> None:
    """An existing split is kept only as asked for: K folds, and a holdout where oof_share is below 1.
    With oof_share unset, a holdout a time budget's planner chose is kept as it is."""
    oof = folds[folds["fold"] != TRAIN_ONLY]
    k, held = oof["fold"].nunique(), len(oof) < len(folds)
    asked = config.oof_share
    if (asked is None and held) or (k == config.folds and held == (asked is not None and asked < 1)):
        return
    what = f"{k} folds" + (f" of {len(oof)} of its {len(folds)} images (a holdout)" if held else "")
    given = f"folds={config.folds}" + (f" oof_share={asked}" if asked is not None else "")
    raise ValueError(f"{path}: this study was split into {what}, not as {given} asks; "
                     "OOF ensembling needs one split per study, so start a new study (study=NAME) to change it")


def _check_truth(study: Study) -> None:
    """An existing study keeps its OOF scale: trials already written could not be blended otherwise."""
    have = study.truth().shape
    want = study.truth_shape
    if tuple(have) != want:
        raise ValueError(
            f"{study.folder.truth}: this study stores OOF as {have}, not {want}; oof_scale and "
            "data.classes are fixed per study, so keep them or start a new study (study=NAME)"
        )


def _write_truth(study: Study) -> None:
    size = study.oof_size
    with atomic_path(study.folder.truth) as tmp:
        truth = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=study.truth_shape)
        if study.kind == CLASSIFICATION:  # (N, K): one-hot (single-label) or multi-hot, in folds.csv order
            index = {image_id: i for i, image_id in enumerate(study.data.image_ids)}
            truth[:] = study.data.labels()[[index[i] for i in study.image_ids]].astype(np.uint8)
        else:
            for i, image_id in enumerate(study.image_ids):
                truth[i] = resize_masks(study.data.masks(image_id), size)
        truth.flush()
        del truth


def open_study(root: str | Path) -> Study:
    """Open a prepared study from its study.yaml (only the data and split parts are read here)."""
    root = Path(root)
    path = StudyFolder(root).study_yaml
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a study folder (run `python -m search.run` to make one)")
    raw = yaml.safe_load(path.read_text()) or {}
    config = StudyConfig(
        data=_legacy_data(dict(raw.get("data") or {})),
        **{k: raw[k] for k in ("folds", "seed", "oof_scale", "metric", "oof_share") if k in raw},
    )
    problems = Problems(config.data.on_error)
    data = load_data(config.data, problems)  # the same rows skipped as when the study was prepared
    return Study(root=root, config=config, data=data, folds=read_folds(StudyFolder(root).folds_csv))


def _legacy_data(raw: dict[str, Any]) -> DataConfig:
    """A study.yaml's data section; one written before formats owned their options (``classes`` and
    ``images`` side by side for every format) keeps only the options its format declares."""
    if "options" in raw:
        return DataConfig(**raw)
    shared = {k: raw.pop(k) for k in list(raw) if k in SHARED_KEYS}
    fmt = get_format(str(shared.get("format", DataConfig.format)))
    return DataConfig(**shared, options={k: v for k, v in raw.items() if k in fmt.option_names()})


def check_images(data: SegmentationData, problems: Problems) -> SegmentationData:
    """Decode every training image once (a bar shows it); a missing, unreadable or truncated file is
    reported by file (and, on skip, left out). Mask files are checked for size at the same time."""
    bad: set[str] = set()
    for image_id in tqdm(data.image_ids, desc="checking images", unit="img", leave=False, disable=None):
        path = data.image_path(image_id)
        try:
            size = verify_image(path)
            if image_id in data.mask_files:
                data.masks(image_id, size)
        except (OSError, ValueError) as error:
            message = str(error).removeprefix(f"{path}: ")
            row = f" (listed at {data.sources[image_id]})" if image_id in data.sources else ""
            problems.bad(path, message + row, image_id)
            bad.add(image_id)
    if not bad:
        return data
    kept = [i for i in data.image_ids if i not in bad]
    if not kept:
        raise ValueError(f"{data.image_dir}: no readable training image left after skipping {len(bad)} bad one(s)")
    return dataclasses.replace(data, image_ids=kept)


def write_problems(path: Path, problems: Problems) -> None:
    """The report of skipped rows (always written on skip, so an old report never lingers); prints the count."""
    if problems.on_error != "skip":
        return
    write_with(path, lambda tmp: Path(tmp).write_text(problems.to_csv()))
    if problems.found:
        print(f"data.on_error=skip: skipped {len(problems)} bad row(s) or file(s), listed in {path}")
