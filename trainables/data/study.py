"""The study folder that every trial shares: its data, its fixed folds and the OOF truth.

``prepare_study`` runs once, before any trial: it reads the data, writes ``folds.csv`` (or checks an
existing one) and ``truth.npy`` (the masks at the stored OOF scale, in folds.csv order). Trials and
the selector only ``open_study``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from trainables.atomic import atomic_path
from trainables.contract import StudyFolder, open_array
from trainables.data.folds import folds_hash, make_folds, read_folds, write_folds
from trainables.data.formats import SegmentationData, get_format
from trainables.preprocess import resize_masks, scaled_size


@dataclass
class DataConfig:
    format: str = "synthetic"
    root: str | None = None  # None: the synthetic set is generated under the storage folder
    classes: int = 4
    images: int = 96  # synthetic only: how many training images to generate
    limit: int = 0  # use a random subset of this many training images (0 = all), for fast screening


@dataclass
class StudyConfig:
    data: DataConfig = field(default_factory=DataConfig)
    folds: int = 5
    seed: int = 0
    oof_scale: float = 0.25  # OOF probabilities and truth are stored at this fraction of each side


@dataclass
class Study:
    """An opened study: the data, the images of the split in folds.csv order, and the OOF size."""

    root: Path
    config: StudyConfig
    data: SegmentationData
    folds: pd.DataFrame

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
        return folds_hash(self.folds)

    @property
    def folder(self) -> StudyFolder:
        return StudyFolder(self.root)

    def truth(self) -> np.ndarray:
        """The OOF truth (N, C, h, w) uint8 0/1, memory-mapped."""
        return open_array(self.folder.truth)


def load_data(config: DataConfig) -> SegmentationData:
    reader = get_format(config.format)
    if config.root is None:
        raise ValueError("data.root must name the data folder (only the synthetic set has a default)")
    options = {"images": config.images} if config.format == "synthetic" else {}
    return reader(config.root, num_classes=config.classes, **options)


def _subset(data: SegmentationData, limit: int, seed: int) -> list[str]:
    if not limit or limit >= len(data.image_ids):
        return data.image_ids
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(data.image_ids, size=limit, replace=False).tolist())


def prepare_study(root: Path, config: StudyConfig) -> Study:
    """Write folds.csv and truth.npy once; a study re-run with another split is refused."""
    data = load_data(config.data)
    root.mkdir(parents=True, exist_ok=True)
    folds_path = StudyFolder(root).folds_csv
    if folds_path.exists():
        folds = read_folds(folds_path)
        if folds["fold"].nunique() != config.folds:
            raise ValueError(
                f"{folds_path}: this study was split into {folds['fold'].nunique()} folds, not {config.folds}; "
                "OOF ensembling needs one split per study, so start a new study (study=NAME) to change it"
            )
        missing = sorted(set(folds["image_id"]) - set(data.image_ids))
        if missing:
            raise ValueError(f"{folds_path}: image {missing[0]} of the split is not in {data.image_dir}")
    else:
        ids = _subset(data, config.data.limit, config.seed)
        index = {image_id: i for i, image_id in enumerate(data.image_ids)}
        labels = data.labels()[[index[i] for i in ids]]
        folds = make_folds(ids, labels, config.folds, config.seed)
        write_folds(folds_path, folds)
    study = Study(root=root, config=config, data=data, folds=folds)
    if StudyFolder(root).truth.exists():
        _check_truth(study)
    else:
        _write_truth(study)
    return study


def _check_truth(study: Study) -> None:
    """An existing study keeps its OOF scale: trials already written could not be blended otherwise."""
    have = study.truth().shape
    want = (len(study.image_ids), study.data.num_classes, *study.oof_size)
    if tuple(have) != want:
        raise ValueError(
            f"{study.folder.truth}: this study stores OOF as {have}, not {want}; oof_scale and "
            "data.classes are fixed per study, so keep them or start a new study (study=NAME)"
        )


def _write_truth(study: Study) -> None:
    size = study.oof_size
    shape = (len(study.image_ids), study.data.num_classes, *size)
    with atomic_path(study.folder.truth) as tmp:
        truth = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
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
        data=DataConfig(**raw.get("data", {})),
        **{k: raw[k] for k in ("folds", "seed", "oof_scale") if k in raw},
    )
    data = load_data(config.data)
    return Study(root=root, config=config, data=data, folds=read_folds(StudyFolder(root).folds_csv))
