"""The study folder that every trial shares: its data, its fixed folds and the OOF truth.

``prepare_study`` runs once, before any trial: it reads the data, writes ``folds.csv`` (or checks an
existing one) and ``truth.npy`` (the masks at the stored OOF scale, in folds.csv order). Trials and
the selector only ``open_study``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from trainables.atomic import atomic_path, write_with
from trainables.contract import CLASSIFICATION, STUDY_KIND, STUDY_MULTI_LABEL, StudyFolder, open_array
from trainables.data.folds import folds_hash, make_folds, read_folds, write_folds
from trainables.data.formats import DataFormat, SegmentationData, get_format
from trainables.data.images import verify_image
from trainables.data.problems import ON_ERROR, Problems
from trainables.preprocess import resize_masks, scaled_size


@dataclass(init=False)
class DataConfig:
    """The data keys every format shares, plus ``options``: the format's own ``data.<key>`` values.

    ``DataConfig(format="synthetic", images=16)`` and a study.yaml written before options had their
    own section both work: a keyword that is not a shared key is a format option.
    """

    format: str = "synthetic"
    root: str | None = None  # None: the format's default folder (only synthetic has one)
    limit: int = 0  # use a random subset of this many training images (0 = all), for fast screening
    on_error: str = "stop"  # "skip": leave bad rows out, list them in the study's report file
    # "auto": what the format holds (masks, or labels); "presence": a segmentation set read as multi-label
    # classification, label k = the image has any pixel of class k (same images and folds as its masks' study)
    task: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        format: str = "synthetic",
        root: str | None = None,
        limit: int = 0,
        on_error: str = "stop",
        task: str = "auto",
        options: dict[str, Any] | None = None,
        **more: Any,
    ) -> None:
        self.format, self.root, self.limit, self.on_error, self.task = format, root, limit, on_error, task
        self.options = {**(options or {}), **more}


SHARED_KEYS = tuple(f.name for f in dataclasses.fields(DataConfig))
TASKS = ("auto", "presence")


def fold_data_options(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat ``data.<key>`` words that are no shared key into ``data.options`` (a format's options)."""
    out = {k: v for k, v in flat.items() if not is_data_option(k)}
    options = dict(out.pop("data.options", None) or {})
    options.update({k.split(".", 1)[1]: v for k, v in flat.items() if is_data_option(k)})
    if options:
        out["data.options"] = options
    return out


def is_data_option(key: str) -> bool:
    section, _, name = key.partition(".")
    return section == "data" and bool(name) and "." not in name and name not in SHARED_KEYS


def data_format(config: DataConfig) -> tuple[DataFormat, Any]:
    """The format and its typed options; an unknown format or option is a one-line error."""
    fmt = get_format(config.format)
    if config.on_error not in ON_ERROR:
        raise ValueError(f"data.on_error must be one of {', '.join(ON_ERROR)}, got {config.on_error!r}")
    if config.task not in TASKS:
        raise ValueError(f"data.task must be one of {', '.join(TASKS)}, got {config.task!r}")
    if config.task == "presence" and fmt.kind != "segmentation":
        raise ValueError(f"data.task=presence reads a segmentation set's masks as labels; data.format={fmt.name} has labels already (leave data.task out)")
    return fmt, fmt.parse_options(config.options)


def check_data_config(config: DataConfig) -> None:
    """Everything about the data keys that can be checked before reading a file."""
    fmt, options = data_format(config)
    if config.root is None and fmt.default_root(Path("."), options) is None:
        raise ValueError(f"data.format={config.format} reads a folder: name it with data.root=PATH")


def data_kind(config: DataConfig) -> tuple[str, bool]:
    """(``segmentation`` or ``classification``, multi-label) of a data config, read from its format and
    options without opening a file."""
    fmt, options = data_format(config)
    if config.task == "presence":
        return CLASSIFICATION, True
    return fmt.kind, bool(getattr(options, "multi_label", False))


def study_metric(config: DataConfig, metric: str | None) -> str:
    """The metric a study of this data is scored by: the one named, checked against the data's kind, or
    the kind's default (dice_pairs for masks; accuracy single-label, macro_f1 multi-label)."""
    from trainables.class_metrics import CLASS_METRICS, default_metric, is_class_metric
    from trainables.metrics import DEFAULT_METRIC, get_metric, list_metrics

    kind, multi = data_kind(config)
    if kind == CLASSIFICATION:
        if metric is None:
            return default_metric(multi)
        if not is_class_metric(metric):
            raise ValueError(
                f"metric={metric}: data.format={config.format} holds image labels; use one of {', '.join(CLASS_METRICS.names())}"
                + ("" if metric in list_metrics() else f" (masks: {', '.join(list_metrics())})")
            )
        return metric
    if metric is None:
        return DEFAULT_METRIC
    if is_class_metric(metric):
        raise ValueError(
            f"metric={metric} scores image labels, but data.format={config.format} holds masks; use one of "
            f"{', '.join(list_metrics())}, or data.task=presence to classify which classes each image has"
        )
    get_metric(metric)  # an unknown name lists the registered metrics
    return metric


def resolve_root(config: DataConfig, storage: str | Path) -> str:
    """data.root made absolute, or the format's default folder under ``storage``."""
    fmt, options = data_format(config)
    if config.root is not None:
        return str(Path(config.root).expanduser().resolve())
    root = fmt.default_root(Path(storage).expanduser().resolve(), options)
    if root is None:
        raise ValueError(f"data.format={config.format} reads a folder: name it with data.root=PATH")
    return str(root)


@dataclass
class StudyConfig:
    data: DataConfig = field(default_factory=DataConfig)
    folds: int = 5
    seed: int = 0
    oof_scale: float = 0.25  # OOF probabilities and truth are stored at this fraction of each side
    metric: str = "dice_pairs"  # what trials report and selection optimises (trainables.metrics registry)


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
    """What study.yaml records about the study's kind beside its settings (trainables/contract.py)."""
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


def prepare_study(root: Path, config: StudyConfig) -> Study:
    """Check every image decodes, write folds.csv and truth.npy once; a study re-run with another split
    is refused. With data.on_error=skip the bad rows and images are listed in the study's report file."""
    problems = Problems(config.data.on_error)
    data = load_data(config.data, problems)
    data = check_images(data, problems)
    root.mkdir(parents=True, exist_ok=True)
    write_problems(StudyFolder(root).data_errors, problems)
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
        single_label = data.kind == CLASSIFICATION and not data.multi_label
        folds = make_folds(ids, labels, config.folds, config.seed, single_label=single_label)
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
        **{k: raw[k] for k in ("folds", "seed", "oof_scale", "metric") if k in raw},
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
