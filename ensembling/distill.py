"""Distil the selected ensemble into one light model: ``python -m ensembling.distill study=DIR [extra=pseudo] [alpha=0.5]``.

The student trains as an ordinary trial on every fold (``run_trial`` with ``train.extra`` set), so it
writes a complete trial folder (its own OOF from its own validation predictions, ``metrics.json``, and
``cost.json`` with its measured ms per image) and ``ensembling.select`` offers it as a candidate with its
own cost: under a tight inference budget the selector may pick the student alone.

Its targets (``<study>/extra/distill-<trial>/``): each training image of fold k gets ``(1 - alpha) * truth
+ alpha * teacher``, the teacher being the members' fold-k models blended as the ensemble blends them
(``ensembling.scoring.teacher``: the leak rule, ``core/data/extra.py``); ``extra=<pseudo folder>`` adds that
folder's pseudo-labelled test images with their fold-k targets. ``alpha=0`` with ``extra=`` is a plain
second round: the truth plus the pseudo-labels. The student's keys start from the heaviest member's
config (its epochs, scale, loss, augmentation) with a light model (masks: Unet resnet18 with narrow
decoder channels; labels: timm resnet18); any trial key on the command line overrides them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from core.config import TrialConfig, flat_keys, from_flat, read_yaml, split_words
from core.help import answer_early, format_keys, show_help, wants_help
from ensembling.cli import FLAG, TEXT, Command, Key, Typed, command

DISTILL = Command(
    "python -m ensembling.distill study=STUDY_DIR [extra=PSEUDO] [alpha=0.5] [trial=distill] [key=value ...]",
    "Train one light student on the selected ensemble's soft targets (fold k's from fold-k models) and, with extra=, on "
    "pseudo-labelled test images; it is a trial like any other, offered to ensembling.select with its own cost.",
    {
        "study": Key("the study folder whose ensemble.json ensembling.select wrote"),
        "extra": Key("a pseudo-label folder under <study>/extra/ (ensembling.pseudo) whose test images the student also trains on", None, TEXT),
        "alpha": Key("weight of the teacher against the truth on the study's own images (0: the truth alone)", 0.5, Typed(float, 0)),
        "trial": Key("the student's trial id (its targets go to extra/distill-<trial>/)", "distill", TEXT),
        "batch_size": Key("images per forward pass of the teacher", 8, Typed(int, 1)),
        "device": Key("where the teacher predicts: cpu, cuda (null: cuda when there is one)", None, TEXT),
        "force": Key("replace a student trial of the same id that distill wrote before", False, FLAG),
    },
)
LIGHT_DECODER = [64, 32, 16, 16, 8]  # a narrow Unet decoder: most of a small Unet's time is its decoder
STUDENT_MASKS = {"model.family": "smp", "model.arch": "Unet", "model.encoder": "resnet18"}
STUDENT_LABELS = {"model.family": "timm", "model.encoder": "resnet18"}


def distill_help() -> str:
    rows = [("model.* train.* tta seed", "(member's)", "any trial key (python -m trainables.fit --help) overrides the student's default")]
    return DISTILL.help() + "\n" + format_keys(rows, "student keys") + "\n"


def parse_words(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the command's keys, the student's trial keys); a typo in either is named before torch is imported."""
    if wants_help(argv):
        show_help(distill_help())
    trial_keys = set(flat_keys(TrialConfig))

    def is_own(word: str) -> bool:  # a dotted key is a trial key (a typo there is named against the trial keys)
        key = word.partition("=")[0]
        return key in DISTILL.keys or ("." not in key and key not in trial_keys)

    own = [w for w in argv if is_own(w)]
    args = DISTILL.parse(own)
    student = {k: read_yaml(v, f"{k}={v}") for k, v in split_words([w for w in argv if w not in own])}
    from_flat(TrialConfig, student, where="command line: ")
    return args, student


if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    answer_early(sys.argv[1:], parse_words)

import shutil

import numpy as np
from tqdm import tqdm

from core.contract import CLASSIFICATION, ExtraFolder, read_json_file
from core.data.extra import IMAGES, OWN, ExtraWriter, check_replaceable, open_extra
from core.data.study import Study
from core.metrics import quantize
from core.targets import check_writable_folder
from ensembling.pseudo import open_ensemble, resize_planes, target_size
from ensembling.runtime.manifest import Manifest
from ensembling.scoring.teacher import FoldTeacher

WRITER = "ensembling.distill"


def student_config(study: Study, manifest: Manifest, keys: dict[str, Any], extra_name: str) -> dict[str, Any]:
    """The heaviest member's config with a light model, the given keys on top, and ``train.extra``."""
    base = dict(max(manifest.members, key=lambda m: m.weight).config)
    if study.kind == CLASSIFICATION:
        light: dict[str, Any] = dict(STUDENT_LABELS)
    else:
        depth = int(keys.get("model.encoder_depth", base.get("model.encoder_depth", 5)))
        light = {**STUDENT_MASKS, "model.encoder_depth": depth, "model.decoder_channels": LIGHT_DECODER[:depth]}
    if base.get("model.encoder") != light["model.encoder"]:
        light["model.encoder_weights"] = None  # the members' weights file is for another encoder
    plain = {"train.ema": 0.0, "train.cycles": 1, "train.folds": None}  # one candidate, every fold
    if base.get("train.schedule") == "cyclic":
        plain["train.schedule"] = "cosine"
    return {**base, **light, **plain, **keys, "train.extra": extra_name}


def own_targets(study: Study, teacher: FoldTeacher, writer: ExtraWriter, size: tuple[int, int], batch_size: int) -> None:
    """Soft targets of the study's images: ``own_<k>`` from fold k's teacher (rows of fold k's validation images
    stay zero and are never read), ``own_all`` (the refit's) the mean of every fold's."""
    labels = study.kind == CLASSIFICATION
    n, classes = len(study.image_ids), study.data.num_classes
    shape = (n, classes) if labels else (n, classes, *size)
    folds = study.folds["fold"].to_numpy()
    arrays = {k: writer.array(OWN, k, shape, study.kind) for k in [*range(study.n_folds), None]}
    for start in tqdm(range(0, n, batch_size), desc="teacher targets", unit="batch", disable=None):
        rows = np.arange(start, min(start + batch_size, n))
        images = [study.data.read_image(study.image_ids[r]) for r in rows]
        for group in _same_size(images):
            at, pics = rows[group], [images[i] for i in group]
            total = 0.0
            for k in range(study.n_folds):
                probs = teacher.probabilities(k, pics)
                total = total + probs
                train = folds[at] != k  # fold k's validation images get nothing from fold k's teacher
                arrays[k][at[train]] = _stored(probs[train], labels, size)
            arrays[None][at] = _stored(total / study.n_folds, labels, size)


def _same_size(images: list[np.ndarray]) -> list[np.ndarray]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.shape, []).append(i)
    return [np.asarray(g) for g in groups.values()]


def _stored(probs: np.ndarray, labels: bool, size: tuple[int, int]) -> np.ndarray:
    if labels:
        return probs
    return quantize(resize_planes(np.asarray(probs, np.float32), size))


def copy_pseudo(study: Study, name: str, writer: ExtraWriter) -> dict[str, Any]:
    """The pseudo folder's test images and targets, copied: the student's folder stands on its own."""
    pseudo = open_extra(study, name)
    for k in [*range(study.n_folds), None]:
        source = pseudo.folder.targets(IMAGES, k)
        if source.is_file():
            shutil.copyfile(source, writer.tmp.targets(IMAGES, k))
    return {"images": pseudo.meta["images"], "keep": pseudo.meta["keep"], "pseudo": name}


def check_student(study_dir: Path, trial: str, force: bool) -> ExtraFolder:
    """The student's trial folder and targets folder may be written: new, or (force=true) distill's own."""
    from core.contract import StudyFolder

    if not trial or "/" in trial or trial.startswith("."):
        raise ValueError(f"trial={trial!r}: must be a plain folder name such as distill")
    folder = StudyFolder(study_dir)
    target = folder.trial(trial)
    if target.root.exists():
        ours = target.config_yaml.is_file() and str(target.read_config().get("train.extra")) == f"distill-{trial}"
        if not (ours and force):
            why = "pass force=true to train it again" if ours else "it was not written by ensembling.distill"
            raise ValueError(f"trial={trial}: {target.root} exists ({why}); choose another trial=")
        shutil.rmtree(target.root)
    extra = folder.extra(f"distill-{trial}")
    check_replaceable(extra)
    check_writable_folder(study_dir, "study", f"trials/{trial}/ and extra/distill-{trial}/")
    return extra


def distill(study_dir: Path, extra: str | None = None, alpha: float = 0.5, trial: str = "distill", keys: dict[str, Any] | None = None,
            batch_size: int = 8, device: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write the student's targets, then train it on every fold; returns its metrics.json."""
    from trainables.fit import run_trial
    from trainables.validate import parse_config

    study_dir = Path(study_dir).expanduser().resolve()
    if alpha > 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    folder = check_student(study_dir, trial, force)
    study, manifest = open_ensemble(study_dir)
    config = student_config(study, manifest, keys or {}, folder.name)
    parse_config(config)  # a bad student key is named before the teacher predicts
    writer = ExtraWriter(folder, WRITER)
    try:
        meta: dict[str, Any] = {"images": [], "keep": {k: [] for k in [*map(str, range(study.n_folds)), "all"]}}
        if extra:
            meta = copy_pseudo(study, extra, writer)
        if alpha > 0:
            own_targets(study, FoldTeacher(study.root, manifest, study.n_folds, device), writer, target_size(manifest), batch_size)
        members = [{"candidate": m.name, "weight": m.weight} for m in manifest.members]
        writer.commit({**meta, "kind": study.kind, "folds_hash": study.folds_hash, "n_folds": study.n_folds,
                       "alpha": alpha if alpha > 0 else None, "soft": True, "teacher": members})
    except BaseException:
        writer.abort()
        raise
    return run_trial(config, study_dir, trial_id=trial)


def main(argv: list[str]) -> int:
    def body() -> None:
        args, keys = parse_words(argv)
        study_dir, trial = Path(args["study"]), args.get("trial", "distill")
        metrics = distill(study_dir, args.get("extra") or None, args.get("alpha", 0.5), trial, keys,
                          args.get("batch_size", 8), args.get("device") or None, args.get("force", False))
        ensemble = read_json_file(study_dir / "ensemble.json")
        name = metrics.get("metric") or ensemble.get("metric", "score")  # a class metric's own value (log_loss: lower is better)
        print(f"student {trial}: OOF {name} {metrics.get(name, metrics['oof_score']):.4f} at {metrics['ms_per_image']:.1f} ms/image "
              f"(the ensemble: {ensemble.get('oof_score', float('nan')):.4f}); trials/{trial}/ is a candidate like any trial")
        print(f"Next: python -m ensembling.select study={study_dir} (the budget may pick the student)")

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
