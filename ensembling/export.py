"""Export the selected ensemble: ``python -m ensembling.export study=DIR out=DIR [models=folds|refit] [register=NAME]``.

The folder is a Kaggle dataset that predicts offline with torch, segmentation-models-pytorch, numpy and
OpenCV: ``ensemble.json``, each member's weights (safetensors, checked before they are copied) with its
config, ``code/`` (a copy of the predictor's modules, found by importing it), ``predict.py`` (one
command writes ``submission.csv``), a README, and a marker file saying we wrote it. It is built beside
``out`` and moved into place whole; an existing ``out`` is replaced only when it is an earlier export.

``models=refit`` takes each member's model retrained on every training image (``python -m
ensembling.refit``) instead of its K fold models: K times cheaper, post-processing still tuned on OOF.
``register=NAME`` also logs the export as an MLflow pyfunc model registered as NAME with alias champion.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from ensembling.cli import TEXT, Command, Key, Typed, command

MODELS = ("folds", "refit")
EXPORT = Command(
    "python -m ensembling.export study=STUDY_DIR out=DIR [models=folds|refit] [register=MODEL_NAME]",
    "Export the selected ensemble (ensemble.json) as a folder that predicts offline: weights, code, predict.py.",
    {
        "study": Key("the study folder whose ensemble.json ensembling.select wrote"),
        "out": Key("a new folder for the export (or one this command wrote before)"),
        "models": Key("folds: each member's fold models; refit: the models ensembling.refit trained on all the data", "folds", Typed(str, choices=MODELS)),
        "register": Key("also log the export to MLflow as a registered model of this name (alias champion)", None, TEXT),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    EXPORT.answer_early(sys.argv[1:])

from core.atomic import write_json, write_yaml
from core.contract import (
    CONFIG_YAML,
    ENSEMBLE_JSON,
    EXPORT_CODE,
    EXPORT_MARKER,
    EXPORT_MEMBERS,
    EXPORT_README,
    EXPORT_RUNNER,
    DamagedFile,
    StudyFolder,
    check_weights,
    read_json_file,
)
from ensembling.places import check_folder_target
from ensembling.runtime.manifest import Manifest, MemberEntry, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]  # the project: ensembling/ and trainables/ live here
# Copied beside the predictor's import closure: the MLflow wrapper (imported only when MLflow loads the model).
EXTRA_MODULES = ("ensembling/runtime/pyfunc.py",)


def ensemble_id(manifest: Manifest, models: str) -> str:
    """A short id of what decides the predictions: members, weights, post-processing, models, split."""
    key: dict[str, Any] = {
        "members": [(m.trial_id, m.weight) for m in manifest.members],
        "postprocessing": manifest.postprocessing,
        "models": models,
        "folds_hash": manifest.folds_hash,
    }
    if manifest.gate is not None:  # the classifier gate decides which images are segmented
        key["gate"] = [(m.trial_id, m.weight) for m in manifest.gate.members] + [manifest.gate.calibration.temperature]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _sources(study_dir: Path, member: MemberEntry, models: str) -> list[Path]:
    if models == "folds":
        return [study_dir / checkpoint for checkpoint in member.checkpoints]
    refit = StudyFolder(study_dir).trial(member.trial_id).refit_weights
    if not refit.is_file():
        raise FileNotFoundError(
            f"{refit}: member {member.trial_id} has no refit model; run `python -m ensembling.refit study={study_dir}` "
            "first, or export models=folds"
        )
    return [refit]


@lru_cache(maxsize=1)
def predictor_modules() -> tuple[str, ...]:
    """The project's modules the offline predictor imports, as paths relative to the project root
    (found by importing it in a fresh interpreter, so a new import is never left out of the kernel)."""
    code = (
        "import sys, ensembling.predict; root = sys.argv[1]; "
        "print('\\n'.join(sorted({m.__file__ for m in list(sys.modules.values()) "
        "if (getattr(m, '__file__', None) or '').startswith(root)})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    listed = subprocess.run([sys.executable, "-c", code, str(ROOT) + os.sep], capture_output=True, text=True, env=env, check=True)
    files = [str(Path(line).relative_to(ROOT)) for line in listed.stdout.split()]
    return tuple(sorted(set(files) | set(EXTRA_MODULES)))


def _write_code(staging: Path) -> None:
    for relative in predictor_modules():
        target = staging / EXPORT_CODE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    runner = Path(__file__).with_name("kernel_runner.py.txt").read_text()
    (staging / EXPORT_RUNNER).write_text(runner)


def _write_readme(staging: Path, manifest: Manifest) -> None:
    template = Path(__file__).with_name("kernel_readme.md.txt").read_text()
    members = "\n".join(f"- {m.trial_id}: weight {m.weight:.3f}, {len(m.checkpoints)} model(s), TTA {m.tta}" for m in manifest.members)
    text = template.format(
        ensemble_id=manifest.ensemble_id,
        models=manifest.models,
        oof_score=manifest.oof_score,
        members=members,
        runner=EXPORT_RUNNER,
        expected=manifest.budget["expected_seconds"],
        images=manifest.budget["images"],
    )
    (staging / EXPORT_README).write_text(text)


def _copy_member(study_dir: Path, staging: Path, folder: Path, member: MemberEntry, models: str) -> None:
    """A member's weights (checked before and after copying) and config into ``staging/folder``; its checkpoints now point there."""
    (staging / folder).mkdir(parents=True, exist_ok=True)
    copied = []
    for k, source in enumerate(_sources(study_dir, member, models)):
        try:
            check_weights(source)
        except FileNotFoundError:
            raise FileNotFoundError(f"{source}: weights of member {member.trial_id} are missing") from None
        except DamagedFile as error:
            raise ValueError(f"{error}; member {member.trial_id} cannot be exported (re-run its trial or select again)") from None
        target = folder / (f"fold{k}.safetensors" if models == "folds" else "refit.safetensors")
        shutil.copy2(source, staging / target)
        check_weights(staging / target)  # the copy, too: a full disk truncates silently
        copied.append(str(target))
    member.checkpoints = copied
    write_yaml(staging / folder / CONFIG_YAML, member.config)


def export(study_dir: Path, out: Path, models: str = "folds") -> Manifest:
    """Build the export folder and move it into place; returns its manifest."""
    study_dir, out = study_dir.expanduser().resolve(), out.expanduser().resolve()
    study = StudyFolder(study_dir)
    manifest = read_manifest(study.ensemble_json)
    check_folder_target(out, EXPORT_MARKER, {"study folder": study_dir})
    manifest.models = models
    manifest.ensemble_id = ensemble_id(manifest, models)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # a new, uniquely named folder beside out: the only things ever deleted are this and an export of ours
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as error:
        raise ValueError(f"out={out}: cannot write in {out.parent} ({error.strerror or error}); choose a place you may write") from None
    try:
        gate = manifest.gate.members if manifest.gate is not None else []
        # the gate's classifiers always go as their fold models (refit covers the segmentation members)
        groups = [("", manifest.members, models), ("gate-", gate, "folds")]
        for prefix, members, kind in groups:
            for i, member in enumerate(members):
                # numbered: two candidates of one trial (snapshots) never share a folder
                folder = Path(EXPORT_MEMBERS) / f"{prefix}{i:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', member.trial_id)}"
                _copy_member(study_dir, staging, folder, member, kind)
        write_manifest(staging / ENSEMBLE_JSON, manifest)
        _write_code(staging)
        _write_readme(staging, manifest)
        marker = {"ensemble_id": manifest.ensemble_id, "models": models, "study": str(study_dir), "exported": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(staging / EXPORT_MARKER, marker)
        record_export(study, manifest, out)
        _swap_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def record_export(study: StudyFolder, manifest: Manifest, out: Path) -> None:
    """``<study>/ensembles.json``: every exported ensemble by id, so a leaderboard score can find its OOF scores."""
    records = read_json_file(study.ensembles_json) if study.ensembles_json.is_file() else {}
    records[manifest.ensemble_id] = {
        "models": manifest.models,
        "oof_score": manifest.oof_score,
        "nested_score": manifest.nested_score,
        "members": {m.trial_id: m.weight for m in manifest.members},
        "expected_seconds": manifest.budget["expected_seconds"],
        "out": str(out),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(study.ensembles_json, records)


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging``; an old export is removed only once the new one is in place.

    ``out`` is checked again here (it may have changed since the checks before the work): only a folder
    holding our marker is moved aside, into an empty folder made for it, and deleted from there."""
    if not out.exists() and not out.is_symlink():
        os.rename(staging, out)
        return
    if out.is_symlink() or not (out / EXPORT_MARKER).is_file():
        raise ValueError(f"out={out}: appeared while exporting and is not an export of ours; nothing was replaced")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old)  # onto the empty folder just made: nothing else is overwritten
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(old, out)  # put the earlier export back
        raise
    shutil.rmtree(old)


def main(argv: list[str]) -> int:
    def body() -> None:
        args: dict[str, Any] = EXPORT.parse(argv)
        if "register" in args and not args["register"]:
            raise ValueError("register must name a model, e.g. register=severstal-ensemble")
        out = Path(args["out"]).expanduser().resolve()
        manifest = export(Path(args["study"]), out, args.get("models", "folds"))
        print(f"Exported ensemble {manifest.ensemble_id} ({manifest.models} models) to {out}")
        if args.get("register"):
            from ensembling.runtime.pyfunc import log_export  # MLflow only when asked

            version = log_export(Path(args["study"]).expanduser().resolve(), out, args["register"])
            print(f"Registered MLflow model {args['register']} version {version} with alias champion")
        print(f"Next: python {out / EXPORT_RUNNER} images=TEST_IMAGES sample=SAMPLE_CSV out=submission.csv")

    return command(body)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
