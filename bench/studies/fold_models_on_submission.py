"""Which estimate is honest: the submission with each fold's models alone, beside the K-fold average.

    python bench/studies/fold_models_on_submission.py export=DIR data=DATA_ROOT work=WORK_DIR

An OOF prediction comes from one fold model; a test prediction from the average of the K fold models of
each member. So the OOF score and the nested estimate both describe a one-model-per-member ensemble, and
the exported one can score above both. This copies ``export`` once per fold ``f`` with every member (and
every gate member) cut to its fold-``f`` checkpoint, predicts the test images with each copy and scores
it (``ensembling.predict``, ``ensembling.score``), then the untouched export. Printed: each fold's test
score, their mean (the hidden score of what OOF and nested estimate), the export's own, and the manifest's
OOF and nested scores beside them. ``data`` as for bench/studies/flow.sh (test_images/, sample_submission.csv,
test_truth.csv). ``work`` is created, or replaced only when an earlier run of this script wrote it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ensembling.cli import command, parse_args
from ensembling.runtime.manifest import Manifest, read_manifest, write_manifest
from ensembling.score import score_submission

MARKER = ".fold_models_on_submission"


def run_module(*argv: str) -> str:
    """``python -m argv...`` in its own process (as a user runs it); its failure raises with its last error line."""
    result = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"{argv[0]} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def fresh_work(work: Path, marker: str) -> None:
    """Make ``work`` empty, replacing only a folder an earlier run of the same script marked as its own."""
    if work.exists() and not (work / marker).is_file():
        raise ValueError(f"{work} exists and was not written by this script; give another work=")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / marker).touch()


def _score(export: Path, data: Path, submission: Path) -> float:
    run_module("ensembling.predict", f"model={export}", f"images={data / 'test_images'}", f"sample={data / 'sample_submission.csv'}", f"out={submission}")
    return score_submission(submission, data / "test_truth.csv", data / "test_images")["score"]


def _one_fold(manifest: Manifest, fold: int) -> Manifest:
    cut = Manifest.from_dict(manifest.to_dict(), "ensemble.json")  # a copy
    for member in [*cut.members, *(cut.gate.members if cut.gate is not None else [])]:
        if len(member.checkpoints) <= fold:
            raise ValueError(f"member {member.trial_id} has {len(member.checkpoints)} checkpoint(s), no fold {fold} (an export of refit models has one)")
        member.checkpoints = [member.checkpoints[fold]]
    return cut


def hidden_scores(export: Path, data: Path, work: Path) -> tuple[list[float], float]:
    """The hidden test score with each fold's models alone (one per fold), and with the export as it is."""
    fresh_work(work, MARKER)
    manifest = read_manifest(export / "ensemble.json")
    scores = []
    for fold in range(len(manifest.members[0].checkpoints)):
        copy = work / f"export-fold{fold}"
        shutil.copytree(export, copy)
        write_manifest(copy / "ensemble.json", _one_fold(manifest, fold))
        scores.append(_score(copy, data, work / f"submission-fold{fold}.csv"))
        print(f"fold {fold} models only: test {scores[-1]:.4f}", flush=True)
    return scores, _score(export, data, work / "submission-all.csv")


USAGE = "python bench/studies/fold_models_on_submission.py export=DIR data=DATA_ROOT work=WORK_DIR"


def main(argv: list[str]) -> int:
    return command(lambda: run(parse_args(argv, ["export", "data", "work"], [], USAGE)))


def run(args: dict[str, str]) -> None:
    export, data, work = Path(args["export"]).resolve(), Path(args["data"]).resolve(), Path(args["work"]).resolve()
    scores, full = hidden_scores(export, data, work)
    folds, mean = len(scores), sum(scores) / len(scores)
    manifest = read_manifest(export / "ensemble.json")
    oof, nested = manifest.oof_score, manifest.nested_score
    print(f"one fold's models, mean over {folds} folds: test {mean:.4f}")
    print(f"the export ({folds} fold models averaged per member): test {full:.4f}")
    if oof is not None and nested is not None:
        closer = "nested" if abs(nested - mean) < abs(oof - mean) else "OOF"
        print(f"OOF {oof:.4f} (off by {oof - mean:+.4f}), nested {nested:.4f} (off by {nested - mean:+.4f}) "
              f"from the one-fold-model test score: {closer} is the closer; fold averaging adds {full - mean:+.4f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
