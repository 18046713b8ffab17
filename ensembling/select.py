"""Pick the ensemble: ``python -m ensembling.select study=DIR budget.seconds=S budget.images=N``.

Greedy forward selection with replacement over the study's finished trials, scored on their
out-of-fold predictions with the competition metric after a per-class threshold and minimum area,
keeping the members' summed inference time for N test images within S seconds. Writes
``<study>/ensemble.json`` and records the selection as an MLflow run in the study's experiment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import mlflow

from ensembling.blend import candidate_grids
from ensembling.cli import COUNT, POSITIVE, command, parse_args
from ensembling.greedy import Selection, greedy_select
from ensembling.manifest import build_manifest, write_manifest
from ensembling.store import TrialRecord, scan_trials
from ensembling.tracking import clean_params, numeric, resolve_uri, use_experiment
from trainables.data.study import Study, open_study
from trainables.metrics import best_postprocessing


@dataclass
class Budget:
    seconds: float = 3600.0  # a Kaggle kernel's hour
    images: int = 5506  # Severstal's full test set


def usable_trials(study: Study) -> list[TrialRecord]:
    """Finished, undamaged trials that predicted every image of this study's split.

    Each damaged trial is skipped with a line naming the file and what is wrong; only when nothing usable
    is left is it an error.
    """
    scan = scan_trials(study.root, oof_shape=(len(study.image_ids), study.data.num_classes, *study.oof_size))
    for problem in scan.problems:
        print(problem, flush=True)
    trials = [t for t in scan.records if t.complete and t.metrics.get("folds_hash") == study.folds_hash]
    if not trials:
        damaged = f" ({len(scan.problems)} damaged, listed above)" if scan.problems else ""
        raise ValueError(
            f"{study.root}: no usable finished trial covers every fold of this split{damaged}; "
            "run `python -m search.run` with train.folds unset first"
        )
    return trials


@dataclass
class Outcome:
    trials: list[TrialRecord]
    selection: Selection
    singles: list[float]  # each trial's tuned OOF score
    costs: list[float]  # each trial's seconds for the budget's images

    @property
    def best_single(self) -> int:
        """The best trial the budget allows: greedy selection starts from it."""
        return next(iter(self.selection.history[0][0]))


def select(study: Study, budget: Budget, max_steps: int = 20) -> Outcome:
    trials = usable_trials(study)
    oofs = [t.oof() for t in trials]
    truth = study.truth()
    singles = [best_postprocessing(g).score for g in candidate_grids(oofs, truth, {}, list(range(len(trials))))]
    costs = [t.ms_per_image * budget.images / 1000 for t in trials]

    def scorer(counts: dict[int, int], candidates: Any) -> list[float]:
        return [best_postprocessing(g).score for g in candidate_grids(oofs, truth, counts, candidates)]

    selection = greedy_select(singles, costs, budget.seconds, scorer, max_steps=max_steps)
    return Outcome(trials, selection, singles, costs)


def run(args: dict[str, Any]) -> dict[str, Any]:
    study = open_study(args["study"])
    budget = Budget(seconds=args.get("budget.seconds", Budget.seconds), images=args.get("budget.images", Budget.images))
    outcome = select(study, budget, max_steps=args.get("max_steps", 20))
    trials, selection, singles, best = outcome.trials, outcome.selection, outcome.singles, outcome.best_single
    post = best_postprocessing(candidate_grids([t.oof() for t in trials], study.truth(), selection.counts, [None])[0])
    manifest = build_manifest(study, trials, selection, post, budget.seconds, budget.images, trials[best], singles[best])
    write_manifest(study.folder.ensemble_json, manifest)
    _log_mlflow(study, manifest)
    overall = max(range(len(trials)), key=lambda i: singles[i])
    if overall != best:
        print(f"Best single trial: {trials[overall].trial_id}  OOF {singles[overall]:.4f}, over the budget ({outcome.costs[overall]:.0f} s)")
    print(f"Best single trial within the budget: {trials[best].trial_id}  OOF {singles[best]:.4f}")
    print(f"Ensemble: {len(selection.counts)} member(s), {sum(selection.counts.values())} picks  OOF {post.score:.4f}")
    for member in manifest["members"]:
        print(f"  {member['trial_id']:<18} weight {member['weight']:.3f}  single OOF {member['oof_score']:.4f}")
    print(describe_postprocessing(manifest))
    print(f"Expected {manifest['budget']['expected_seconds']:.0f} s for {budget.images} images (budget {budget.seconds:.0f} s)")
    print(f"Wrote {study.folder.ensemble_json}\nNext: python -m ensembling.export study={study.root} out=DIR")
    return manifest


def describe_postprocessing(manifest: dict[str, Any]) -> str:
    """One line per class: its threshold and minimum area, or that predicting nothing scored best."""
    post = manifest["postprocessing"]
    lines = []
    for c, class_id in enumerate(manifest["class_ids"]):
        score = manifest["class_scores"][c]
        if post["min_area_fractions"][c] >= 1:
            lines.append(f"  class {class_id}: always empty (no mask beat predicting nothing on OOF)  OOF {score:.4f}")
        else:
            lines.append(f"  class {class_id}: p >= {post['thresholds'][c]:.2f}, masks under {post['min_area_px'][c]} px dropped  OOF {score:.4f}")
    return "Post-processing per class:\n" + "\n".join(lines)


def _log_mlflow(study: Study, manifest: dict[str, Any]) -> None:
    raw = study.folder.read_config()
    tracking = raw.get("mlflow") or {}
    use_experiment(resolve_uri(tracking.get("uri")), tracking.get("experiment") or study.root.name)
    with mlflow.start_run(run_name=f"select {study.root.name}"):
        mlflow.set_tags({"study": str(study.root), "kind": "select"})
        mlflow.log_params(clean_params({**manifest["budget"], "members": [m["trial_id"] for m in manifest["members"]]}))
        mlflow.log_metrics(numeric({"oof_score": manifest["oof_score"], "best_single_oof_score": manifest["best_single"]["oof_score"]}))
        mlflow.log_artifact(str(study.folder.ensemble_json))


def main(argv: list[str]) -> int:
    usage = "python -m ensembling.select study=STUDY_DIR [budget.seconds=3600] [budget.images=5506] [max_steps=20]"
    optional = {"budget.seconds": POSITIVE, "budget.images": COUNT, "max_steps": COUNT}

    def body() -> None:
        run(parse_args(argv, required=["study"], optional=optional, usage=usage))

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
