"""``<out>.ensemble.json``: which ensemble wrote a submission, and its checksum.

``python -m ensembling.lb`` finds the ensemble of a scored submission through it, and a later predict
knows ``out`` is its own (and may replace it) only while the checksum still matches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.atomic import write_json
from core.contract import sidecar
from ensembling.runtime.manifest import Manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_record(manifest: Manifest, out: Path, images: int, seconds: float, predicting: float, device: str) -> dict[str, Any]:
    """Write ``out``'s sidecar (after ``out``) and return it."""
    record = {
        "ensemble_id": manifest.ensemble_id,
        "models": manifest.models,
        "oof_score": manifest.oof_score,
        "submission_sha256": sha256(out),
        "images": images,
        "seconds": seconds,
        "predicting_seconds": predicting,
        "device": device,
    }
    write_json(sidecar(out), record)
    return record


def read_record(path: Path) -> dict[str, Any] | None:
    """The record a sidecar of ours holds (a JSON object naming a checksum), else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("submission_sha256"), str) else None


def wrote_submission(out: Path) -> bool:
    """True when ``out`` is a file predict wrote and nobody changed since: its sidecar holds its checksum."""
    record = read_record(sidecar(out))
    return record is not None and record["submission_sha256"] == sha256(out)
