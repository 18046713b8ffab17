"""Selection for a classification study (``python -m ensembling.select study=DIR`` dispatches here).

The same Caruana selector (``ensembling.scoring.greedy``: replacement, sorted init, bagging, member cap, budget)
over probability averages of the study's classification trials and their snapshots, each blend scored by
the study's class metric after its knobs are tuned (``ensembling.scoring.class_knobs``: temperature where it can
change the metric, per-class thresholds for multi-label decision metrics). Beside the OOF score, the
nested estimate: the whole selection and tuning repeated on K-1 folds, scored on the fold left out.
Writes ``<study>/ensemble.json`` (``kind: classification``) and logs an MLflow run as segmentation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
from tqdm import tqdm

from core.class_metrics import default_metric, get_class_metric, is_class_metric, list_class_metrics, oriented
from core.contract import CLASSIFICATION
from core.data.study import Study
from core.store import TrialRecord, with_snapshots
from core.tracking import clean_params, numeric, parent_run_id, resolve_uri, use_experiment
from ensembling.runtime.manifest import (
    FORMAT_VERSION,
    Calibration,
    ClassSection,
    Manifest,
    member_entry,
    write_manifest,
)
from ensembling.scoring.budget import Budget, curve
from ensembling.scoring.class_knobs import ClassScorer, ClassTuned, temperature_matters, thresholds_matter
from ensembling.scoring.greedy import GreedyConfig, Selection, select_with_progress
from ensembling.scoring.nested import nested_words, outer_parts


@dataclass(frozen=True)
class ClassTask:
    multi_label: bool
    metric: str
    class_names: list[str]


def is_classification(study: Study) -> bool:
    """A study whose study.yaml says classification, or whose truth is (N, K) image labels, not masks."""
    return study.folder.kind() == CLASSIFICATION or study.truth().ndim == 2


def class_task(study: Study) -> ClassTask:
    """Multi-label or not, the metric and the class names, from study.yaml (older ones: from the truth)."""
    raw = study.folder.read_config()
    truth = study.folder.class_truth()
    if isinstance(raw.get("multi_label"), bool):
        multi = bool(raw["multi_label"])
    else:
        multi = bool((np.asarray(truth).sum(axis=1) != 1).any())  # a row without exactly one label
    metric = raw.get("metric")
    if not is_class_metric(metric):
        fallback = default_metric(multi)
        if metric is not None:
            print(f"study.yaml metric {metric!r} is not a class metric ({', '.join(list_class_metrics())}); selecting on {fallback}", flush=True)
        metric = fallback
    k = truth.shape[1]
    names = [str(n) for n in study.data.class_names] if len(study.data.class_names) == k else [str(c) for c in range(1, k + 1)]
    return ClassTask(multi, str(metric), names)


def class_candidates(study: Study, trials: list[TrialRecord]) -> list[TrialRecord]:
    """Trials and snapshots whose OOF is (N, K) like the truth; the rest are skipped with a line each."""
    problems: list[str] = []
    found = with_snapshots(trials, problems)
    shape = study.truth().shape
    out = []
    for t in found:
        if t.oof().shape == shape and t.oof().dtype in (np.float16, np.float32, np.uint8):
            out.append(t)
        else:
            problems.append(f"skipped {t.candidate_id}: {t.folder.oof}: OOF of shape {t.oof().shape}, not the truth's {shape}")
    for problem in problems:
        print(problem, flush=True)
    if not out:
        raise ValueError(f"{study.root}: no finished trial has OOF of shape {shape}; run a classification search first")
    return out


def oof_probs(trial: TrialRecord) -> np.ndarray:
    """A trial's OOF as probabilities in [0, 1]: float as written, uint8 read as level / 255."""
    oof = trial.oof()  # checked by class_candidates: (N, K) like the truth
    return np.asarray(oof, np.float64) / 255 if oof.dtype == np.uint8 else np.asarray(oof, np.float64)


@dataclass
class ClassOutcome:
    trials: list[TrialRecord]
    selection: Selection
    tuned: ClassTuned
    singles: list[float]  # objectives (higher better)
    costs: list[float]
    best_single: int
    nested: list[float] | None
    curve: list[tuple[float, float]]


def choose(scorer: ClassScorer, costs: list[float], budget: float, config: GreedyConfig, quiet: bool = False) -> tuple[Selection, ClassTuned, list[float]]:
    selection, singles = select_with_progress(scorer.scores, costs, budget, config, quiet)
    return selection, scorer.tune(selection.counts), singles


def select_classes(study: Study, trials: list[TrialRecord], task: ClassTask, budget: Budget, config: GreedyConfig, nested: bool = True,
                   nested_split: str = "images") -> ClassOutcome:
    candidates = class_candidates(study, trials)
    oofs = [oof_probs(t) for t in candidates]
    truth = np.asarray(study.folder.class_truth())
    costs = [budget.member_seconds(t.ms_per_image, t.cost) for t in candidates]

    def scorer(rows: np.ndarray | None) -> ClassScorer:
        return ClassScorer(oofs, truth, task.metric, task.multi_label, rows)

    selection, tuned, singles = choose(scorer(None), costs, budget.for_members, config)
    fold_scores = None
    if nested:
        parts = outer_parts(study.folds["fold"].to_numpy(), nested_split, config.seed)
        fold_scores = []
        for part in tqdm(sorted(set(parts.tolist())), desc="nested estimate", unit="part", leave=False):
            sub, sub_tuned, _ = choose(scorer(np.flatnonzero(parts != part)), costs, budget.for_members, config, quiet=True)
            fold_scores.append(scorer(np.flatnonzero(parts == part)).held_out(sub.counts, sub_tuned))
    points = [(costs[i], singles[i]) for i in range(len(costs))]
    points += [(sum(costs[i] for i in counts), score) for counts, score in selection.history]
    affordable = [i for i in range(len(costs)) if costs[i] <= budget.for_members]
    best = max(affordable, key=lambda i: (singles[i], -costs[i]))
    return ClassOutcome(candidates, selection, tuned, singles, costs, best, fold_scores, curve(points))


def knob_notes(task: ClassTask) -> dict[str, str]:
    """Which knob can change the metric, in words (printed and kept in the manifest)."""
    t = "tuned on OOF" if temperature_matters(task.metric, task.multi_label) else f"none: it cannot change {task.metric}"
    if thresholds_matter(task.metric, task.multi_label):
        th = "per class, the exact optimum on OOF"
    elif task.multi_label:
        th = f"none: {task.metric} reads probabilities (0.5 where a label is written)"
    elif task.metric == "macro_f1":
        th = "per-class weights on the argmax, tuned on the chosen blend"
    else:
        th = "none: single-label decisions are the argmax"
    return {"temperature": t, "thresholds": th}


def build_class_manifest(study: Study, task: ClassTask, outcome: ClassOutcome, budget_record: dict[str, Any], nested_split: str) -> Manifest:
    metric = get_class_metric(task.metric, task.multi_label)
    trials, selection, tuned = outcome.trials, outcome.selection, outcome.tuned
    members = [member_entry(study, trials[i], w) for i, w in selection.weights.items()]
    for member, i in zip(members, selection.weights, strict=True):
        member.oof_score = oriented(task.metric, outcome.singles[i])  # the candidate's tuned score, in the metric's own sign
    knobs = tuned.to_manifest()
    calibration = Calibration(temperature=knobs["temperature"], thresholds=knobs["thresholds"], class_weights=knobs["class_weights"])
    classes = ClassSection(multi_label=task.multi_label, num_classes=len(task.class_names), class_names=list(task.class_names),
                           calibration=calibration, members=members)
    return Manifest(
        format_version=FORMAT_VERSION,
        kind=CLASSIFICATION,
        classes=classes,
        study=str(study.root),
        folds_hash=study.folds_hash,
        num_classes=len(task.class_names),
        image_shape=list(study.data.shape),
        members=members,
        metric=task.metric,
        higher_is_better=metric.higher_is_better,
        knobs=knob_notes(task),
        postprocessing=knobs,  # what ensemble_id hashes
        oof_score=tuned.score,
        class_scores=tuned.class_scores,
        nested_score=None if outcome.nested is None else float(np.mean(outcome.nested)),
        nested_fold_scores=outcome.nested,
        nested_split=None if outcome.nested is None else nested_split,
        best_single={"trial_id": trials[outcome.best_single].candidate_id, "oof_score": oriented(task.metric, outcome.singles[outcome.best_single])},
        budget=budget_record,
        history=[{"members": {trials[i].candidate_id: c for i, c in counts.items()}, "score": oriented(task.metric, s)} for counts, s in selection.history],
    )


def run_classes(study: Study, trials: list[TrialRecord], args: dict[str, Any], config: GreedyConfig) -> Manifest:
    task = class_task(study)
    budget = Budget(
        seconds=args.get("budget.seconds", Budget.seconds),
        images=args.get("budget.images", Budget.images),
        device=args.get("budget.device", Budget.device),
        labels=True,
    )
    split = args.get("nested.split", "images")
    outcome = select_classes(study, trials, task, budget, config, nested=args.get("nested", True), nested_split=split)
    expected = budget.fixed_seconds + sum(outcome.costs[i] for i in outcome.selection.counts)
    shown = [(s, oriented(task.metric, v)) for s, v in outcome.curve]
    budget_record = {"seconds": budget.seconds, "images": budget.images, "device": budget.device, "expected_seconds": expected,
                     "fixed_seconds": budget.fixed_seconds, "curve": shown}
    manifest = build_class_manifest(study, task, outcome, budget_record, split)
    write_manifest(study.folder.ensemble_json, manifest)
    print(class_report(manifest, outcome, budget))
    print(f"Wrote {study.folder.ensemble_json}")
    _log_mlflow(study, manifest)
    print(f"Next: python -m ensembling.export study={study.root} out=DIR")
    return manifest


def class_report(manifest: Manifest, outcome: ClassOutcome, budget: Budget) -> str:
    trials, best = outcome.trials, outcome.best_single
    def sign(value: float) -> float:
        return oriented(manifest.metric, value)

    kind = "multi-label" if manifest.multi_label else "single-label"
    lines = [f"Classification ({kind}, {manifest.num_classes} classes). Metric: {manifest.metric} "
             f"({'higher' if manifest.higher_is_better else 'lower'} is better).  Budget: {budget.describe()}"]
    lines.append(f"Best single candidate within the budget: {trials[best].candidate_id}  OOF {sign(outcome.singles[best]):.4f}")
    lines.append(f"Ensemble: {len(outcome.selection.counts)} member(s), {sum(outcome.selection.counts.values())} picks  OOF {manifest.oof_score:.4f}")
    if manifest.nested_score is not None:
        folds = ", ".join(f"{s:.4f}" for s in manifest.nested_fold_scores or [])
        lines.append(f"Nested estimate ({nested_words(manifest.nested_split)}): {manifest.nested_score:.4f}  [{folds}]")
    for member in manifest.members:
        lines.append(f"  {member.name:<26} weight {member.weight:.3f}  single OOF {member.oof_score:.4f}")
    calibration = manifest.calibration
    lines.append(f"Temperature {calibration.temperature:.3f} ({manifest.knobs['temperature']}); thresholds: {manifest.knobs['thresholds']}")
    if calibration.class_weights is not None:
        lines.append("  weights on the argmax: " + ", ".join(f"{n} x{w:.2f}" for n, w in zip(manifest.class_names, calibration.class_weights, strict=True)))
    if calibration.thresholds is not None:
        lines += [f"  {name}: p >= {t:.3f}" + (f"  OOF {s:.4f}" if manifest.class_scores else "")
                  for name, t, s in zip(manifest.class_names, calibration.thresholds, manifest.class_scores or [0.0] * manifest.num_classes, strict=True)]
    lines.append(f"Expected {manifest.budget['expected_seconds']:.0f} s for {budget.images} images (budget {budget.seconds:.0f} s)")
    lines.append("Best OOF score within seconds: " + "  ".join(f"{s:.0f}s:{v:.4f}" for s, v in manifest.budget["curve"]))
    return "\n".join(lines)


def _log_mlflow(study: Study, manifest: Manifest) -> None:
    raw = study.folder.read_config()
    tracking = raw.get("mlflow") or {}
    use_experiment(resolve_uri(tracking.get("uri")), tracking.get("experiment") or study.root.name)
    parent = parent_run_id(study)
    tags = {"study": str(study.root), "kind": "select", **({"mlflow.parentRunId": parent} if parent else {})}
    with mlflow.start_run(run_name=f"select {study.root.name}", tags=tags):
        mlflow.log_params(clean_params({**{k: v for k, v in manifest.budget.items() if k != "curve"}, "metric": manifest.metric,
                                        "members": [m.name for m in manifest.members],
                                        "weights": {m.name: round(m.weight, 4) for m in manifest.members},
                                        "temperature": manifest.calibration.temperature, "thresholds": manifest.calibration.thresholds,
                                        "nested_split": manifest.nested_split}))
        mlflow.log_metrics(numeric({"oof_score": manifest.oof_score, "nested_score": manifest.nested_score,
                                    "best_single_oof_score": manifest.best_single["oof_score"]}))
        mlflow.log_artifact(str(study.folder.ensemble_json))
