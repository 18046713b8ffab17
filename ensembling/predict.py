"""Write a submission: ``python -m ensembling.predict model=DIR images=DIR sample=CSV out=CSV``.

Before any model runs: ``out`` must be a new file or one predict wrote (its sidecar holds its checksum);
another plain file only with ``overwrite=true``, never an input (the sample, an image, the export, a
study: ``core.targets``); ``device=`` must be one torch can use here. Then the manifest's kind picks the
task (``ensembling/runtime/tasks.py``: masks or image labels), which checks every test image the sample
names before any model runs, predicts in batches read ahead by a pool of threads, validates the whole
file before writing it, and writes the sidecar ``<out>.ensemble.json`` naming the ensemble (so
``python -m ensembling.lb`` can record a leaderboard score against it). ``bench=true`` prints seconds per
image, the projected time for the budget's image count, and what selection expected.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ensembling.cli import COUNT, FLAG, TEXT, Command, Key, Typed, command

PREDICT = Command(
    "python -m ensembling.predict model=EXPORT_DIR images=DIR sample=CSV out=CSV [key=value ...]",
    "Write a submission: an exported ensemble predicts the test images in the sample submission's layout.",
    {
        "model": Key("the folder ensembling.export wrote"),
        "images": Key("the folder of test images"),
        "sample": Key("the contest's sample submission: the rows (and their order) to write"),
        "out": Key("the submission CSV to write: a new file, or one this command wrote before"),
        "batch_size": Key("images per forward pass", 8, COUNT),
        "device": Key("cpu, cuda or cuda:N (null: cuda where there is one); checked before any work", None, TEXT),
        "workers": Key("threads that read and decode images ahead of the model", 4, Typed(int, 1)),
        "bench": Key("also print ms per image and the time projected for the budget's images", False, FLAG),
        "overwrite": Key("replace an existing out= this command did not write (never the sample, an image or an export's file)", False, FLAG),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    PREDICT.answer_early(sys.argv[1:])

from core.contract import ENSEMBLE_JSON, SIDECAR_SUFFIX, sidecar
from core.targets import check_file_target
from ensembling.runtime.manifest import Manifest, read_manifest
from ensembling.runtime.sidecar import read_record, wrote_submission
from ensembling.runtime.tasks import runtime_task


def predict(
    model: Path,
    images: Path,
    sample: Path,
    out: Path | str,
    batch_size: int = 8,
    device: str | None = None,
    workers: int = 4,
    bench: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    out = check_out(out, model, images, sample, overwrite)
    manifest = read_manifest(model / ENSEMBLE_JSON)
    # masks or image labels (ensembling/runtime/tasks.py): the submission in the sample's layout, and its sidecar
    record = runtime_task(manifest).predict(manifest, model, images, sample, out, batch_size, device, workers)
    if bench:
        print(bench_lines(manifest, record["images"], record["predicting_seconds"], record["seconds"]))
    return record


def check_out(out: Path | str, model: Path, images: Path, sample: Path, overwrite: bool = False) -> Path:
    """``out`` and its sidecar, before any model loads: new or ours, or (overwrite=true) a plain file that is no input."""
    inputs = {"sample": sample, "images folder": images, "export folder": model}
    path = check_file_target(out, "out", inputs, wrote_submission, f"no sidecar {Path(out).name}{SIDECAR_SUFFIX} with its checksum", overwrite)
    mark = "not a prediction record"
    check_file_target(sidecar(path), "out", inputs, lambda p: read_record(p) is not None, mark, overwrite, f"submission.csv{SIDECAR_SUFFIX}")
    return path


def check_device(device: str | None) -> str | None:
    """``device=`` when it is parsed: cpu, cuda or cuda:N that torch can use here (None: cuda when present)."""
    if device is None or device == "":
        return None
    import torch

    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device}: torch sees no CUDA device here; use device=cpu (or leave device out)")
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"device={device}: torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return device


def bench_lines(manifest: Manifest, images: int, predicting: float, total: float) -> str:
    """Seconds per image (models only, and the whole command), projected to the budget's image count."""
    budget = manifest.budget
    count = int(budget.get("images", images))
    per_image, per_image_all = predicting / max(images, 1), total / max(images, 1)
    lines = [
        f"bench: {per_image * 1000:.1f} ms per image predicting, {per_image_all * 1000:.1f} ms with loading and checking ({images} images)",
        f"bench: projected {per_image_all * count:.0f} s for the budget's {count} images",
    ]
    if "expected_seconds" in budget:
        lines.append(f"bench: selection expected {budget['expected_seconds']:.0f} s (budget {budget.get('seconds', float('nan')):.0f} s)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    def body() -> None:
        args: dict[str, Any] = PREDICT.parse(argv)
        device = check_device(args.get("device"))
        paths = {k: Path(args[k]).expanduser() for k in ("model", "images", "sample")}
        predict(
            **paths,
            out=args["out"],
            batch_size=args.get("batch_size", 8),
            device=device,
            workers=args.get("workers", 4),
            bench=args.get("bench", False),
            overwrite=args.get("overwrite", False),
        )

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
