"""Export the selected ensemble: ``python -m ensembling.export study=DIR out=DIR``.

The folder holds ``ensemble.json`` and each member's fold weights (safetensors) with its config:
everything ``python -m ensembling.predict`` needs, with no Ray, MLflow, study or network. It is
built beside ``out`` and moved into place whole, so a failed export never leaves half a model.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ensembling.cli import parse_args
from ensembling.manifest import read_manifest, write_manifest
from trainables.atomic import write_yaml
from trainables.contract import CONFIG_YAML, ENSEMBLE_JSON, StudyFolder
from trainables.errors import exit_status


def export(study_dir: Path, out: Path) -> Path:
    manifest = read_manifest(StudyFolder(study_dir).ensemble_json)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for member in manifest["members"]:
            folder = Path("members") / member["trial_id"]
            copied = []
            for k, checkpoint in enumerate(member["checkpoints"]):
                source = study_dir / checkpoint
                if not source.is_file():
                    raise FileNotFoundError(f"{source}: checkpoint of member {member['trial_id']} is missing")
                target = folder / f"fold{k}.safetensors"
                (staging / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, staging / target)
                copied.append(str(target))
            member["checkpoints"] = copied
            write_yaml(staging / folder / CONFIG_YAML, member["config"])
        write_manifest(staging / ENSEMBLE_JSON, manifest)
        _swap_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging``; an old export is removed only once the new one is in place."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str]) -> int:
    usage = "python -m ensembling.export study=STUDY_DIR out=DIR"

    def body() -> None:
        args: dict[str, Any] = parse_args(argv, required=["study", "out"], optional=[], usage=usage)
        out = export(Path(args["study"]).expanduser().resolve(), Path(args["out"]).expanduser().resolve())
        print(f"Exported the ensemble to {out}")
        print(f"Next: python -m ensembling.predict model={out} images=TEST_IMAGES sample=SAMPLE_CSV out=submission.csv")

    return exit_status(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
