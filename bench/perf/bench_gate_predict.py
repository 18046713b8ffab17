"""What the classifier gate saves in the predictor: masks per image without a gate, with a gate that
skips no image (the classifier's overhead), and with a gate that skips every image (the classifier alone),
at Severstal's size (256x1600, segmentation members at 128x800, the classifier at 128x800).

    python bench/perf/bench_gate_predict.py out=OUT.json [device=cuda] [images=64] [members=2] [folds=5] [batch=8] [classifier=resnet18] [size=[256,1600]]

No Ray, no study, no network: a synthetic export (Unet/resnet34 members as ``bench_predict.py``, plus a
timm classifier with random weights whose output bias is set so that every image is, or is not, under
its gate). With a share s of the images segmented, the time per image is about
``classifier + s x segmentation``: the table gives both parts, and the break-even share. Prints a table
and writes JSON.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import make_export, timed

from core.config import TrialConfig, from_flat, to_flat
from core.models import build_model, save_weights
from ensembling.cli import COUNT, TEXT, command, parse_args
from ensembling.runtime.manifest import Calibration, ClassSection, MemberEntry, read_manifest, write_manifest
from ensembling.runtime.predictor import Predictor


def add_gate(folder: Path, classifier: str, folds: int, classes: int = 4) -> None:
    """A gate section (one timm member, ``folds`` models) and gate values in the manifest's post-processing."""
    flat = to_flat(from_flat(TrialConfig, {"model.family": "timm", "model.encoder": classifier, "tta": "hflip", "train.scale": 0.5}))
    checkpoints = []
    for k in range(folds):
        torch.manual_seed(1000 + k)
        path = folder / "members" / f"gate{k}.safetensors"
        save_weights(build_model(from_flat(TrialConfig, flat).model, classes, load_weights=False), path)
        checkpoints.append(str(path.relative_to(folder)))
    manifest = read_manifest(folder / "ensemble.json")
    manifest.format_version = 2
    manifest.postprocessing = {"steps": ["threshold", "min_component", "min_area", "gate"], "gate_source": "study:bench",
                               "per_class": [{"threshold": 0.5, "min_component": 0.0, "min_area": 0.001, "gate": 0.5}] * classes}
    member = MemberEntry(trial_id="gate", weight=1.0, config=flat, tta="hflip", input_size=(128, 800), checkpoints=checkpoints)
    manifest.gate = ClassSection(multi_label=True, num_classes=classes, class_names=[str(c) for c in range(1, classes + 1)],
                                 calibration=Calibration(), members=[member], source="study:bench")
    write_manifest(folder / "ensemble.json", manifest)


def set_bias(predictor: Predictor, value: float) -> None:
    """Every gate model says p = sigmoid(value) for every class of every image."""
    with torch.no_grad():
        for member in predictor.gate.members:
            for model in member.models:
                head = model.get_classifier()
                head.weight.zero_()
                head.bias.fill_(value)


USAGE = ("python bench/perf/bench_gate_predict.py out=OUT.json [device=cuda|cpu] [images=64] [members=2] [folds=5] [batch=8] "
         "[classifier=resnet18] [size=[256,1600]]")
KEYS = {"device": TEXT, "images": COUNT, "members": COUNT, "folds": COUNT, "batch": COUNT, "classifier": TEXT, "size": None}


def image_size(value: object) -> list[int]:
    """``size=[H,W]``: two positive integers."""
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"size must be [HEIGHT,WIDTH], two integers >= 1, got {value!r} (e.g. size=[256,1600])")
    return value


def main(argv: list[str]) -> int:
    def body() -> None:
        defaults = {"device": "cuda" if torch.cuda.is_available() else "cpu", "images": 64, "members": 2, "folds": 5, "batch": 8,
                    "classifier": "resnet18", "size": [256, 1600]}
        args = SimpleNamespace(**{**defaults, **parse_args(argv, ["out"], KEYS, USAGE)})
        args.size = image_size(args.size)
        run(args)

    return command(body)


def run(args: SimpleNamespace) -> None:
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (*args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain, gated = Path(tmp) / "plain", Path(tmp) / "gated"
        for folder in (plain, gated):
            make_export(folder, args.members, args.folds)
        add_gate(gated, args.classifier, args.folds)
        predictor = Predictor(plain, str(device))
        rows["no gate"] = timed(lambda batch: list(predictor.masks(batch)), images, args.batch, device)
        predictor = Predictor(gated, str(device))
        set_bias(predictor, 10.0)  # p ~ 1 > 0.5: nothing skipped
        rows["gate, none skipped"] = timed(lambda batch: list(predictor.masks(batch)), images, args.batch, device)
        set_bias(predictor, -10.0)  # p ~ 0 < 0.5 for every class: every image skipped
        predictor.segmented = 0
        rows["gate, all skipped"] = timed(lambda batch: list(predictor.masks(batch)), images, args.batch, device)
        assert predictor.segmented == 0
    segmentation = rows["gate, none skipped"] - rows["gate, all skipped"]
    # with a share s segmented: classifier + s x segmentation < no gate  <=>  s < (no gate - classifier) / segmentation
    break_even = (rows["no gate"] - rows["gate, all skipped"]) / segmentation if segmentation > 0 else float("nan")
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()}), "
          f"{args.images} images {args.size[0]}x{args.size[1]}, {args.members} members x {args.folds} folds, classifier {args.classifier} x {args.folds}")
    for name, ms in rows.items():
        print(f"  {name:<20} {ms:8.1f} ms/image")
    print(f"  classifier ~{rows['gate, all skipped']:.1f} ms/image, segmentation ~{segmentation:.1f} ms/image; "
          f"the gate saves time when it sends fewer than {break_even:.0%} of the images to segmentation")
    record = {"device": str(device), "images": args.images, "size": args.size, "members": args.members, "folds": args.folds,
              "classifier": args.classifier, "ms_per_image": rows, "segmentation_ms": segmentation, "break_even_segmented_share": break_even,
              "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
