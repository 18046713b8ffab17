"""Ours against a plain script at the same wall time, on several splits of one kind of data.

    python bench/studies/equal_time.py kind=masks|labels|synthetic work=WORK_DIR [splits=0,1,2] [budget=10m]
        [ours="key=value ..."] [plain="key=value ..."] [source=DIR] [out=RESULTS.jsonl]

For each split S:

1. the data: ``masks``, NEU-Seg as a Severstal folder split at random with seed S
   (``bench/data/neu_as_severstal.py seed=S``, run with ``data.classes=3``); ``labels``, NEU-DET split
   with seed S (``bench/data/neu_det_split.py``, run with ``space=classes_quick``); ``synthetic``, the
   built-in set the search writes under its storage (the same images every split: S is the search's seed).
   ``source`` is the NEU-Seg or NEU-DET folder (default: ../shared/data beside the checkout).
2. ours, as a user runs it, timed from the first command to the written submission:
   ``python -m search.run <data keys> seed=S time_budget=BUDGET`` (+ ``ours`` keys), then
   ``ensembling.select`` only when the study has no ensemble.json yet (a budget's planner selects itself),
   ``ensembling.export models=M`` (M: ``export_models`` of the study's plan.json if there is one, else
   folds), ``ensembling.predict`` on the test images.
3. the plain script given our wall time as its whole budget (``bench/baselines/plain_script.py seconds=``
   for masks and synthetic, ``bench/baselines/plain_classes.py seconds=`` for labels; ``plain`` adds keys).
4. both scored on the hidden test truth: the study's Dice (``ensembling.score``) beside all-empty, or
   accuracy for labels.

One JSON line per split is appended to ``out`` (default ``<work>/results.jsonl``), and a markdown table with
the means over the splits is printed at the end. ``work`` is created, or replaced only when an earlier run
of this script wrote it. Logs of every step are kept under ``<work>/split<S>/``. Run it on a quiet
machine: the two sides are compared by wall time.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from fold_models_on_submission import fresh_work  # beside this script

from core.config import split_words
from ensembling.cli import TEXT, command, parse_args

MARKER = ".equal_time"
KINDS = ("masks", "labels", "synthetic")
ROOT = Path(__file__).resolve().parents[2]  # the checkout whose code both sides run
SHARED = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT.parent / "shared" / "data")
SOURCES = {"masks": SHARED / "neu_seg", "labels": SHARED / "neu_det_cls"}
# what ours= may not set, and why: the harness reads the study where it put it
HARNESS_KEYS = {"storage": "the study goes under work=", "study": "the study goes under work=", "mlflow.uri": "the runs go under work=",
                "time_budget": "give budget=", "seed": "splits= are the seeds"}
PLAIN_KEYS = {k: "the harness gives it" for k in ("data", "out", "seconds", "epochs", "json", "train", "test", "labels", "seed")}
STUDY = "bench"
UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}

USAGE = ('python bench/studies/equal_time.py kind=masks|labels|synthetic work=WORK_DIR [splits=0,1,2] [budget=10m] '
         '[ours="key=value ..."] [plain="key=value ..."] [source=DIR] [out=RESULTS.jsonl]')
KEYS = {"splits": TEXT, "budget": TEXT, "ours": TEXT, "plain": TEXT, "source": TEXT, "out": TEXT}
DEFAULTS = {"splits": "0,1,2", "budget": "10m", "ours": "", "plain": "", "source": "", "out": ""}


# --- pure parts ------------------------------------------------------------------------------------

def parse_splits(text: str) -> list[int]:
    """``0,1,2`` (or ``[0, 1, 2]``) as distinct seeds >= 0, in order."""
    words = [w.strip() for w in str(text).strip("[] ").split(",")]
    if not words or not all(w.isdigit() for w in words) or len(set(words)) != len(words):
        raise ValueError(f"splits must be distinct integers >= 0 separated by commas, such as 0,1,2; got {text!r}")
    return [int(w) for w in words]


def budget_seconds(text: str) -> float:
    """The seconds of ``600``, ``90s``, ``10m`` or ``1.5h`` (the forms search.run's time_budget takes)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"budget must be a duration above 0 like 600, 90s, 10m or 1.5h; got {text!r}")
    return float(match.group(1)) * UNITS[match.group(2) or ""]


def key_words(text: str, name: str, refused: dict[str, str] | None = None) -> dict[str, str]:
    """``ours=``/``plain=`` text as key -> value; a key the harness sets itself is refused, with why."""
    pairs = split_words(shlex.split(text), f" in {name}=")
    for key, _ in pairs:
        if key in (refused or {}):
            raise ValueError(f"{name}= may not set {key}: equal_time.py sets it ({refused[key]})")
    return dict(pairs)


def search_keys(kind: str, data: Path | None, split: int, budget: str, ours_dir: Path, ours: dict[str, str]) -> list[str]:
    """The search.run words of one split: the kind's data keys, the harness's own, then ``ours`` (which win)."""
    base = {
        "masks": {"data": "severstal", "data.root": str(data), "data.classes": "3"},
        "labels": {"data": "classes", "data.root": str(data / "train") if data else "", "space": "classes_quick"},
        "synthetic": {},
    }[kind]
    keys = {**base, "seed": str(split), "time_budget": budget, "study": STUDY, "storage": str(ours_dir / "studies"),
            "mlflow.uri": f"sqlite:///{ours_dir / 'mlflow.db'}", **ours}
    return [f"{k}={v}" for k, v in keys.items()]


def export_models(study: Path) -> str:
    """What to export: the plan's ``export_models`` where a budget's planner wrote plan.json, else folds."""
    from core.contract import StudyFolder

    plan = StudyFolder(study).plan_json
    if not plan.is_file():
        return "folds"
    try:
        models = json.loads(plan.read_text()).get("export_models", "folds")
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{plan}: not a JSON object ({error}); rerun the search or remove the file") from None
    if models not in ("folds", "refit"):
        raise ValueError(f"{plan}: export_models must be folds or refit, got {models!r}")
    return models


def accuracy(truth_csv: Path, submission: Path) -> float:
    """The share of test images whose label the submission gets right (image,label rows)."""
    with open(truth_csv) as handle:
        truth = {r["image"]: r["label"] for r in csv.DictReader(handle)}
    with open(submission) as handle:
        pred = {r["image"]: r["label"] for r in csv.DictReader(handle)}
    if set(pred) != set(truth):
        raise ValueError(f"{submission}: does not list every test image of {truth_csv} once")
    return sum(pred[k] == v for k, v in truth.items()) / len(truth)


def mean(values: list) -> float | None:
    given = [v for v in values if v is not None]
    return sum(given) / len(given) if given else None


def table(rows: list[dict]) -> str:
    """A markdown table of the splits and their means; margin is ours minus plain."""
    def cell(value, digits=4):
        return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    head = "| split | ours wall s | plain wall s | plain epochs | ours | plain | margin | all-empty |\n|---|---|---|---|---|---|---|---|\n"
    lines = []
    for r in rows:
        margin = r["ours"] - r["plain"]
        lines.append(f"| {r['split']} | {r['ours_s']:.0f} | {r['plain_s']:.0f} | {r['plain_epochs']} | {cell(r['ours'])} | "
                     f"{cell(r['plain'])} | {margin:+.4f} | {cell(r['all_empty'])} |")
    means = {k: mean([r[k] for r in rows]) for k in ("ours_s", "plain_s", "ours", "plain", "all_empty")}
    margin = means["ours"] - means["plain"]
    lines.append(f"| **mean** | {means['ours_s']:.0f} | {means['plain_s']:.0f} | {cell(mean([r['plain_epochs'] for r in rows]), 1)} | "
                 f"**{cell(means['ours'])}** | **{cell(means['plain'])}** | **{margin:+.4f}** | {cell(means['all_empty'])} |")
    kind, budget, metric = rows[0]["kind"], rows[0]["budget"], rows[0]["metric"]
    return f"{kind}, budget {budget}, {metric} on the hidden test images, {len(rows)} split(s); mean margin {margin:+.4f}\n\n{head}" + "\n".join(lines)


def machine() -> str:
    """The CPU model and logical cores, from /proc/cpuinfo (the record says where a wall time was measured)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"unknown CPU, {os.cpu_count()} cores"
    models = re.findall(r"^model name\s*:\s*(.+)$", text, re.M)
    cores = len(re.findall(r"^processor\s*:", text, re.M))
    return f"{models[0].strip() if models else 'unknown CPU'}, {cores} cores"


# --- the runs --------------------------------------------------------------------------------------

def timed(argv: list[str], log: Path, cwd: Path) -> float:
    """Run argv (output appended to ``log``) and return its wall seconds; a failure names the log."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    began = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"$ {shlex.join(argv)}\n")
        handle.flush()
        status = subprocess.run(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - began
    if status != 0:
        raise ValueError(f"{shlex.join(argv[:4])} ... failed (exit status {status}); its output is in {log}")
    return seconds


def make_data(kind: str, split: int, source: Path, folder: Path, log: Path) -> Path | None:
    """The split's data folder (None for synthetic: the search writes it)."""
    if kind == "masks":
        timed([sys.executable, str(ROOT / "bench/data/neu_as_severstal.py"), f"out={folder}", f"source={source}", f"seed={split}"], log, ROOT)
    elif kind == "labels":
        timed([sys.executable, str(ROOT / "bench/data/neu_det_split.py"), f"src={source}", f"out={folder}", f"seed={split}"], log, ROOT)
    else:
        return None
    return folder


def label_sample(truth_csv: Path, sample: Path) -> None:
    """The label sample predict fills: every test image, no label."""
    with open(truth_csv) as handle:
        images = [r["image"] for r in csv.DictReader(handle)]
    with open(sample, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        writer.writerows([image, ""] for image in images)


def test_files(kind: str, data: Path) -> dict[str, Path]:
    if kind == "labels":
        return {"images": data / "test" / "images", "sample": data.parent / "sample.csv", "truth": data / "test_labels.csv"}
    return {"images": data / "test_images", "sample": data / "sample_submission.csv", "truth": data / "test_truth.csv"}


def synthetic_root(ours_dir: Path) -> Path:
    found = sorted(p for p in (ours_dir / "studies" / "_data").glob("synthetic-*") if re.fullmatch(r"synthetic-\d+", p.name))
    if len(found) != 1:
        raise ValueError(f"{ours_dir / 'studies' / '_data'}: expected one synthetic-* folder the search wrote, found {len(found)}")
    return found[0]


def run_ours(kind: str, split: int, data: Path | None, budget: str, ours: dict[str, str], folder: Path) -> dict:
    """search, select (unless the planner selected), export, predict: the step times and the data folder."""
    ours_dir, log = folder / "ours", folder / "ours.log"
    ours_dir.mkdir()
    study = ours_dir / "studies" / STUDY
    py = [sys.executable, "-m"]
    steps = {"search": timed([*py, "search.run", *search_keys(kind, data, split, budget, ours_dir, ours)], log, ours_dir)}
    if not (study / "ensemble.json").is_file():
        steps["select"] = timed([*py, "ensembling.select", f"study={study}"], log, ours_dir)
    models = export_models(study)
    steps["export"] = timed([*py, "ensembling.export", f"study={study}", f"out={ours_dir / 'export'}", f"models={models}"], log, ours_dir)
    data = data if data is not None else synthetic_root(ours_dir)
    files = test_files(kind, data)
    if kind == "labels":
        label_sample(files["truth"], files["sample"])
    steps["predict"] = timed([*py, "ensembling.predict", f"model={ours_dir / 'export'}", f"images={files['images']}",
                              f"sample={files['sample']}", f"out={folder / 'ours.csv'}"], log, ours_dir)
    return {"steps": steps, "data": data, "export_models": models}


def run_plain(kind: str, split: int, data: Path, seconds: float, plain: dict[str, str], folder: Path) -> dict:
    """The plain script with ``seconds`` as its whole budget: its record (epochs, its own wall) and our wall of it."""
    record = folder / "plain.json"
    if kind == "labels":
        files = test_files(kind, data)
        argv = [sys.executable, str(ROOT / "bench/baselines/plain_classes.py"), f"train={data / 'train'}", f"test={files['images']}",
                f"labels={files['truth']}", f"seconds={seconds:.1f}", f"out={record}"]
    else:
        argv = [sys.executable, str(ROOT / "bench/baselines/plain_script.py"), f"data={data}", f"out={folder / 'plain.csv'}",
                f"seconds={seconds:.1f}", f"seed={split}", f"json={record}"]
    wall = timed(argv + [f"{k}={v}" for k, v in plain.items()], folder / "plain.log", folder)
    return {**json.loads(record.read_text()), "wall": wall}


def scores(kind: str, data: Path, folder: Path, plain: dict) -> dict:
    files = test_files(kind, data)
    if kind == "labels":
        return {"ours": accuracy(files["truth"], folder / "ours.csv"), "plain": plain["test_accuracy"], "all_empty": None, "metric": "accuracy"}
    from ensembling.score import score_submission

    ours = score_submission(folder / "ours.csv", files["truth"], files["images"])
    other = score_submission(folder / "plain.csv", files["truth"], files["images"])
    return {"ours": ours["score"], "plain": other["score"], "all_empty": ours["all_empty"], "metric": ours["metric"]}


def one_split(args: dict, split: int, work: Path) -> dict:
    folder = work / f"split{split}"
    folder.mkdir()
    data = make_data(args["kind"], split, args["source"], folder / "data", folder / "data.log")
    ours = run_ours(args["kind"], split, data, args["budget"], args["ours"], folder)
    ours_s = sum(ours["steps"].values())
    print(f"split {split}: ours {ours_s:.0f} s ({', '.join(f'{k} {v:.0f}' for k, v in ours['steps'].items())}); the plain script gets as long", flush=True)
    plain = run_plain(args["kind"], split, ours["data"], ours_s, args["plain"], folder)
    result = scores(args["kind"], ours["data"], folder, plain)
    return {"kind": args["kind"], "split": split, "budget": args["budget"], "ours_s": round(ours_s, 1),
            "ours_steps": {k: round(v, 1) for k, v in ours["steps"].items()}, "export_models": ours["export_models"],
            "plain_s": round(plain["wall"], 1), "plain_epochs": plain["epochs"], **result,
            "ours_keys": args["ours"], "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
            "machine": machine()}


def checked(given: dict) -> dict:
    args = {**DEFAULTS, **given}
    if args["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {args['kind']!r}")
    budget_seconds(args["budget"])
    args["splits"] = parse_splits(args["splits"])
    args["ours"] = key_words(args["ours"], "ours", HARNESS_KEYS)
    args["plain"] = key_words(args["plain"], "plain", PLAIN_KEYS)
    if args["kind"] == "synthetic" and args["source"]:
        raise ValueError("source= names the NEU folder of kind=masks or kind=labels; kind=synthetic writes its own data")
    args["source"] = Path(args["source"]).resolve() if args["source"] else SOURCES.get(args["kind"])
    if args["source"] is not None and not args["source"].is_dir():
        raise ValueError(f"source={args['source']}: no such folder; give source= the NEU data folder")
    args["work"] = Path(args["work"]).resolve()
    args["out"] = Path(args["out"]).resolve() if args["out"] else args["work"] / "results.jsonl"
    return args


def run(args: dict) -> None:
    fresh_work(args["work"], MARKER)
    rows = []
    for split in args["splits"]:
        rows.append(one_split(args, split, args["work"]))
        with open(args["out"], "a") as handle:
            handle.write(json.dumps(rows[-1]) + "\n")
        r = rows[-1]
        print(f"split {split}: ours {r['ours']:.4f} in {r['ours_s']:.0f} s, plain {r['plain']:.4f} in {r['plain_s']:.0f} s "
              f"({r['plain_epochs']} epochs)" + (f", all-empty {r['all_empty']:.4f}" if r["all_empty"] is not None else ""), flush=True)
    print(f"\n{machine()}; results appended to {args['out']}\n\n{table(rows)}")


def main(argv: list[str]) -> int:
    return command(lambda: run(checked(parse_args(argv, ["kind", "work"], KEYS, USAGE))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
