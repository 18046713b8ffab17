"""A search given ``time_budget=``: measure, plan, screen, train the finalists, select, refit.

The arithmetic is ``search/planner.py``; this module runs it. Before any trial, fold 0 of the space's
configuration is timed here for a few steps (``trainables/pace.py``) at the finalists', the screen's
and the refit's scale and threads. The plan is printed and written to ``<study>/plan.json``; the
screen runs (Optuna + ASHA, gated by its share of the time), the finalists are re-planned from the time
left at the screen's measured pace and run (every fold, their learning curves recorded), then, after
Ray has stopped, ``ensembling.select`` picks the ensemble and ``ensembling.refit`` trains each member on
every image for the epochs the curves justify, if the time left holds them. The table of planned
against spent seconds is printed at the end and kept in ``plan.json`` (its ``export_models`` says
whether to export the refit models or the fold models).

A resumed search reads the plan it began with from ``plan.json`` instead of measuring again; its clock
starts again with the command.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import ray

from core.atomic import write_json
from core.config import TrainConfig
from core.contract import StudyFolder, read_json_file
from core.store import read_trials
from core.tta import views
from search.cluster import place, run_stage
from search.config import Plan, PromoteConfig, SchedulerConfig, ScreenConfig
from search.planner import (
    KFOLD_EPOCHS,
    BudgetPlan,
    Facts,
    Stage,
    choose_split,
    finalist_time_limit,
    format_plan,
    format_spent,
    make_plan,
    measured_overhead,
    refit_epochs,
    refit_time_epochs,
    replan_finalists,
    screen_scale,
    split_text,
    too_small,
)
from search.progress import WhereTable
from search.session import Interrupts
from search.spaces import domain_values
from search.stages import StageRun, promoted, screen_plan


@dataclasses.dataclass
class Budgeted:
    """What the Ray half of a budgeted search leaves for the half after it (select, refit)."""

    plan: BudgetPlan
    facts: Facts
    started: float
    threads: int  # CPUs of one trial
    curves: dict[str, list[tuple[int, float]]]  # trial id -> (epoch, OOF score) at each validation
    screened: list[str] = dataclasses.field(default_factory=list)  # the screen's trial ids (low fidelity: not candidates)


def lanes_and_threads(plan: Plan) -> tuple[int, int, int]:
    """(trials side by side, CPUs of each, CPUs of the cluster): the space's ``trials`` bounded by the
    CPUs (or the GPUs, one trial per ``ray.gpus_per_trial``)."""
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    gpus = resources.get("GPU", 0)
    per_gpu = plan.config.ray.gpus_per_trial
    if gpus > 0 and per_gpu != 0:
        lanes = max(1, int(gpus // (per_gpu if per_gpu > 0 else 1)))
    else:
        lanes = max(1, min(plan.config.trials, cpus))
    threads = int(plan.config.ray.cpus_per_trial) or max(1, cpus // lanes)
    return lanes, threads, cpus


def _trial_value(plan: Plan, key: str, default: Any) -> Any:
    return plan.fixed.get(key, default)


def measure_facts(plan: Plan, study_dir: Path, budget: float, lanes: int, threads: int, all_threads: int) -> Facts:
    """Time fold 0 of the space's configuration (its searched keys at their first values) here."""
    from core.data.study import open_study
    from trainables.pace import measure_pace

    config = {**{k: domain_values(v)[0] for k, v in plan.search.items()}, **plan.fixed}
    study = open_study(study_dir)
    scale = float(_trial_value(plan, "train.scale", TrainConfig.scale))
    low = screen_scale(study.data.shape, scale)
    print(f"time_budget: timing a few training steps of {config.get('model.arch', 'the model')}/{config.get('model.encoder', '')} here to plan {budget:.0f} s ...", flush=True)
    # Timed twice, the faster kept: the first timing runs while Ray's processes are still starting, and read 71 ms per
    # image in a search where the same steps take 56-59 ms on a quiet machine and the trials ran at 57 (issue 21).
    full = min(measure_pace(config, study_dir, scale, threads), measure_pace(config, study_dir, scale, threads), key=lambda p: p.train_s)
    screen = measure_pace(config, study_dir, scale * low, threads) if plan.search and low < 1 else full
    alone = measure_pace(config, study_dir, scale, all_threads) if all_threads != threads else full
    if alone.train_s >= full.train_s:  # more threads were no faster (a loaded machine): refit as a trial trains
        alone = full
    return Facts(
        budget_s=budget,
        images=study.training_images,
        folds=study.n_folds,
        oof_share=round(len(study.image_ids) / study.training_images, 4),
        lanes=lanes,
        space_epochs=int(_trial_value(plan, "train.epochs", TrainConfig.epochs)),
        searchable=bool(plan.search),
        train_s=full.train_s,
        eval_s=full.eval_s,
        screen_train_s=screen.train_s,
        screen_eval_s=screen.eval_s,
        refit_train_s=alone.train_s,
        refit_threads=alone.threads,
        tta_views=len(views(str(_trial_value(plan, "tta", "none")))),
        screen_scale=low,
    )


def _split_for(facts: Facts, study_dir: Path, setup_s: float) -> Facts:
    """The planner's split (K folds, or a holdout where K folds and a long enough refit do not fit), the new study split
    again when it is a holdout; a holdout the data cannot hold (too few images of a class) keeps K folds."""
    from core.data.folds import holdout_share
    from core.data.study import open_study, resplit_study

    chosen = choose_split(facts, setup_s, holdout_share(facts.images))
    if chosen.oof_share >= 1:
        return facts
    try:
        study = resplit_study(open_study(study_dir), chosen.folds, chosen.oof_share)
    except ValueError as error:
        print(f"time_budget: {facts.folds} folds kept, not split again as a holdout: {error}", flush=True)
        return facts
    held = len(study.image_ids)
    print(f"time_budget: {facts.folds} folds and a refit of {KFOLD_EPOCHS * facts.space_epochs} epochs (twice the space's) do not fit "
          f"{facts.budget_s:.0f} s, so the study is split as a holdout: "
          f"{held} of {study.training_images} images validated, each model trained on the other {study.training_images - held} "
          "(give oof_share=1 to keep K folds)", flush=True)
    return Facts(**{**dataclasses.asdict(chosen), "oof_share": round(held / study.training_images, 4)})


def _stage_plan(plan: Plan, threads: int, fixed: dict[str, Any], **config: Any) -> Plan:
    """A copy of the search's plan for one stage: its run settings and fixed trial keys replaced."""
    cfg = copy.deepcopy(plan.config)
    for key, value in config.items():
        setattr(cfg, key, value)
    cfg.ray.cpus_per_trial = float(threads)
    return dataclasses.replace(plan, config=cfg, fixed={**plan.fixed, **fixed})


def screen_run(plan: Plan, stage: Stage, threads: int) -> StageRun:
    folds = [0]
    staged = _stage_plan(
        plan, threads, {"train.val_every": stage.val_every},
        stage="screen", trials=stage.trials, time_budget=stage.seconds,
        screen=ScreenConfig(folds=folds, scale=stage.scale, epochs=stage.epochs),
        scheduler=SchedulerConfig(grace_period=stage.val_every, reduction_factor=2),
    )
    return StageRun("screen", screen_plan(staged))


def finalist_points(plan: Plan, trials: list[Any], k: int) -> list[dict[str, Any]]:
    """The best ``k`` screened configurations; fewer distinct ones than ``k``: the best again with the next seeds."""
    points = promoted(dataclasses.replace(plan, config=dataclasses.replace(plan.config, promote=PromoteConfig(k=k))), trials) if plan.search else []
    base = points[0] if points else {}
    seed = plan.config.seed
    while len(points) < k:
        points.append({**base, "seed": seed + len(points)})
    return points


def finalists_run(plan: Plan, stage: Stage, threads: int, points: list[dict[str, Any]], why: str, time_limit: float) -> StageRun:
    """The finalists: the planned epochs as each trial's plan, ``time_limit`` as its clock (``train.time_limit``)."""
    fixed = {"train.epochs": max(1, stage.epochs), "train.val_every": stage.val_every, "train.time_limit": round(time_limit, 1)}
    staged = _stage_plan(plan, threads, fixed, stage="full", time_budget=0)
    return StageRun("full", staged, points=points, from_screen=True, why=why)


def finalists_seconds(budget_plan: BudgetPlan, elapsed: float) -> float:
    """The seconds the finalists may take: their planned share where a refit follows them, else all that is
    left before the reserve (a screen that ended early leaves them more)."""
    stages = budget_plan.stages
    if stages["refit"].epochs:
        return stages["finalists"].seconds
    return max(stages["finalists"].seconds, budget_plan.budget_s - elapsed - stages["reserve"].seconds)


def epochs_trained(grid: Any) -> int | None:
    """The most epochs a finalist trained (its clock decides them), from Tune's last result rows."""
    done = [int((r.metrics or {}).get("epoch") or 0) for r in grid or []]
    return max(done) if any(done) else None


def _contention(grid: Any, calibrated_train_s: float) -> float | None:
    """How much slower the screen's trials trained side by side than the calibration alone (None: no report)."""
    measured = []
    for result in grid or []:
        ips = (result.metrics or {}).get("images_per_second")
        if ips:
            measured.append(1.0 / float(ips))
    if not measured or calibrated_train_s <= 0:
        return None
    return sum(measured) / len(measured) / calibrated_train_s


def trial_ids_of(grid: Any) -> list[str]:
    """The trial ids of a stage's Tune results."""
    ids = [(r.metrics or {}).get("trial_id") or (r.config or {}).get("trial_id") for r in grid or []]
    return [str(t) for t in ids if t]


def selection_words(study_dir: Path, screened: list[str]) -> list[str]:
    """``ensembling.select``'s words: the study, and where the screen left complete trials (on a holdout its one
    fold is the whole split), ``trials=`` every usable trial but those. A screening trial trained at half the
    side for a few epochs; on a holdout of ~90 images the greedy blend took one in beside a finalist for a
    gain the test images did not show (issue 21), where on K folds it could not (incomplete)."""
    from core.data.study import open_study
    from core.store import scan_trials, usable_records

    words = [f"study={study_dir}"]
    if not screened:
        return words
    study = open_study(study_dir)
    usable = [t.trial_id for t in usable_records(scan_trials(study.root), study)]
    kept = [t for t in usable if t not in set(screened)]
    if kept and len(kept) < len(usable):
        print(f"time_budget: selecting from {len(kept)} trial(s), not the screen's {len(usable) - len(kept)} low-fidelity one(s)", flush=True)
        words.append(f"trials={','.join(kept)}")
    return words


def curves_of(grid: Any) -> dict[str, list[tuple[int, float]]]:
    """Each trial's validated (epoch, score) points, from Tune's result rows."""
    out: dict[str, list[tuple[int, float]]] = {}
    for result in grid or []:
        frame = result.metrics_dataframe
        if frame is None or "score" not in frame or "epoch" not in frame:
            continue
        rows = frame[["epoch", "score"]].dropna()
        trial_id = (result.metrics or {}).get("trial_id") or (result.config or {}).get("trial_id")
        if trial_id is None and "trial_id" in frame:
            trial_id = frame["trial_id"].dropna().iloc[-1]
        out[str(trial_id)] = [(int(e), float(s)) for e, s in zip(rows["epoch"], rows["score"], strict=True)]
    return out


def _read_plan(study_dir: Path) -> BudgetPlan | None:
    path = StudyFolder(study_dir).plan_json
    if not path.is_file():
        return None
    raw = read_json_file(path)
    stages = {name: Stage(**fields) for name, fields in raw["stages"].items()}
    return BudgetPlan(budget_s=float(raw["budget_s"]), stages=stages, facts=raw["facts"], export_models=raw.get("export_models", "folds"))


def write_plan(study_dir: Path, plan: BudgetPlan) -> None:
    write_json(StudyFolder(study_dir).plan_json, plan.to_json())


def run_budgeted(plan: Plan, study_dir: Path, tags: dict[str, str], where: WhereTable, resuming: bool, interrupts: Interrupts, started: float) -> tuple[Budgeted, list[Any]]:
    """The Ray half: measure (or read the plan begun before), print it, run the screen and the finalists."""
    budget = float(plan.config.time_budget)
    lanes, threads, all_threads = lanes_and_threads(plan)
    budget_plan = _read_plan(study_dir) if resuming else None
    if budget_plan is not None:
        facts = Facts(**{k: v for k, v in budget_plan.facts.items() if k in {f.name for f in dataclasses.fields(Facts)}})
        print(f"time_budget: going on with the plan this study began with ({StudyFolder(study_dir).plan_json})", flush=True)
    else:
        facts = measure_facts(plan, study_dir, budget, lanes, threads, all_threads)
        if plan.config.oof_share is None:
            facts = _split_for(facts, study_dir, time.time() - started)
        budget_plan = make_plan(facts, setup_s=time.time() - started)
        problem = too_small(facts, budget_plan)
        if problem:
            raise ValueError(problem)
    print(
        f"\nPlan for time_budget={budget:.0f}s: {facts.images} images, {split_text(facts)}, {lanes} trial(s) side by side "
        f"({threads} CPU(s) each); measured here {1000 * facts.train_s:.1f} ms per training image, {1000 * facts.eval_s:.1f} ms per validation image\n"
        f"{format_plan(budget_plan)}\n",
        flush=True,
    )
    write_plan(study_dir, budget_plan)
    grids = []
    screened: list[str] = []
    screen = budget_plan.stages["screen"]
    contention, overhead = None, None
    if screen.trials and not interrupts.received:
        began = time.time()
        grid = run_stage(place(screen_run(plan, screen, threads)), plan, study_dir, tags, where, resuming, interrupts)
        screen.spent = time.time() - began
        grids.append(grid)
        contention = _contention(grid, facts.screen_train_s)
        epochs_done = [int((r.metrics or {}).get("epoch") or 0) for r in grid or []]
        overhead = measured_overhead(facts, screen.spent, epochs_done, contention or facts.contention)
        screened = trial_ids_of(grid)
        ended = [t for t in read_trials(study_dir) if t.trial_id in screened]  # metrics.json: not stopped by ASHA
        screen.outcome = f"{len(grid or [])} configuration(s) screened ({sum(epochs_done)} epochs), {len(ended)} trained to the end"
    if not screen.trials:
        screen.outcome = screen.note
    finalists = budget_plan.stages["finalists"]
    curves: dict[str, list[tuple[int, float]]] = {}
    if not interrupts.received:
        if screen.trials:
            facts = replan_finalists(facts, budget_plan, time.time() - started, contention, overhead)
            finalists = budget_plan.stages["finalists"]
            print(
                f"time_budget: the screen measured trials {facts.contention:.2f}x slower side by side than timed alone and "
                f"{facts.trial_overhead_s:.0f} s of overhead per trial; re-planned from the time left: {finalists.note}",
                flush=True,
            )
        write_plan(study_dir, budget_plan)
        points = finalist_points(plan, read_trials(study_dir), finalists.trials)
        if screen.trials:
            why = f"the best {len(points)} screened configuration(s) for {finalists.epochs} epoch(s): {points}"
        elif plan.search:
            why = f"{len(points)} configuration(s) sampled from the space (no screen), seeds {[p['seed'] for p in points]}, for {finalists.epochs} epoch(s)"
        else:
            why = f"the space's configuration with seeds {[p['seed'] for p in points]} (a seed ensemble), for {finalists.epochs} epoch(s)"
        began = time.time()
        limit = finalist_time_limit(facts, finalists_seconds(budget_plan, began - started))
        print(f"time_budget: each finalist's epochs end within {limit:.0f} s (train.time_limit), as many as its own pace fits", flush=True)
        grid = run_stage(place(finalists_run(plan, finalists, threads, points, why, limit)), plan, study_dir, tags, where, resuming, interrupts)
        finalists.spent = time.time() - began
        grids.append(grid)
        curves = curves_of(grid)
        trained = epochs_trained(grid) or max(1, finalists.epochs)
        finalists.outcome = f"{len(grid or [])} finalist(s) x {split_text(facts)} x {trained} epoch(s) ({max(1, finalists.epochs)} planned; the clock decided)"
    write_plan(study_dir, budget_plan)
    return Budgeted(budget_plan, facts, started, threads, curves, screened), grids


def finish_budgeted(plan: Plan, study_dir: Path, done: Budgeted) -> BudgetPlan:
    """The half after Ray: select, then refit for the epochs the curves justify if the time left holds them."""
    from ensembling.refit import refit
    from ensembling.runtime.manifest import read_manifest
    from ensembling.select import SELECT
    from ensembling.select import run as select

    budget_plan, facts = done.plan, done.facts
    stage = budget_plan.stages["select"]
    began = time.time()
    select(SELECT.parse(selection_words(study_dir, done.screened)))
    stage.spent = time.time() - began
    members = sorted({m.trial_id for m in read_manifest(StudyFolder(study_dir).ensemble_json).members})
    stage.outcome = f"{len(members)} member(s): {', '.join(members)}"
    refit_stage = budget_plan.stages["refit"]
    reserve_left = max(0.0, budget_plan.stages["reserve"].seconds - stage.spent)
    seconds = max(0.0, budget_plan.budget_s - (time.time() - done.started) - reserve_left)
    time_epochs = refit_time_epochs(facts, seconds, len(members))
    curves = [done.curves[m] for m in members if m in done.curves] or list(done.curves.values())
    trained = max([e for curve in curves for e, _ in curve] or [max(1, budget_plan.stages["finalists"].epochs)])
    if facts.oof_share < 1:
        epochs, why = 0, budget_plan.stages["refit"].note or "no refit: the holdout's models are exported"
    else:
        epochs, why = refit_epochs(curves, trained, time_epochs)
    print(f"time_budget: {why}", flush=True)
    refit_stage.seconds, refit_stage.epochs = seconds, epochs
    if epochs:
        began = time.time()
        address = plan.config.ray.address
        refit(study_dir, address, done.threads if address else facts.refit_threads, epochs=epochs)
        refit_stage.spent = time.time() - began
        budget_plan.export_models = "refit"
    refit_stage.outcome = why
    write_plan(study_dir, budget_plan)
    print(f"\nHow the time went (seconds, this command):\n{format_spent(budget_plan)}", flush=True)
    return budget_plan

