"""The study-folder and trial-folder contract: every file name that crosses a boundary, and its typed reads.

A study folder ``<storage>/<study>/`` holds ``study.yaml`` (the resolved config), ``folds.csv`` (the
fixed split), ``truth.npy`` (the OOF truth), ``data_errors.csv`` (rows ``data.on_error=skip`` left out),
``cache/`` (decoded images and masks per training size), ``data.png`` (the data picture) and
``trials/<trial_id>/``; a trial folder holds
``config.yaml``, ``fold<k>/model.safetensors``, ``oof.npy``, ``cost.json`` and ``metrics.json``, the last
written last and atomically: a folder is complete only once it exists. While a search runs, the study
also holds ``search.lock``, and for resuming ``scheduler.json`` (ASHA's rungs) and ``mlflow_runs.json``
(the study's MLflow run ids) beside Ray Tune's own files. No other module spells these names; writers (``fit``, ``study``) and readers (``store``, ``manifest``, ``export``) all come here.

Reads are checked: a truncated, empty or foreign file raises :class:`DamagedFile` naming the file and what
is wrong, so a reader can skip it with one line instead of failing deep inside numpy or safetensors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.atomic import write_json, write_yaml

STUDY_YAML = "study.yaml"
FOLDS_CSV = "folds.csv"
TRUTH_NPY = "truth.npy"
TRIALS = "trials"
DATA_ERRORS = "data_errors.csv"  # the rows and files data.on_error=skip left out, with the reason
DATA_CACHE = "cache"  # decoded, resized images and masks per training size, shared by every trial
DATA_PICTURE = "data.png"  # the inspect grid: images with their decoded masks, looked at by eye
ENSEMBLE_JSON = "ensemble.json"
CONFIG_YAML = "config.yaml"
OOF_NPY = "oof.npy"
COST_JSON = "cost.json"
METRICS_JSON = "metrics.json"
WEIGHTS = "model.safetensors"
CHECKPOINT_STATE = "state.json"  # inside a Ray checkpoint folder, beside fold<k>/model.safetensors
TRAIN_STATE = "train_state.pt"  # checkpoint fold<k>/: optimizer, schedule and grad-scaler state (tensors only)
EMA_WEIGHTS = "ema.safetensors"  # checkpoint fold<k>/: the EMA of the weights, beside model.safetensors
WORST_BEST_PNG = "worst_best.png"  # in pictures/: the worst and best validation images, truth and prediction
SNAPSHOTS = "snapshots"  # trials/<id>/snapshots/<name>/: an extra candidate of the same trial (cyclic low, EMA)
PICTURES = "pictures"  # trials/<id>/pictures/*.png: what a person looks at (worst and best validation images)
SEARCH_LOCK = "search.lock"  # held by the one search running on a study: pid, host, start time
SCHEDULER_STATE = "scheduler.json"  # the ASHA rungs, rewritten on every result so a resumed search prunes alike
MLFLOW_RUNS = "mlflow_runs.json"  # the study's MLflow parent run and trial_id -> run_id, so a resume reuses them
REFIT = "refit"  # trials/<id>/refit/model.safetensors: the trial's config retrained on every training image
ENSEMBLES_JSON = "ensembles.json"  # <study>/ensembles.json: every exported ensemble by its id (scores, members)
LEADERBOARD_JSON = "leaderboard.json"  # <study>/leaderboard.json: recorded leaderboard scores of submissions
PLAN_JSON = "plan.json"  # <study>/plan.json: a time_budget search's plan and how it spent the time (search/planner.py)
EXTRA_DIR = "extra"  # <study>/extra/<name>/: extra training targets (pseudo-labelled test images, a teacher's soft targets)
EXTRA_JSON = "extra.json"  # extra/<name>/extra.json: what the folder holds (core/data/extra.py), written last
PSEUDO_JSON = "pseudo.json"  # extra/<name>/pseudo.json: the threshold, the precision reached and the kept counts (ensembling.pseudo)
EXTRA_ALL = "all"  # extra/<name>/<part>_all.npy: the targets the refit (train_all) trains on

# An export folder: the manifest, members/<trial_id>/ (weights, config), code/ (the predictor's modules),
# the one-command runner and README, and the marker that says we wrote it (so a later export may replace it).
EXPORT_MARKER = "kvs-export.json"
EXPORT_MEMBERS = "members"
EXPORT_CODE = "code"
EXPORT_RUNNER = "predict.py"
EXPORT_README = "README.md"
SIDECAR_SUFFIX = ".ensemble.json"  # submission.csv.ensemble.json: which ensemble wrote the submission

# --- classification studies (issue 15) -------------------------------------------------------------
# study.yaml records what a study predicts: STUDY_KIND is "segmentation" (masks) or "classification"
# (labels); STUDY_MULTI_LABEL is true when an image may have several classes (one sigmoid per class, as
# the presence study of a segmentation data set, data.task=presence) and false for one class per image
# (softmax). A study.yaml written before these keys is a segmentation study.
#
# A classification study's truth.npy is (N, K) uint8 0/1 (one-hot for single-label, multi-hot for
# multi-label), rows in folds.csv order; a classification trial's (and snapshot's) oof.npy is (N, K)
# float16 probabilities in the same order: softmax rows for single-label, independent sigmoids for
# multi-label. cost.json is as for segmentation (ms per image with the trial's TTA, device, reference_ms).
# metrics.json's oof_score is the study's metric (core/class_metrics.py; log_loss is lower-better:
# see its ``higher_is_better``), plus "multi_label" and "kind".
STUDY_KIND = "kind"
STUDY_MULTI_LABEL = "multi_label"
SEGMENTATION, CLASSIFICATION = "segmentation", "classification"
CLASS_TRUTH_DTYPE = np.uint8
CLASS_OOF_DTYPE = np.float16


def sidecar(submission: Path) -> Path:
    """The file beside a submission that names the ensemble that wrote it."""
    return Path(submission).with_name(Path(submission).name + SIDECAR_SUFFIX)


class DamagedFile(ValueError):
    """A contract file that exists but cannot be used: its message names the file and what is wrong."""


def fold_weights(folder: Path, fold: int) -> Path:
    """``<folder>/fold<k>/model.safetensors``: a trial folder's or a checkpoint folder's weights of one fold."""
    return Path(folder) / f"fold{fold}" / WEIGHTS


@dataclass(frozen=True)
class StudyFolder:
    """The paths of one study folder."""

    root: Path

    @property
    def study_yaml(self) -> Path:
        return self.root / STUDY_YAML

    @property
    def folds_csv(self) -> Path:
        return self.root / FOLDS_CSV

    @property
    def truth(self) -> Path:
        return self.root / TRUTH_NPY

    @property
    def trials_dir(self) -> Path:
        return self.root / TRIALS

    @property
    def data_errors(self) -> Path:
        return self.root / DATA_ERRORS

    @property
    def cache_dir(self) -> Path:
        return self.root / DATA_CACHE

    @property
    def data_picture(self) -> Path:
        return self.root / DATA_PICTURE

    @property
    def ensemble_json(self) -> Path:
        return self.root / ENSEMBLE_JSON

    @property
    def lock(self) -> Path:
        return self.root / SEARCH_LOCK

    @property
    def scheduler_state(self) -> Path:
        return self.root / SCHEDULER_STATE

    @property
    def mlflow_runs(self) -> Path:
        return self.root / MLFLOW_RUNS

    @property
    def ensembles_json(self) -> Path:
        return self.root / ENSEMBLES_JSON

    @property
    def leaderboard_json(self) -> Path:
        return self.root / LEADERBOARD_JSON

    @property
    def plan_json(self) -> Path:
        return self.root / PLAN_JSON

    @property
    def extra_dir(self) -> Path:
        return self.root / EXTRA_DIR

    def extra(self, name: str) -> ExtraFolder:
        return ExtraFolder(self.extra_dir / name)

    def trial(self, trial_id: str) -> TrialFolder:
        return TrialFolder(self.trials_dir / trial_id)

    def trial_folders(self) -> list[TrialFolder]:
        """Every trial folder, complete or not, in name order."""
        if not self.trials_dir.is_dir():
            return []
        return [TrialFolder(p) for p in sorted(self.trials_dir.iterdir()) if p.is_dir()]

    def read_config(self) -> dict[str, Any]:
        return read_yaml_file(self.study_yaml)

    def write_config(self, config: dict[str, Any]) -> None:
        write_yaml(self.study_yaml, config)

    def kind(self) -> str:
        """``segmentation`` or ``classification``, from study.yaml (older studies: segmentation)."""
        return str(self.read_config().get(STUDY_KIND) or SEGMENTATION)

    def multi_label(self) -> bool:
        """Whether a classification study's images may have several classes (from study.yaml)."""
        return bool(self.read_config().get(STUDY_MULTI_LABEL, False))

    def class_truth(self) -> np.ndarray:
        """A classification study's truth (N, K) uint8 0/1, memory-mapped and checked."""
        truth = open_array(self.truth, dtype=CLASS_TRUTH_DTYPE)
        if truth.ndim != 2:
            raise DamagedFile(f"{self.truth}: a classification study's truth is (images, classes), got shape {truth.shape}")
        return truth


@dataclass(frozen=True)
class TrialFolder:
    """The paths of one trial folder, and typed reads and writes of its files."""

    root: Path

    @property
    def trial_id(self) -> str:
        return self.root.name

    @property
    def config_yaml(self) -> Path:
        return self.root / CONFIG_YAML

    @property
    def oof(self) -> Path:
        return self.root / OOF_NPY

    @property
    def cost_json(self) -> Path:
        return self.root / COST_JSON

    @property
    def metrics_json(self) -> Path:
        return self.root / METRICS_JSON

    def weights(self, fold: int) -> Path:
        return fold_weights(self.root, fold)

    @property
    def refit_dir(self) -> Path:
        return self.root / REFIT

    @property
    def refit_weights(self) -> Path:
        """The config retrained on every training image (``python -m ensembling.refit``)."""
        return self.root / REFIT / WEIGHTS

    @property
    def refit_metrics(self) -> Path:
        return self.root / REFIT / METRICS_JSON

    @property
    def complete(self) -> bool:
        """True once metrics.json, the last file a trial writes, exists."""
        return self.metrics_json.is_file()

    @property
    def pictures_dir(self) -> Path:
        return self.root / PICTURES

    def snapshot(self, name: str) -> TrialFolder:
        """``snapshots/<name>/``: the same files as a trial folder (``oof.npy``, ``fold<k>/model.safetensors``,
        ``metrics.json`` last), for a further candidate of this trial; config and cost are the trial's."""
        return TrialFolder(self.root / SNAPSHOTS / name)

    def snapshots(self) -> list[TrialFolder]:
        """This trial's snapshot folders, complete or not, in name order."""
        folder = self.root / SNAPSHOTS
        return [TrialFolder(p) for p in sorted(folder.iterdir()) if p.is_dir()] if folder.is_dir() else []

    def write_config(self, config: dict[str, Any]) -> None:
        write_yaml(self.config_yaml, config)

    def read_config(self) -> dict[str, Any]:
        return read_yaml_file(self.config_yaml)

    def write_cost(self, cost: dict[str, Any]) -> None:
        write_json(self.cost_json, _checked(cost, COST_KEYS, self.cost_json, DamagedFile))

    def read_cost(self) -> dict[str, Any]:
        return _checked(read_json_file(self.cost_json), COST_KEYS, self.cost_json, DamagedFile)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Written last: from here on the folder is complete."""
        write_json(self.metrics_json, _checked(metrics, METRICS_KEYS, self.metrics_json, DamagedFile))

    def read_metrics(self) -> dict[str, Any]:
        return _checked(read_json_file(self.metrics_json), METRICS_KEYS, self.metrics_json, DamagedFile)

    def class_oof(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """A classification candidate's OOF probabilities (N, K) float16, memory-mapped and checked."""
        return open_array(self.oof, shape, dtype=CLASS_OOF_DTYPE)


@dataclass(frozen=True)
class ExtraFolder:
    """``<study>/extra/<name>/``: extra training targets (``core/data/extra.py`` reads and writes them).

    ``extra.json`` (written last: the folder is complete once it exists) says what the arrays hold;
    ``images_<k>.npy`` are the extra images' targets for fold k and ``own_<k>.npy`` soft targets for the
    study's own images (rows in folds.csv order), ``<part>_all.npy`` the refit's."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def extra_json(self) -> Path:
        return self.root / EXTRA_JSON

    @property
    def complete(self) -> bool:
        return self.extra_json.is_file()

    def targets(self, part: str, fold: int | None) -> Path:
        """``images_<k>.npy`` / ``own_<k>.npy``; fold None: the refit's ``<part>_all.npy``."""
        return self.root / f"{part}_{EXTRA_ALL if fold is None else fold}.npy"


# The keys every reader relies on, with their types; files may hold more (per-epoch scores, snapshots ...).
COST_KEYS: dict[str, type | tuple[type, ...]] = {
    "ms_per_image": (int, float),
    "ms_per_image_all_folds": (int, float),
    "device": str,
    "reference_ms": (int, float),
}
METRICS_KEYS: dict[str, type | tuple[type, ...]] = {
    "oof_score": (int, float),
    "ms_per_image": (int, float),
    "folds": list,
    "complete": bool,
    "folds_hash": str,
}


def _checked(data: Any, keys: dict[str, Any], path: Path, error: type[Exception]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key, kind in keys.items():
        if key not in data:
            raise error(f"{path}: key {key!r} is missing")
        value = data[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise error(f"{path}: {key} must be {_kind_name(kind)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise error(f"{path}: {key} must be a finite number, got {value!r}")
    return data


def _kind_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def read_json_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedFile(f"{path}: not valid JSON ({error})") from None


def read_yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DamagedFile(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


def open_array(path: Path, shape: tuple[int, ...] | None = None, dtype: Any = np.uint8) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only, after checking its header, dtype, shape and size.

    numpy alone reports a truncated file as "mmap length is greater than file size", an empty one as an
    EOFError, and random bytes as a question about pickles; here each is one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            header = read_header(handle)  # (shape, fortran order, dtype)
            offset = handle.tell()
    except (ValueError, EOFError, OSError) as error:
        raise DamagedFile(f"{path}: not a .npy array file ({size} bytes; {error})") from None
    have_shape, fortran, have_dtype = header
    if have_dtype != np.dtype(dtype) or fortran:
        raise DamagedFile(f"{path}: expected a C-ordered {np.dtype(dtype)} array, got {have_dtype}{' (Fortran order)' if fortran else ''}")
    if shape is not None and tuple(have_shape) != tuple(shape):
        raise DamagedFile(f"{path}: expected shape {tuple(shape)}, got {tuple(have_shape)} (written for another split or scale?)")
    expected = offset + int(np.prod(have_shape)) * np.dtype(dtype).itemsize
    if size != expected:
        raise DamagedFile(f"{path}: truncated or padded: {size} bytes, expected {expected} for shape {tuple(have_shape)}")
    return np.load(path, mmap_mode="r")


def check_weights(path: Path) -> None:
    """A safetensors file whose header and size agree (read without loading the tensors)."""
    from safetensors import safe_open  # imported here: the offline predictor imports this module too

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise DamagedFile(f"{path}: not a safetensors file ({size} bytes)")
            header_len = int.from_bytes(head, "little")
            if header_len > size - 8:
                raise DamagedFile(f"{path}: not a safetensors file, or truncated ({size} bytes)")
            header = json.loads(handle.read(header_len))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        if size != 8 + header_len + end:
            raise DamagedFile(f"{path}: truncated safetensors file: {size} bytes, its header needs {8 + header_len + end}")
        with safe_open(str(path), framework="pt") as opened:
            opened.keys()
    except DamagedFile:
        raise
    except Exception as error:  # safetensors raises its own SafetensorError; a bad header any of several
        raise DamagedFile(f"{path}: not a readable safetensors file ({type(error).__name__}: {error})") from None

