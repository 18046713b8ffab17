"""Pick the ensemble: ``python -m ensembling.select study=DIR [budget.seconds=S budget.images=N budget.device=D]``.

Caruana's ensemble selection (``ensembling.scoring.greedy``) over the study's finished trials and their
snapshots, scored on out-of-fold predictions with the study's metric after every post-processing step
tuned per class (``core.postprocess``), within the inference budget on the target device
(``ensembling.scoring.budget``). Beside the OOF score it prints the nested estimate (``ensembling.scoring.nested``) and
the curve of best score against seconds. Writes ``<study>/ensemble.json`` and records the selection as
an MLflow run under the study's search run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ensembling.cli import COUNT, FLAG, POSITIVE, TEXT, Command, Key, Typed, command

SELECT = Command(
    "python -m ensembling.select study=STUDY_DIR [key=value ...]",
    "Pick the ensemble of the study's trials that scores best out of fold within the inference budget; writes <study>/ensemble.json.",
    {
        "study": Key("the study folder a search wrote"),
        "budget.seconds": Key("seconds the ensemble may take to predict the test set on budget.device", 3600.0, POSITIVE),
        "budget.images": Key("test images it must predict in that time (Severstal's test set)", 5506, COUNT),
        "budget.device": Key("the device it must fit: kaggle-p100, kaggle-t4, h100, cpu-2core, or a speed ratio", "kaggle-p100"),
        "max_steps": Key("greedy steps at most (a member may be added more than once)", 20, COUNT),
        "greedy.patience": Key("steps without a better score before the selection stops", 3, COUNT),
        "greedy.init_n": Key("start from the best n single candidates", 1, COUNT),
        "greedy.bags": Key("bagged selection: 1 is plain forward selection", 1, COUNT),
        "greedy.bag_fraction": Key("share of the candidates each bag sees", 0.5, Typed(float, 0, above=True)),
        "greedy.max_members": Key("distinct candidates at most (0: no cap)", 0, Typed(int, 0)),
        "greedy.seed": Key("seed of the bags", 0, Typed(int, 0)),
        "nested": Key("also estimate the score of the selection itself, repeated on held-out parts", True, FLAG),
        "nested.split": Key("what the nested estimate holds out: images or folds", "images", Typed(str, choices=("images", "folds"))),
        "gate": Key("a classification study whose classifier empties the masks of images it calls clean", None, TEXT),
        "device": Key("where candidates are scored: auto, cpu or cuda", "auto"),
        "steps": Key("post-processing steps to tune, a comma list such as threshold,min_area (null: every step)", None, TEXT),
        "trials": Key("the trials to select from, a comma list of trial ids (null: every usable trial; their snapshots come with them)", None, TEXT),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (MLflow, torch: seconds)
    SELECT.answer_early(sys.argv[1:])

from collections.abc import Callable

import mlflow
import numpy as np

from core.contract import ENSEMBLE_JSON
from core.data.study import Study, open_study
from core.metrics import get_metric
from core.postprocess import GATE_BLEND_MAX, Tuned, Tuner, image_probs_from, list_steps
from core.registry import Registry
from core.store import TrialRecord, usable_trials, with_snapshots
from core.targets import check_writable_folder
from core.tracking import clean_params, numeric, parent_run_id, resolve_uri, use_experiment
from ensembling.gate_study import GateSource, gate_from_study, gate_from_trial
from ensembling.runtime.decide import skipped
from ensembling.runtime.manifest import CLASSIFICATION, SEGMENTATION, Manifest, build_manifest, write_manifest
from ensembling.scoring.blend import BlendScorer
from ensembling.scoring.budget import Budget, curve
from ensembling.scoring.gpu_step import resolve_device
from ensembling.scoring.greedy import GreedyConfig, Selection, select_with_progress
from ensembling.scoring.nested import Nested, nested_estimate, nested_words, outer_parts
from ensembling.select_classes import is_classification, run_classes


@dataclass
class Outcome:
    trials: list[TrialRecord]  # the candidates: trials and their snapshots
    selection: Selection
    tuned: Tuned
    singles: list[float]  # each candidate's tuned OOF score (pair steps)
    costs: list[float]  # each candidate's seconds on the target for the budget's images
    best_single: int  # the best candidate the budget allows
    nested: Nested | None
    curve: list[tuple[float, float]]
    gate: GateSource | None = None  # the classifier gate, when one was tuned
    share: float = 1.0  # the share of images segmented (the rest the gate judges clean in every class)


def study_metric(study: Study) -> str:
    """The study's ``metric`` (study.yaml), checked against its classes; dice_pairs when unset."""
    name = study.folder.read_config().get("metric") or "dice_pairs"
    get_metric(name).check(study.data.num_classes)
    return name


def trial_ids(text: str | None) -> list[str] | None:
    """``trials=a,b``: the trial ids to select from (None: every usable trial)."""
    if text is None:
        return None
    ids = [t.strip() for t in str(text).split(",") if t.strip()]
    if not ids:
        raise ValueError(f"trials must name trial ids separated by commas, such as trials=1aba5_00000,1aba5_00001; got {text!r}")
    return ids


def split_candidates(study: Study, only: list[str] | None = None) -> tuple[list[TrialRecord], TrialRecord | None]:
    """Segmentation candidates (trials and snapshots; of the trials ``only``, if given) and the best classification
    trial (2-D OOF), if any."""
    problems: list[str] = []
    found = with_snapshots(usable_trials(study, only), problems)  # a damaged snapshot costs its candidate, not the selection
    shape = study.truth().shape
    segmenters = [t for t in found if t.oof().shape == shape]
    classifiers = [t for t in found if t.oof().shape == shape[:2]]
    for t in found:
        if t not in segmenters and t not in classifiers:
            problems.append(f"skipped {t.candidate_id}: {t.folder.oof}: OOF of shape {t.oof().shape} fits neither {shape} nor {shape[:2]}")
    for problem in problems:
        print(problem, flush=True)
    if not segmenters:
        raise ValueError(f"{study.root}: no finished trial has OOF of shape {shape}; run a segmentation search first")
    return segmenters, max(classifiers, key=lambda t: t.score, default=None)


def choose(scorer: BlendScorer, costs: list[float], budget: float, config: GreedyConfig, gate_source: str, quiet: bool = False) -> tuple[Selection, Tuned, list[float]]:
    """The selection on the scorer's rows: singles, greedy steps, then every step tuned on the chosen blend."""
    n = len(costs)
    if not quiet:
        print(f"Scoring {n} candidates on {len(scorer.rows)} images: {scorer.path}", flush=True)
    selection, singles = select_with_progress(scorer.scores, costs, budget, config, quiet)
    tuner = scorer.tuner
    tuned = tuner.stage1(scorer.sums(selection.counts, [None])[0], gate_source)
    for step in tuner.component_steps:
        total = None
        for probs, truth, classifier in scorer.blend_chunks(selection.counts):
            stats = tuner.component_stats(probs, truth, image_probs_from(probs.max(axis=(2, 3)), classifier), tuned, step)
            part = tuner.sums(stats)
            total = part if total is None else total + part
        tuned = tuner.stage2(tuned, total, step)
    return selection, tuned, singles


def select(study: Study, budget: Budget, config: GreedyConfig, nested: bool = True, gate: str | None = None, device: str = "auto",
           steps: list[str] | None = None, nested_split: str = "images", only: list[str] | None = None) -> Outcome:
    """``steps``: the post-processing steps to tune (registry names, one threshold step among them); None: every registered step.
    ``nested_split``: which images each round of the nested estimate holds out (``ensembling.scoring.nested.outer_parts``)."""
    device = resolve_device(device)  # where greedy steps count: cuda when present (ensembling.scoring.gpu_step), else the CPU
    candidates, classifier_trial = split_candidates(study, only)
    oofs = [t.oof() for t in candidates]
    truth = study.truth()
    tuner = Tuner(study_metric(study), steps)
    source = gate_from_study(study, gate) if gate else (None if classifier_trial is None else gate_from_trial(study, classifier_trial))
    classifier = None if source is None else source.probs
    gate_source = GATE_BLEND_MAX if source is None else source.name
    full = [budget.member_seconds(t.ms_per_image, t.cost) for t in candidates]
    available = budget.for_members - (0.0 if source is None else source.seconds(budget))
    if source is not None and available <= 0:
        raise ValueError(f"the gate's classifier alone takes {source.seconds(budget):.0f} s of the {budget.for_members:.0f} s left for models; "
                         "raise budget.seconds or choose a cheaper gate")

    def scorer(rows: np.ndarray | None) -> BlendScorer:
        return BlendScorer(oofs, truth, tuner, classifier, rows, device=device)

    # With a classifier gate, images it judges clean are not segmented: members cost their share of the rest.
    # Selection first charges every image; if the tuned gate skips some, it runs again charging that share,
    # and keeps the second result only if its own tuned gate still fits the budget.
    costs, share = full, 1.0
    selection, tuned, singles = choose(scorer(None), costs, available, config, gate_source)
    if source is not None:
        share = 1 - float(skipped(source.probs, [v.get("gate", 0.0) for v in tuned.values]).mean())
        if share < 1:
            scaled = [c * share for c in full]
            again, again_tuned, again_singles = choose(scorer(None), scaled, available, config, gate_source)
            again_share = 1 - float(skipped(source.probs, [v.get("gate", 0.0) for v in again_tuned.values]).mean())
            if sum(full[i] for i in again.counts) * again_share <= available and again_tuned.score >= tuned.score:
                selection, tuned, singles, share = again, again_tuned, again_singles, again_share
            costs = [c * share for c in full]
    estimate = None
    if nested:
        parts = outer_parts(study.folds["fold"].to_numpy(), nested_split, config.seed)

        def select_on(rows: np.ndarray) -> tuple[dict[int, int], Tuned, BlendScorer]:
            sub = scorer(rows)
            chosen, sub_tuned, _ = choose(sub, costs, available, config, gate_source, quiet=True)
            return chosen.counts, sub_tuned, sub

        estimate = nested_estimate(parts, select_on, scorer, tuple(truth.shape[2:]))
    points = [(costs[i], singles[i]) for i in range(len(costs))]
    points += [(sum(costs[i] for i in counts), score) for counts, score in selection.history]
    affordable = [i for i in range(len(costs)) if costs[i] <= available]
    best = max(affordable, key=lambda i: (singles[i], -costs[i]))
    return Outcome(candidates, selection, tuned, singles, costs, best, estimate, curve(points), source, share)


def step_names(text: str | None) -> list[str] | None:
    """``steps=threshold,min_area``: those registered steps only (to measure what the others add); None: every step."""
    if text is None:
        return None
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    known = list_steps()
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"steps={text}: {', '.join(unknown) or 'no step'} is not a post-processing step; give a comma list of {', '.join(known)} (one threshold step)")
    return names


def greedy_config(args: dict[str, Any]) -> GreedyConfig:
    keys = {"max_steps": "max_steps", "greedy.patience": "patience", "greedy.init_n": "init_n", "greedy.bags": "bags",
            "greedy.bag_fraction": "bag_fraction", "greedy.max_members": "max_members", "greedy.seed": "seed"}
    return GreedyConfig(**{field: args[key] for key, field in keys.items() if key in args})


def run(args: dict[str, Any]) -> Manifest:
    """Select the study's ensemble by its kind (masks here, image labels in ``ensembling.select_classes``)."""
    check_writable_folder(Path(args["study"]), "study", ENSEMBLE_JSON)  # before the OOF is read, not after the selection
    study = open_study(args["study"])
    kind = CLASSIFICATION if is_classification(study) else SEGMENTATION  # truth (N, K): image labels
    return SELECTORS.get(kind)(study, args)


def select_masks(study: Study, args: dict[str, Any]) -> Manifest:
    """A segmentation study: members, post-processing per class, maybe a classifier gate, under the budget."""
    budget = Budget(
        seconds=args.get("budget.seconds", Budget.seconds),
        images=args.get("budget.images", Budget.images),
        device=args.get("budget.device", Budget.device),  # a preset name or a ratio: Budget checks it
    )
    outcome = select(study, budget, greedy_config(args), nested=args.get("nested", True), gate=args.get("gate"), device=args.get("device", "auto"),
                     steps=step_names(args.get("steps")), nested_split=args.get("nested.split", "images"), only=trial_ids(args.get("trials")))
    trials, selection, singles, best, tuned = outcome.trials, outcome.selection, outcome.singles, outcome.best_single, outcome.tuned
    gate_seconds = 0.0 if outcome.gate is None else outcome.gate.seconds(budget)
    expected = budget.fixed_seconds + gate_seconds + sum(outcome.costs[i] for i in selection.counts)
    budget_record = {"seconds": budget.seconds, "images": budget.images, "device": budget.device, "expected_seconds": expected,
                     "fixed_seconds": budget.fixed_seconds, "curve": outcome.curve,
                     "gate_seconds": gate_seconds, "segmented_share": outcome.share}
    estimates = {"nested_score": None if outcome.nested is None else outcome.nested.score,
                 "nested_fold_scores": None if outcome.nested is None else outcome.nested.fold_scores,
                 "nested_split": None if outcome.nested is None else args.get("nested.split", "images")}
    manifest = build_manifest(study, trials, selection, tuned, budget_record, trials[best], singles[best], estimates)
    if outcome.gate is not None:
        manifest.gate = replace(outcome.gate.section, seconds=gate_seconds, segmented_share=outcome.share)
    write_manifest(study.folder.ensemble_json, manifest)
    print(report(manifest, outcome, budget))
    print(f"Wrote {study.folder.ensemble_json}")
    _log_mlflow(study, manifest, outcome)
    print(f"Next: python -m ensembling.export study={study.root} out=DIR")
    return manifest


def select_labels(study: Study, args: dict[str, Any]) -> Manifest:
    """A classification study: classifiers and their knobs (``ensembling.select_classes``)."""
    if "gate" in args:
        raise ValueError(f"gate={args['gate']}: study {study.root} is a classification study; a gate goes with a segmentation study's selection")
    if "steps" in args:
        raise ValueError(f"steps={args['steps']}: study {study.root} is a classification study; post-processing steps go with masks")
    return run_classes(study, usable_trials(study, trial_ids(args.get("trials"))), args, greedy_config(args))


SELECTORS: Registry[Callable[[Study, dict[str, Any]], Manifest]] = Registry("ensemble kind")
SELECTORS.register(SEGMENTATION)(select_masks)
SELECTORS.register(CLASSIFICATION)(select_labels)


def report(manifest: Manifest, outcome: Outcome, budget: Budget) -> str:
    trials, singles, best = outcome.trials, outcome.singles, outcome.best_single
    lines = [f"Metric: {manifest.metric}.  Budget: {budget.describe()}"]
    overall = max(range(len(trials)), key=lambda i: singles[i])
    if overall != best:
        lines.append(f"Best single candidate: {trials[overall].candidate_id}  OOF {singles[overall]:.4f}, over the budget ({outcome.costs[overall]:.0f} s)")
    lines.append(f"Best single candidate within the budget: {trials[best].candidate_id}  OOF {singles[best]:.4f}")
    lines.append(f"Ensemble: {len(outcome.selection.counts)} member(s), {sum(outcome.selection.counts.values())} picks  OOF {manifest.oof_score:.4f}")
    if manifest.nested_score is not None:
        folds = ", ".join(f"{s:.4f}" for s in manifest.nested_fold_scores or [])
        lines.append(f"Nested estimate ({nested_words(manifest.nested_split)}): {manifest.nested_score:.4f}  [{folds}]")
    for member in manifest.members:
        lines.append(f"  {member.name:<26} weight {member.weight:.3f}  single OOF {member.oof_score:.4f}")
    lines.append(describe_postprocessing(manifest))
    if manifest.gate is not None:
        gate = manifest.gate
        lines.append(f"Gate {gate.source}: {len(gate.members)} classifier member(s), {gate.seconds or 0.0:.0f} s; "
                     f"segments {gate.segmented_share or 0.0:.1%} of images (the rest judged clean in every class)")
    lines.append(f"Expected {manifest.budget['expected_seconds']:.0f} s for {budget.images} images (budget {budget.seconds:.0f} s)")
    lines.append("Best OOF score within seconds: " + "  ".join(f"{s:.0f}s:{v:.4f}" for s, v in outcome.curve))
    return "\n".join(lines)


def describe_postprocessing(manifest: Manifest) -> str:
    """One line per class: what each step does, or that predicting nothing scored best."""
    post, class_scores = manifest.postprocessing, manifest.class_scores or []
    lines = [f"  class {class_id}: {text}  OOF {class_scores[c]:.4f}" for c, (class_id, text) in enumerate(zip(manifest.class_ids, post["described"], strict=True))]
    stages = "  ".join(f"{k} {v:.4f}" for k, v in post["stage_scores"].items())
    return f"Post-processing per class (steps {', '.join(post['steps'])}; gate from {post['gate_source']}; by stage: {stages}):\n" + "\n".join(lines)


def _log_mlflow(study: Study, manifest: Manifest, outcome: Outcome) -> None:
    raw = study.folder.read_config()
    tracking = raw.get("mlflow") or {}
    use_experiment(resolve_uri(tracking.get("uri")), tracking.get("experiment") or study.root.name)
    parent = parent_run_id(study)
    tags = {"study": str(study.root), "kind": "select", **({"mlflow.parentRunId": parent} if parent else {})}
    with mlflow.start_run(run_name=f"select {study.root.name}", tags=tags):
        members = [m.name for m in manifest.members]
        weights = {m.name: round(m.weight, 4) for m in manifest.members}
        mlflow.log_params(clean_params({**{k: v for k, v in manifest.budget.items() if k != "curve"}, "metric": manifest.metric,
                                        "members": members, "weights": weights, "postprocessing": manifest.postprocessing["per_class"],
                                        "nested_split": manifest.nested_split}))
        mlflow.log_metrics(numeric({"oof_score": manifest.oof_score, "nested_score": manifest.nested_score,
                                    "best_single_oof_score": manifest.best_single["oof_score"],
                                    **{f"oof_class{c}": s for c, s in zip(manifest.class_ids, manifest.class_scores or [], strict=True)}}))
        mlflow.log_table({"class": manifest.class_ids, "oof_score": manifest.class_scores, "postprocessing": manifest.postprocessing["described"]}, "per_class.json")
        mlflow.log_figure(curve_figure(outcome.curve, manifest), "budget_curve.png")
        mlflow.log_artifact(str(study.folder.ensemble_json))


def curve_figure(points: list[tuple[float, float]], manifest: Manifest):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    xs, ys = zip(*points, strict=True)
    axes.step(xs, ys, where="post", marker="o")
    budget = manifest.budget
    axes.axvline(budget["seconds"] - budget["fixed_seconds"], color="grey", linestyle="--", label="budget for members")
    axes.set_xlabel(f"seconds for {budget['images']} images on {budget['device']} (models only)")
    axes.set_ylabel(f"best OOF {manifest.metric}")
    axes.legend()
    figure.tight_layout()
    return figure


def main(argv: list[str]) -> int:
    return command(lambda: run(SELECT.parse(argv)) and None)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
