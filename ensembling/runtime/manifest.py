"""The ensemble manifest, ``ensemble.json``: everything a predictor needs, and where it came from.

:class:`Manifest` is its typed form, read once (:func:`read_manifest`: a missing or wrongly typed field is
one line naming the file and the field) and written once (:func:`write_manifest`); nothing else reads
the JSON. Members (:class:`MemberEntry`) name their trial (and snapshot, when the candidate was one of
its snapshots), weight, per-fold checkpoints (paths relative to the manifest's folder), model config and
TTA. Post-processing lists its steps in the order they apply and each class's value of each (format 1
had a threshold and a minimum area only, and is still read); it stays a mapping, read by
``core/postprocess``. A classification manifest and a segmentation manifest's classifier gate share
one shape (:class:`ClassSection`). The folds hash ties it to one split; ``format_version`` lets a later
reader refuse what it cannot read. Fields a later version adds are kept as they are (``extra``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.atomic import write_json
from core.preprocess import MULTIPLE, scaled_size

if TYPE_CHECKING:  # building a manifest needs a study; reading one (the offline predictor) must not
    from core.data.study import Study
    from core.postprocess import Tuned
    from core.store import TrialRecord
    from ensembling.scoring.greedy import Selection

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SEGMENTATION, CLASSIFICATION = "segmentation", "classification"


class ManifestError(ValueError):
    """A manifest field is missing or of the wrong type."""


def _take(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in raw or raw[key] is None:
        if default is ...:
            raise ManifestError(f"{where}: field {key!r} is missing")
        return default
    value = raw[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{where}: field {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _unknown(raw: dict[str, Any], cls: type) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k not in known}


@dataclass
class MemberEntry:
    """One ensemble member: a trial's fold (or refit) models, their config, TTA and weight."""

    trial_id: str
    weight: float
    config: dict[str, Any]
    tta: str
    input_size: tuple[int, int]
    checkpoints: list[str]
    candidate_id: str | None = None
    snapshot: str | None = None
    oof_score: float | None = None
    ms_per_image: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The candidate's id (a trial, or a trial's snapshot)."""
        return self.candidate_id or self.trial_id

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> MemberEntry:
        if not isinstance(raw, dict):
            raise ManifestError(f"{where}: a member must be a mapping, got {raw!r}")
        trial_id = _take(raw, "trial_id", str, where)
        where = f"{where} {trial_id}"
        size = _take(raw, "input_size", list, where)
        if len(size) != 2 or not all(isinstance(v, int) for v in size):
            raise ManifestError(f"{where}: field 'input_size' must be [height, width], got {size!r}")
        return cls(
            trial_id=trial_id,
            weight=_take(raw, "weight", float, where),
            config=_take(raw, "config", dict, where),
            tta=_take(raw, "tta", str, where),
            input_size=(size[0], size[1]),
            checkpoints=[str(c) for c in _take(raw, "checkpoints", list, where)],
            candidate_id=_take(raw, "candidate_id", str, where, None),
            snapshot=_take(raw, "snapshot", str, where, None),
            oof_score=_take(raw, "oof_score", float, where, None),
            ms_per_image=_take(raw, "ms_per_image", float, where, None),
            extra=_unknown(raw, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "trial_id": self.trial_id,
            "candidate_id": self.candidate_id,
            "snapshot": self.snapshot,
            "weight": self.weight,
            "oof_score": self.oof_score,
            "config": self.config,
            "tta": self.tta,
            "input_size": list(self.input_size),
            "checkpoints": list(self.checkpoints),
            "ms_per_image": self.ms_per_image,
        }


@dataclass
class Calibration:
    """A class ensemble's tuned knobs: temperature, per-class thresholds (multi-label), argmax weights."""

    temperature: float = 1.0
    thresholds: list[float] | None = None
    class_weights: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, where: str) -> Calibration:
        raw = raw or {}
        return cls(
            temperature=_take(raw, "temperature", float, where, 1.0),
            thresholds=_take(raw, "thresholds", list, where, None),
            class_weights=_take(raw, "class_weights", list, where, None),
            extra=_unknown(raw, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {**self.extra, "temperature": self.temperature, "thresholds": self.thresholds}
        if self.class_weights is not None:
            out["class_weights"] = self.class_weights
        return out


@dataclass
class ClassSection:
    """What a classifier ensemble predicts with: a classification manifest's own fields, or a segmentation
    manifest's ``gate`` (which also says its ``source`` and the share of images it leaves to segment)."""

    multi_label: bool
    num_classes: int
    class_names: list[str]
    calibration: Calibration
    members: list[MemberEntry]
    # a gate's: where its classifiers come from, their seconds for the budget's images, the share left to segment
    source: str | None = None
    study: str | None = None
    seconds: float | None = None
    segmented_share: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> ClassSection:
        return cls(
            multi_label=_take(raw, "multi_label", bool, where),
            num_classes=_take(raw, "num_classes", int, where),
            class_names=[str(n) for n in _take(raw, "class_names", list, where)],
            calibration=Calibration.from_dict(_take(raw, "calibration", dict, where, None), f"{where}: calibration"),
            members=_members(raw, where),
            source=_take(raw, "source", str, where, None),
            study=_take(raw, "study", str, where, None),
            seconds=_take(raw, "seconds", float, where, None),
            segmented_share=_take(raw, "segmented_share", float, where, None),
            extra=_unknown(raw, cls),
        )

    def to_dict(self) -> dict[str, Any]:
        optional = {"source": self.source, "study": self.study, "seconds": self.seconds, "segmented_share": self.segmented_share}
        return {
            **self.extra,
            **{k: v for k, v in optional.items() if v is not None},
            "multi_label": self.multi_label,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "calibration": self.calibration.to_dict(),
            "members": [m.to_dict() for m in self.members],
        }


def _members(raw: dict[str, Any], where: str) -> list[MemberEntry]:
    return [MemberEntry.from_dict(m, f"{where}: member") for m in _take(raw, "members", list, where)]


@dataclass
class Manifest:
    """``ensemble.json``. ``kind`` says which of the kind-specific fields are set: a segmentation manifest
    has ``class_ids``, ``rle_order``, ``data`` and maybe a ``gate``; a classification one ``classes``."""

    format_version: int
    kind: str
    num_classes: int
    members: list[MemberEntry]
    metric: str
    postprocessing: dict[str, Any]
    oof_score: float
    class_scores: list[float] | None = None
    study: str | None = None
    folds_hash: str | None = None
    image_shape: list[int] | None = None
    best_single: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)
    nested_score: float | None = None
    nested_fold_scores: list[float] | None = None
    nested_split: str | None = None
    # segmentation
    class_ids: list[int] = field(default_factory=list)
    rle_order: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    gate: ClassSection | None = None
    # classification
    classes: ClassSection | None = None
    higher_is_better: bool = True
    knobs: dict[str, Any] = field(default_factory=dict)
    # written by the export
    models: str = "folds"
    ensemble_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_classification(self) -> bool:
        return self.kind == CLASSIFICATION

    def class_section(self) -> ClassSection:
        """A classification manifest's classifier, with the manifest's members."""
        if self.classes is None:
            raise ManifestError(f"ensemble {self.ensemble_id or self.study}: a {self.kind} manifest has no class section")
        return ClassSection(self.classes.multi_label, self.num_classes, self.classes.class_names, self.classes.calibration, self.members)

    @property
    def class_names(self) -> list[str]:
        return self.classes.class_names if self.classes is not None else [str(c) for c in self.class_ids]

    @property
    def multi_label(self) -> bool:
        return self.classes.multi_label if self.classes is not None else True

    @property
    def calibration(self) -> Calibration:
        return self.classes.calibration if self.classes is not None else Calibration()

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> Manifest:
        if not isinstance(raw, dict):
            raise ManifestError(f"{where}: must hold a JSON object, got {type(raw).__name__}")
        kind = _take(raw, "kind", str, where, SEGMENTATION)
        if kind not in (SEGMENTATION, CLASSIFICATION):
            raise ManifestError(f"{where}: field 'kind' must be {SEGMENTATION} or {CLASSIFICATION}, got {kind!r}")
        classes = ClassSection.from_dict(raw, where) if kind == CLASSIFICATION else None
        if classes is not None:  # the manifest's own fields are kept once, in the manifest
            classes.extra, classes.study = {}, None
        gate = _take(raw, "gate", dict, where, None)
        known = {f.name for f in fields(cls)} | {f.name for f in fields(ClassSection)}
        return cls(
            format_version=_take(raw, "format_version", int, where),
            kind=kind,
            num_classes=_take(raw, "num_classes", int, where),
            members=classes.members if classes is not None else _members(raw, where),
            metric=_take(raw, "metric", str, where),
            postprocessing=_take(raw, "postprocessing", dict, where, {}),
            oof_score=_take(raw, "oof_score", float, where),
            class_scores=_take(raw, "class_scores", list, where, None),
            study=_take(raw, "study", str, where, None),
            folds_hash=_take(raw, "folds_hash", str, where, None),
            image_shape=_take(raw, "image_shape", list, where, None),
            best_single=_take(raw, "best_single", dict, where, {}),
            budget=_take(raw, "budget", dict, where, {}),
            history=_take(raw, "history", list, where, []),
            nested_score=_take(raw, "nested_score", float, where, None),
            nested_fold_scores=_take(raw, "nested_fold_scores", list, where, None),
            nested_split=_take(raw, "nested_split", str, where, None),
            class_ids=_take(raw, "class_ids", list, where, []) if classes is None else [],
            rle_order=_take(raw, "rle_order", str, where, None),
            data=_take(raw, "data", dict, where, {}),
            gate=None if gate is None else ClassSection.from_dict(gate, f"{where}: gate"),
            classes=classes,
            higher_is_better=_take(raw, "higher_is_better", bool, where, True),
            knobs=_take(raw, "knobs", dict, where, {}),
            models=_take(raw, "models", str, where, "folds"),
            ensemble_id=_take(raw, "ensemble_id", str, where, None),
            extra={k: v for k, v in raw.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "format_version": self.format_version}
        if self.classes is not None:
            out.update({"kind": CLASSIFICATION, **self.class_section().to_dict(), "higher_is_better": self.higher_is_better, "knobs": self.knobs})
        else:
            out.update({"class_ids": self.class_ids, "rle_order": self.rle_order, "data": self.data, "members": [m.to_dict() for m in self.members]})
        out.update({
            "study": self.study,
            "folds_hash": self.folds_hash,
            "num_classes": self.num_classes,
            "image_shape": self.image_shape,
            "metric": self.metric,
            "postprocessing": self.postprocessing,
            "oof_score": self.oof_score,
            "class_scores": self.class_scores,
            "nested_score": self.nested_score,
            "nested_fold_scores": self.nested_fold_scores,
            "nested_split": self.nested_split,
            "best_single": self.best_single,
            "budget": self.budget,
            "history": self.history,
            "models": self.models,
        })
        if self.gate is not None:
            out["gate"] = self.gate.to_dict()
        if self.ensemble_id is not None:
            out["ensemble_id"] = self.ensemble_id
        return out


def member_entry(study: Study, trial: TrialRecord, weight: float) -> MemberEntry:
    """A candidate of ``study`` as a member: its checkpoints relative to the study folder."""
    return MemberEntry(
        trial_id=trial.trial_id,
        candidate_id=trial.candidate_id,
        snapshot=trial.snapshot,
        weight=weight,
        oof_score=trial.score,
        config=trial.config,
        tta=trial.config["tta"],
        input_size=scaled_size(study.data.shape, float(trial.config["train.scale"]), MULTIPLE),
        checkpoints=[str(trial.checkpoint(k).relative_to(study.root)) for k in trial.folds],
        ms_per_image=trial.ms_per_image,
    )


def build_manifest(
    study: Study,
    trials: list[TrialRecord],
    selection: Selection,
    post: Tuned,
    budget: dict[str, Any],
    best_single: TrialRecord,
    best_single_score: float,
    estimates: dict[str, Any],
) -> Manifest:
    height, width = study.data.shape
    return Manifest(
        format_version=FORMAT_VERSION,
        kind=SEGMENTATION,
        study=str(study.root),
        folds_hash=study.folds_hash,
        num_classes=study.data.num_classes,
        class_ids=list(range(1, study.data.num_classes + 1)),
        image_shape=[height, width],
        rle_order=study.data.order,
        data={"format": study.data.format or study.config.data.format, "mask_mode": study.data.mask_mode},
        members=[member_entry(study, trials[i], w) for i, w in selection.weights.items()],
        metric=post.metric,
        postprocessing=post.to_manifest((height, width)),
        oof_score=post.score,
        class_scores=post.class_scores,
        nested_score=estimates.get("nested_score"),
        nested_fold_scores=estimates.get("nested_fold_scores"),
        nested_split=estimates.get("nested_split"),
        best_single={"trial_id": best_single.candidate_id, "oof_score": best_single_score},
        budget=budget,
        history=[{"members": {trials[i].candidate_id: c for i, c in counts.items()}, "score": s} for counts, s in selection.history],
    )


def write_manifest(path: Path, manifest: Manifest) -> None:
    write_json(path, manifest.to_dict())


def read_manifest(path: Path) -> Manifest:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ensemble manifest (run `python -m ensembling.select` first)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a JSON manifest ({error}); select again") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version not in READABLE_VERSIONS:
        raise ManifestError(
            f"{path}: format_version must be one of {READABLE_VERSIONS}, got {version!r}; re-run the selection with this version"
        )
    return Manifest.from_dict(raw, str(path))
