"""Do pseudo-labels and distillation help? Measured on the synthetic steel set, several seeds, with controls.

    python bench/studies/pseudo_distill.py work=WORK_DIR [seeds=0,1] [images=48] [test=24] [epochs=5] [precision=0.9]

For each seed S, on a synthetic Severstal folder of ``images`` training and ``test`` hidden test images
drawn with seed S (``core.data.synthetic.write_synthetic``), a 2-fold study, and every step as a user runs it:

1. **base**: two configurations A and B (``python -m trainables.fit``: Unet-resnet18 depth 3, 1/8 scale,
   ``epochs`` epochs, hflip TTA; learning rates 2e-3 and 3e-3), then ``ensembling.select``.
2. **pseudo-labels**: ``ensembling.pseudo`` labels the test images with that ensemble, keeping those over the
   confidence threshold tuned on OOF to ``precision``; A2 and B2 are A and B again with ``train.extra=pseudo``.
3. **the equal-compute control**: a fold of round 2 trains on more images per epoch, so A+ and B+ are A and B
   trained for as many more epochs as give them the same images seen as A2 and B2 (no pseudo-labels). Pseudo-labels
   help only where round 2 beats this control, not merely the base.
4. **distillation**: ``ensembling.distill`` trains one student on the base ensemble's soft targets, with the
   pseudo-labelled test images (``student``) and without (``student0``).

Each candidate set is then scored as a user would ship it: a copy of the study holding only those trials,
``ensembling.select``, ``ensembling.export``, ``ensembling.predict`` on the test images and ``ensembling.score``
against the hidden truth. Printed: a table per set with the OOF and test Dice and the training seconds, the
means over the seeds, and every row appended to ``<work>/results.jsonl``. ``work`` is created, or replaced only
when an earlier run of this script wrote it. The test images are pseudo-labelled and then scored, which is the
Kaggle use (a competition's test images are there to be labelled).
"""

from __future__ import annotations

import datetime
import json
import shutil
import sys
from pathlib import Path

import yaml
from equal_time import machine, parse_splits, timed  # beside this script
from fold_models_on_submission import fresh_work

from core.contract import EXTRA_DIR, PSEUDO_JSON, STUDY_YAML, StudyFolder, read_json_file
from core.data.config import DataConfig
from core.data.study import StudyConfig, prepare_study
from core.data.synthetic import write_synthetic
from ensembling.cli import COUNT, POSITIVE, TEXT, command, parse_args
from ensembling.score import score_submission

MARKER = ".pseudo_distill"
BASE = {"model.arch": "Unet", "model.encoder": "resnet18", "model.encoder_depth": 3, "train.batch_size": 8,
        "train.scale": 0.125, "tta": "hflip"}
CONFIGS = {"A": {"train.lr": 2e-3}, "B": {"train.lr": 3e-3, "seed": 1}}  # seed is offset by the split's seed
SETS = {  # what each row ships: the trials select may pick from
    "base (A, B)": ["A", "B"],
    "pseudo round 2 (A2, B2)": ["A2", "B2"],
    "control, same images seen (A+, B+)": ["A+", "B+"],
    "A alone": ["A"],
    "A2 alone": ["A2"],
    "A+ alone": ["A+"],
    "student + pseudo": ["student"],
    "student, no pseudo": ["student0"],
}
USAGE = "python bench/studies/pseudo_distill.py work=WORK_DIR [seeds=0,1] [images=48] [test=24] [epochs=5] [precision=0.9]"
KEYS = {"seeds": TEXT, "images": COUNT, "test": COUNT, "epochs": COUNT, "precision": POSITIVE}
DEFAULTS = {"seeds": "0,1", "images": 48, "test": 24, "epochs": 5, "precision": 0.9}


def words(config: dict) -> list[str]:
    return [f"{k}={v}" for k, v in config.items()]


def run_module(argv: list[str], log: Path) -> float:
    """``python -m argv`` (output appended to ``log``, run in its folder); its wall seconds. A failure names the log."""
    return timed([sys.executable, "-m", *argv], log, log.parent)


def control_epochs(epochs: int, fold_images: int, kept: int) -> int:
    """Epochs of A+ that see as many images as ``epochs`` of round 2, whose folds also train on ``kept`` more."""
    return max(epochs, round(epochs * (fold_images + kept) / fold_images))


def make_study(folder: Path, seed: int, images: int, test: int) -> Path:
    data_root = write_synthetic(folder / "data", n_train=images, n_test=test, seed=seed)
    data = DataConfig(format="severstal", root=str(data_root), classes=4)
    study = folder / "study"
    prepare_study(study, StudyConfig(data=data, folds=2, seed=seed, oof_scale=0.25))
    raw = {"data": {"format": "severstal", "root": str(data_root), "options": {"classes": 4}}, "folds": 2, "seed": seed,
           "oof_scale": 0.25, "mlflow": {"uri": f"sqlite:///{folder / 'mlflow.db'}"}}
    (study / STUDY_YAML).write_text(yaml.safe_dump(raw))
    return study


def evaluate(study: Path, trials: list[str], where: Path, data: Path, log: Path) -> dict:
    """A copy of ``study`` with only ``trials``: select, export, predict the test images, score them."""
    shutil.copytree(study, where, ignore=shutil.ignore_patterns("trials", "ensemble.json", "ensembles.json"), symlinks=True)
    for trial in trials:
        shutil.copytree(StudyFolder(study).trial(trial).root, StudyFolder(where).trial(trial).root)
    run_module(["ensembling.select", f"study={where}", "budget.seconds=3600", "budget.images=100", "nested=false"], log)
    run_module(["ensembling.export", f"study={where}", f"out={where.parent / (where.name + '-export')}"], log)
    submission = where.parent / f"{where.name}.csv"
    run_module(["ensembling.predict", f"model={where.parent / (where.name + '-export')}", f"images={data / 'test_images'}",
           f"sample={data / 'sample_submission.csv'}", f"out={submission}", "device=cpu"], log)
    scored = score_submission(submission, data / "test_truth.csv", data / "test_images")
    oof = float(read_json_file(StudyFolder(where).ensemble_json)["oof_score"])
    return {"oof": oof, "test": scored["score"], "all_empty": scored["all_empty"]}


def one_seed(args: dict, seed: int) -> list[dict]:
    folder = args["work"] / f"seed{seed}"
    folder.mkdir()
    log = folder / "steps.log"
    study = make_study(folder, seed, args["images"], args["test"])
    data = folder / "data"
    epochs = args["epochs"]
    spent: dict[str, float] = {}

    def fit(trial: str, config: dict) -> None:
        spent[trial] = run_module(["trainables.fit", f"study={study}", f"trial_id={trial}", *words(config)], log)

    configs = {name: {**BASE, "train.epochs": epochs, **extra, "seed": extra.get("seed", 0) + seed} for name, extra in CONFIGS.items()}
    for name, config in configs.items():
        fit(name, config)
    run_module(["ensembling.select", f"study={study}", "budget.seconds=3600", "budget.images=100", "nested=false"], log)
    spent["pseudo"] = run_module(["ensembling.pseudo", f"study={study}", f"images={data / 'test_images'}", f"precision={args['precision']}", "device=cpu"], log)
    per_fold = read_json_file(StudyFolder(study).root / EXTRA_DIR / "pseudo" / PSEUDO_JSON)["kept"]  # {"0": n, "1": n, "all": n}
    kept = max(int(n) for fold, n in per_fold.items() if fold != "all")  # fold k trains on fold k's kept images
    fold_images = args["images"] // 2
    more = control_epochs(epochs, fold_images, kept)
    for name, config in configs.items():
        fit(f"{name}2", {**config, "train.extra": "pseudo"})
        fit(f"{name}+", {**config, "train.epochs": more})
    spent["student"] = run_module(["ensembling.distill", f"study={study}", "extra=pseudo", "alpha=0.5", "trial=student"], log)
    spent["student0"] = run_module(["ensembling.distill", f"study={study}", "alpha=0.5", "trial=student0"], log)
    rows = []
    for index, (label, trials) in enumerate(SETS.items()):
        scored = evaluate(study, trials, folder / f"set{index}", data, log)
        rows.append({"seed": seed, "set": label, "trials": trials, **scored, "train_s": round(sum(spent.get(t, 0.0) for t in trials), 1),
                     "pseudo_kept": kept, "control_epochs": more, "epochs": epochs, "images": args["images"], "test_images": args["test"],
                     "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "machine": machine()})
        print(f"seed {seed}: {label:<36} OOF {scored['oof']:.4f}  test {scored['test']:.4f}  ({rows[-1]['train_s']:.0f} s of training)", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    head = "| candidates | " + " | ".join(f"seed {s} OOF / test" for s in seeds) + " | mean test | training s (mean) |\n"
    head += "|---|" + "---|" * (len(seeds) + 2) + "\n"
    lines = []
    for label in SETS:
        mine = {r["seed"]: r for r in rows if r["set"] == label}
        cells = " | ".join(f"{mine[s]['oof']:.4f} / {mine[s]['test']:.4f}" for s in seeds)
        mean_test = sum(r["test"] for r in mine.values()) / len(mine)
        mean_s = sum(r["train_s"] for r in mine.values()) / len(mine)
        lines.append(f"| {label} | {cells} | **{mean_test:.4f}** | {mean_s:.0f} |")
    empty = " / ".join(f"{next(r['all_empty'] for r in rows if r['seed'] == s):.4f}" for s in seeds)
    return head + "\n".join(lines) + f"\n\nall-empty per seed: {empty}"


def run(given: dict) -> None:
    args = {**DEFAULTS, **given}
    args["seeds"] = parse_splits(args["seeds"])
    if args["images"] % 2 or args["images"] < 8:
        raise ValueError(f"images must be an even number >= 8 (two folds), got {args['images']}")
    if not 0 < float(args["precision"]) <= 1:
        raise ValueError(f"precision must be a share in (0, 1], got {args['precision']!r}")
    args["work"] = Path(args["work"]).resolve()
    fresh_work(args["work"], MARKER)
    rows = []
    for seed in args["seeds"]:
        new = one_seed(args, seed)
        rows += new
        with open(args["work"] / "results.jsonl", "a") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in new)
    print(f"\n{machine()}; rows appended to {args['work'] / 'results.jsonl'}\n\n{table(rows)}")


def main(argv: list[str]) -> int:
    return command(lambda: run(parse_args(argv, ["work"], KEYS, USAGE)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
