"""Pseudo-label test images with the selected ensemble: ``python -m ensembling.pseudo study=DIR images=TEST_DIR``.

The confidence threshold is tuned on the ensemble's OOF blend, so the pseudo-labels' precision is
measured, not guessed (``ensembling.scoring.confidence``): each OOF image has a confidence and a quality against
its truth, and the loosest threshold whose kept OOF images reach ``precision`` is applied to the test
images. The leak rule (``core/data/extra.py``): fold k's pseudo-labels, and the confidence that decides
which test images fold k keeps, come from the members' fold-k models only (``ensembling.scoring.teacher``), the
same models whose predictions on fold k's validation images are the OOF rows the threshold was tuned on;
the refit's ``all`` targets are the whole ensemble's. No test image ever enters a validation set or the
OOF. Writes ``<study>/extra/<name>/`` (under a temp name, then renamed) with ``pseudo.json`` beside the
targets; trials train on it with ``train.extra=<name>``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ensembling.cli import FLAG, TEXT, Command, Key, Typed, command

PSEUDO = Command(
    "python -m ensembling.pseudo study=STUDY_DIR images=TEST_IMAGES_DIR [precision=0.9] [soft=false] [name=pseudo] [limit=0]",
    "Label the test images with the study's selected ensemble (ensemble.json); keep those over a confidence threshold tuned on "
    "OOF to reach the asked precision; write <study>/extra/<name>/ for train.extra=<name>.",
    {
        "study": Key("the study folder whose ensemble.json ensembling.select wrote"),
        "images": Key("the folder of test images to label"),
        "precision": Key("mean quality the kept OOF images must reach (masks: per-image Dice; labels: share right)", 0.9, Typed(float, 0, above=True)),
        "soft": Key("store the ensemble's probabilities instead of its post-processed 0/1 decisions", False, FLAG),
        "name": Key("the folder under <study>/extra/ (train.extra=<name>)", "pseudo", TEXT),
        "limit": Key("label at most this many test images, in name order (0: all)", 0, Typed(int, 0)),
        "batch_size": Key("images per forward pass", 8, Typed(int, 1)),
        "device": Key("where the members predict: cpu, cuda (null: cuda when there is one)", None, TEXT),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    PSEUDO.answer_early(sys.argv[1:])

import cv2
import numpy as np
from tqdm import tqdm

from core.contract import CLASSIFICATION, PSEUDO_JSON, ExtraFolder
from core.data.extra import IMAGES, ExtraWriter, check_replaceable
from core.data.images import list_images, read_rgb
from core.data.study import Study, open_study
from core.metrics import quantize
from core.store import open_oof
from core.targets import check_writable_folder
from ensembling.runtime.decide import apply_temperature
from ensembling.runtime.manifest import Manifest, MemberEntry, read_manifest
from ensembling.scoring.confidence import (
    HIGH,
    LOW,
    Threshold,
    label_confidence,
    label_quality,
    mask_confidence,
    mask_quality,
    precision_curve,
    tune_threshold,
)
from ensembling.scoring.teacher import FoldTeacher

WRITER = "ensembling.pseudo"


def resize_planes(arrays: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """(N, C, H, W) float or uint8 planes to (N, C, *size)."""
    if tuple(arrays.shape[2:]) == tuple(size):
        return arrays
    return np.stack([np.stack([cv2.resize(p, (size[1], size[0]), interpolation=interpolation) for p in planes]) for planes in arrays])


def open_ensemble(study_dir: Path) -> tuple[Study, Manifest]:
    """The study and its selected ensemble, for extra targets: refused on a holdout study, whose TRAIN_ONLY
    images have no out-of-fold targets (``train.extra`` could not train on what this writes)."""
    study = open_study(study_dir)
    if study.train_only:
        raise ValueError(f"{study.folder.folds_csv}: this study validates only {len(study.image_ids)} of its {study.training_images} images "
                         "(a holdout, oof_share below 1), so pseudo-labels and distillation cannot train on it; use a study whose folds cover every image")
    manifest = read_manifest(study.folder.ensemble_json)
    if manifest.folds_hash is not None and manifest.folds_hash != study.folds_hash:
        raise ValueError(f"{study.folder.ensemble_json}: selected on another split (folds hash {manifest.folds_hash}, the study's {study.folds_hash}); select again")
    return study, manifest


def member_oof(study: Study, member: MemberEntry) -> np.ndarray:
    """A member's OOF (its trial's, or its snapshot's), memory-mapped."""
    trial = study.folder.trial(member.trial_id)
    folder = trial.snapshot(member.snapshot) if member.snapshot else trial
    return open_oof(folder.oof, study.truth_shape, np.float16 if study.kind == CLASSIFICATION else np.uint8)


def oof_blend(study: Study, manifest: Manifest, rows: slice) -> np.ndarray:
    """The ensemble's OOF probabilities of ``rows`` (float32 in [0, 1]), blended as the predictor blends."""
    total = sum(m.weight for m in manifest.members)
    blend = sum(m.weight * np.asarray(member_oof(study, m)[rows], np.float32) for m in manifest.members) / total
    if study.kind == CLASSIFICATION:
        return apply_temperature(blend, manifest.calibration.temperature, manifest.multi_label)
    return blend / 255


def oof_scores(study: Study, manifest: Manifest, teacher: FoldTeacher, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each OOF image's confidence and quality (its decided prediction against the truth)."""
    truth = study.truth()
    conf, quality = [], []
    for start in range(0, len(study.image_ids), chunk):
        rows = slice(start, start + chunk)
        probs = oof_blend(study, manifest, rows)
        decided = teacher.decide(probs)
        if study.kind == CLASSIFICATION:
            conf.append(label_confidence(probs, study.multi_label))
            quality.append(label_quality(decided, truth[rows]))
        else:
            conf.append(mask_confidence(probs))
            quality.append(mask_quality(decided, truth[rows]))
    return np.concatenate(conf), np.concatenate(quality)


def target_size(manifest: Manifest) -> tuple[int, int]:
    """Mask targets are stored at the largest member's training size (the trials resize them to theirs)."""
    return max((tuple(m.input_size) for m in manifest.members), key=lambda s: s[0] * s[1])  # type: ignore[return-value]


class PseudoTargets:
    """Fills a writer's ``images_<k>`` / ``images_all`` arrays and each fold's confidences, batch by batch."""

    def __init__(self, study: Study, teacher: FoldTeacher, writer: ExtraWriter | None, n: int, soft: bool, size: tuple[int, int]) -> None:
        self.study, self.teacher, self.soft, self.size = study, teacher, soft, size
        self.labels = study.kind == CLASSIFICATION
        self.folds: list[int | None] = [*range(study.n_folds), None]
        shape = (n, study.data.num_classes) if self.labels else (n, study.data.num_classes, *size)
        self.arrays = {k: writer.array(IMAGES, k, shape, study.kind) for k in self.folds} if writer else {}
        self.confidence = np.zeros((len(self.folds), n))

    def add(self, at: np.ndarray, images: list[np.ndarray]) -> None:
        """The targets and confidences of the test images at rows ``at`` (one size), every fold's and the refit's."""
        total = None
        for i, k in enumerate(self.folds):
            probs = self.teacher.probabilities(k, images) if k is not None else total / self.study.n_folds  # type: ignore[operator]
            if k is not None:
                total = probs if total is None else total + probs
            self.confidence[i, at] = self._confidence(probs)
            if self.arrays:
                self.arrays[k][at] = self._targets(probs)

    def _confidence(self, probs: np.ndarray) -> np.ndarray:
        if self.labels:
            return label_confidence(probs, self.study.multi_label)
        return mask_confidence(resize_planes(probs.astype(np.float32), self.study.oof_size))  # as on OOF: at the OOF scale

    def _targets(self, probs: np.ndarray) -> np.ndarray:
        if self.labels:
            return probs if self.soft else self.teacher.decide(probs).astype(np.float32)
        if self.soft:
            return quantize(resize_planes(probs.astype(np.float32), self.size, cv2.INTER_LINEAR))
        return resize_planes(self.teacher.decide(probs).astype(np.uint8) * 255, self.size, cv2.INTER_NEAREST)


def label_images(targets: PseudoTargets, folder: Path, names: list[str], batch_size: int) -> None:
    """Predict every test image (images of one size go through together), with a progress bar."""
    with tqdm(total=len(names), desc="pseudo-labelling", unit="img", disable=None) as bar:
        for start in range(0, len(names), batch_size):
            images = [read_rgb(folder / name) for name in names[start:start + batch_size]]
            groups: dict[tuple[int, ...], list[int]] = {}
            for i, image in enumerate(images):
                groups.setdefault(image.shape, []).append(i)
            for idx in groups.values():
                targets.add(np.asarray(idx) + start, [images[i] for i in idx])
            bar.update(len(images))


def check_inputs(study_dir: Path, images: Path, name: str) -> tuple[ExtraFolder, list[str]]:
    """Every refusal before any model is loaded: the target folder, its place, the images."""
    from core.contract import StudyFolder

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name={name!r}: must be a plain folder name such as pseudo")
    folder = StudyFolder(study_dir).extra(name)
    check_replaceable(folder)
    check_writable_folder(study_dir, "study", f"extra/{name}/")
    names = list_images(images)
    if not names:
        raise ValueError(f"images={images}: holds no image files (.jpg, .png, ...)")
    return folder, names


def make_pseudo(study_dir: Path, images: Path, precision: float = 0.9, soft: bool = False, name: str = "pseudo",
                limit: int = 0, batch_size: int = 8, device: str | None = None) -> dict[str, Any]:
    """Write ``<study>/extra/<name>/``; returns what ``pseudo.json`` holds."""
    study_dir, images = Path(study_dir).expanduser().resolve(), Path(images).expanduser().resolve()
    if precision > 1:
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    folder, names = check_inputs(study_dir, images, name)
    names = names[:limit] if limit else names
    study, manifest = open_ensemble(study_dir)
    teacher = FoldTeacher(study.root, manifest, study.n_folds, device)
    confidence, quality = oof_scores(study, manifest, teacher)
    threshold = tune_threshold(confidence, quality, precision)
    writer = ExtraWriter(folder, WRITER)
    try:
        targets = PseudoTargets(study, teacher, writer, len(names), soft, target_size(manifest))
        label_images(targets, images, names, batch_size)
        keep = {("all" if k is None else str(k)): np.flatnonzero(targets.confidence[i] >= threshold.value).tolist() for i, k in enumerate(targets.folds)}
        report = pseudo_report(study, manifest, threshold, precision, keep, len(names), soft, images)
        report["oof_curve"] = precision_curve(confidence, quality)
        meta = {"kind": study.kind, "folds_hash": study.folds_hash, "n_folds": study.n_folds, "alpha": None, "soft": soft,
                "images": [str(images / n) for n in names], "keep": keep}
        writer.commit(meta, {PSEUDO_JSON: report})
    except BaseException:
        writer.abort()
        raise
    return report


def pseudo_report(study: Study, manifest: Manifest, t: Threshold, precision: float, keep: dict[str, list[int]], n: int, soft: bool, images: Path) -> dict[str, Any]:
    rule = ("top class probability" if not study.multi_label else "least sure class's max(p, 1-p)") if study.kind == CLASSIFICATION else (
        f"share of pixels over {LOW:g} that are >= {HIGH:g}")
    return {
        "threshold": t.value,
        "precision_asked": precision,
        "oof_precision": t.precision,
        "oof_kept": t.kept,
        "oof_total": t.total,
        "kept": {k: len(v) for k, v in keep.items()},
        "total": n,
        "soft": soft,
        "confidence": rule,
        "quality": "decided labels all right" if study.kind == CLASSIFICATION else "mean Dice per class after the ensemble's post-processing",
        "members": [{"candidate": m.name, "weight": m.weight, "tta": m.tta} for m in manifest.members],
        "folds": f"fold k's targets and confidences from each member's fold-k model only (k = 0..{study.n_folds - 1}); 'all' (refit) from every fold",
        "images": str(images),
    }


def main(argv: list[str]) -> int:
    def body() -> None:
        args = PSEUDO.parse(argv)
        study_dir, name = Path(args["study"]), args.get("name", "pseudo")
        r = make_pseudo(study_dir, Path(args["images"]), args.get("precision", 0.9), args.get("soft", False), name,
                        args.get("limit", 0), args.get("batch_size", 8), args.get("device") or None)
        print(f"pseudo-labels: kept {r['kept']['all']}/{r['total']} test images (per fold {', '.join(str(r['kept'][str(k)]) for k in range(len(r['kept']) - 1))}) "
              f"at confidence >= {r['threshold']:.3f}; OOF precision {r['oof_precision']:.3f} (asked {r['precision_asked']:g}) on "
              f"{r['oof_kept']}/{r['oof_total']} OOF images; {'soft' if r['soft'] else 'hard'} targets from {len(r['members'])} member(s) "
              f"-> {study_dir / 'extra' / name}")
        print(f"Next: python -m ensembling.distill study={study_dir} extra={name} (a light student), or a second round of any "
              f"config: python -m trainables.fit study={study_dir} train.extra={name} key=value ...")

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
