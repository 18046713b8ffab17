"""The budget planner: ``time_budget=15m`` split into a setup, a screen, finalists, a refit and a reserve.

Pure arithmetic on measured paces (``trainables/pace.py``), no Ray and no torch, so every rule here is
tested on numbers. What the setup spent (the study, Ray, the MLflow store, the timing) comes off the
top; of the rest ``A``:

- **reserve** (10 % of ``A``): selection, then export and the prediction of the test images.
- **screen** (25 % of ``A``): Optuna proposes, ASHA stops the weak; each trial trains one fold at low
  fidelity (half the image side unless that falls under ``MIN_SCREEN_SIDE`` pixels, half the epochs).
  There is a screen only where it pays: the space varies something, more screening trials fit than
  there are finalists (else every screened configuration goes on and the screen chose nothing),
  and the finalists and refit still get the space's own epochs in what the screen leaves. On a few
  CPUs and a few minutes they do not (measured in issue 12: a pruned trial's epochs end in no member),
  and the finalists get the time.
- **finalists and refit** (the rest, sized together): the best configurations, one per lane (trials
  side by side), train every fold at full scale for ``E`` epochs, validated three times so that their
  learning curves say how long to train; then each is refit on every image for at least ``E`` epochs.
  ``E`` is the most epochs for which both fit. Where that ``E`` is under the space's epochs, no refit is
  planned and the finalists take the whole share (:func:`finalists_and_refit`). The finalists' OOF is what selection and the tuned
  post-processing stand on. With fewer distinct configurations than lanes, the best one is trained again
  with the next seed (a seed ensemble). When the screen ends, the finalists are re-planned from the time
  left, at the pace and the per-trial overhead the screen measured.
- **the split**: K folds where the finalists and a refit at twice the space's epochs both fit; where they do
  not, the new study is split again as a holdout (:func:`choose_split`): each finalist trains one model
  on about 90 % of the images, validated on the rest, and no refit follows. K fold models without a
  refit, trained on (K-1)/K of the images for fewer epochs, were what lost to a plain script.
- **select** (inside the reserve): the greedy ensemble and its post-processing, tuned on the OOF.
- **refit**: each selected member on every image, for the epochs its learning curve justifies
  (:func:`refit_epochs`: up to twice ``E`` while the curve still rose), as the time left allows; a refit
  that cannot train ``E`` epochs is not expected to beat the fold models, which are exported instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SHARES = {"screen": 0.25, "reserve": 0.10}  # of the budget left after the setup; the finalists and refit share the rest
MIN_SCREEN_SIDE = 64  # a screen image's shorter side at least this many pixels (defects must stay visible)
TRIAL_OVERHEAD_S = 20.0  # a trial's start, model build, cost measurement and folder writing (until the screen measures it)
CONTENTION = 1.15  # trials side by side on one machine's CPUs each run this much slower than one alone (until measured)
VALIDATIONS = 3  # a finalist validates this often (at most once an epoch): its learning curve
KFOLD_EPOCHS = 2  # K folds (and a refit) only where the refit fits this many times the space's epochs (choose_split)
TOLERANCE = 0.002  # a score within this of the curve's best counts as the best (noise)


@dataclass(frozen=True)
class Facts:
    """What the plan is computed from: the budget, the study, the lanes and the measured paces."""

    budget_s: float
    images: int  # training images of the study (the OOF images and any TRAIN_ONLY ones)
    folds: int  # K
    lanes: int  # trials that run side by side
    space_epochs: int  # the space's train.epochs (the screen trains half of them)
    searchable: bool  # the space varies something (else: no screen)
    train_s: float  # seconds per training image of one trial at full scale (its own threads)
    eval_s: float  # seconds per validation image at full scale
    screen_train_s: float  # the same at the screen's scale
    screen_eval_s: float
    refit_train_s: float  # seconds per training image of one refit model (it runs alone, with refit_threads)
    tta_views: int = 1
    refit_threads: int = 1  # the threads a refit trains with: every CPU, unless timing found one trial's own faster
    screen_scale: float = 0.5  # times train.scale, or 1.0 where the image would be too small
    contention: float = CONTENTION  # applied to the trials' paces when lanes > 1
    trial_overhead_s: float = TRIAL_OVERHEAD_S  # seconds a trial spends besides its epochs and validations
    oof_share: float = 1.0  # the share of the images in the K folds (below 1: a holdout, the rest train in every fold)

    def fold_train_images(self) -> float:
        """Images one fold model trains on: all but its fold's share."""
        return self.images * (1 - self.oof_share / self.folds)

    def oof_images(self) -> float:
        return self.images * self.oof_share


@dataclass
class Stage:
    name: str
    seconds: float  # planned
    trials: int = 0
    epochs: int = 0
    folds: int = 0
    scale: float = 1.0
    val_every: int = 0
    note: str = ""
    spent: float | None = None  # measured, once run
    outcome: str = ""


@dataclass
class BudgetPlan:
    budget_s: float
    stages: dict[str, Stage] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    export_models: str = "folds"  # what the export should ship: folds, or refit once every member is refit

    def to_json(self) -> dict[str, Any]:
        return {"budget_s": self.budget_s, "export_models": self.export_models, "facts": self.facts, "stages": {k: asdict(v) for k, v in self.stages.items()}}


def split_text(facts: Facts) -> str:
    """``2 folds``, or ``a holdout of 89 (each model trains on 805)``."""
    if facts.oof_share < 1:
        return f"a holdout of {facts.oof_images():.0f} (each model trains on {facts.fold_train_images():.0f})"
    return f"{facts.folds} folds"


def screen_scale(shape: tuple[int, int], train_scale: float) -> float:
    """Half the trial's image side, unless the screen's shorter side would fall under MIN_SCREEN_SIDE."""
    shorter = min(shape) * train_scale
    return 0.5 if shorter * 0.5 >= MIN_SCREEN_SIDE else 1.0


def _lane_pace(facts: Facts, seconds: float) -> float:
    return seconds * (facts.contention if facts.lanes > 1 else 1.0)


def screen_shape(facts: Facts) -> tuple[int, int]:
    """A screening trial's epochs (half the space's, at least 2) and its ASHA rung (half of those)."""
    epochs = max(2, facts.space_epochs // 2)
    return epochs, max(1, epochs // 2)


def screen_compute(facts: Facts, epochs: int) -> float:
    """One screening trial's ``epochs`` on fold 0's images and its validations at the rungs, at the facts' pace."""
    _, grace = screen_shape(facts)
    train_images = facts.fold_train_images()
    val_images = facts.oof_images() / facts.folds
    return epochs * train_images * _lane_pace(facts, facts.screen_train_s) + math.ceil(epochs / grace) * val_images * _lane_pace(facts, facts.screen_eval_s)


def screen_stage(facts: Facts, seconds: float) -> Stage:
    """As many one-fold, low-fidelity trials as the lanes finish in ``seconds`` (0 trials: no screen)."""
    epochs, grace = screen_shape(facts)
    per_trial = screen_compute(facts, epochs) + facts.trial_overhead_s
    per_lane = int(seconds // per_trial) if per_trial > 0 else 0
    trials = per_lane * facts.lanes
    if not facts.searchable or trials <= max(1, facts.lanes):
        if not facts.searchable:
            why = "the space varies nothing"
        elif trials > 1:  # as many screened as finalists: every one screened goes on, so the screen chose nothing
            why = f"a screening trial takes ~{per_trial:.0f} s: {trials} fit in {seconds:.0f} s, no more than the {facts.lanes} finalists"
        else:
            why = f"a screening trial takes ~{per_trial:.0f} s: fewer than 2 fit in {seconds:.0f} s"
        return Stage("screen", 0.0, note=f"no screen: {why}")
    train_images = facts.fold_train_images()
    note = f"up to {trials} configuration(s) x {epochs} epoch(s) on fold 0 ({train_images:.0f} images), ASHA at epoch {grace}"
    return Stage("screen", seconds, trials=trials, epochs=epochs, folds=1, scale=facts.screen_scale, val_every=grace, note=note)


def validations(epochs: int) -> int:
    """How often a finalist of ``epochs`` validates at most: its learning curve's points (the last with TTA)."""
    return max(1, min(VALIDATIONS, epochs))


def validated_epochs(epochs: int, val_every: int) -> list[int]:
    """The epochs a trial of ``epochs`` validates at: every ``val_every``-th, and the last."""
    return sorted({e for e in range(val_every, epochs + 1, val_every)} | {epochs})


def finalist_seconds(facts: Facts, epochs: int) -> float:
    """A finalist's expected seconds: every fold's epochs, its validations without TTA, the last with it."""
    train = epochs * facts.folds * facts.fold_train_images() * _lane_pace(facts, facts.train_s)
    evals = (validations(epochs) - 1 + facts.tta_views) * facts.oof_images() * _lane_pace(facts, facts.eval_s)
    return train + evals + facts.trial_overhead_s


def finalist_time_limit(facts: Facts, seconds: float) -> float:
    """A finalist's ``train.time_limit`` when its stage may take ``seconds``: what is left for its epochs and the
    validations between them once its overhead and its last validation (with TTA) are set aside. The trial then
    trains as many epochs as its own measured pace fits (``trainables/clock.py``), not the count planned from the
    few-step timing, which read up to a quarter slow inside a search (issue 21)."""
    last = facts.tta_views * facts.oof_images() * _lane_pace(facts, facts.eval_s)
    return max(1.0, seconds - facts.trial_overhead_s - last)


def finalist_epochs(facts: Facts, seconds: float, most: int = 1000) -> int:
    """The most epochs a finalist (every fold, full scale) can train in ``seconds`` (0: not even one)."""
    if facts.images * facts.train_s <= 0:
        return 0
    fitting = [e for e in range(1, most + 1) if finalist_seconds(facts, e) <= seconds]
    return fitting[-1] if fitting else 0


def refit_seconds(facts: Facts, members: int, epochs: int) -> float:
    """Seconds to refit ``members`` models one after another on every image for ``epochs``."""
    return members * (epochs * facts.images * facts.refit_train_s + facts.trial_overhead_s)


def joint_epochs(facts: Facts, seconds: float, members: int, most: int = 1000) -> int:
    """The most epochs ``E`` for which the finalists (side by side) and then their refit for ``E`` fit in ``seconds``."""
    fitting = [e for e in range(1, most + 1) if finalist_seconds(facts, e) + refit_seconds(facts, members, e) <= seconds]
    return fitting[-1] if fitting else 0


def finalists_stage(facts: Facts, epochs: int) -> Stage:
    """A finalist in every lane: with fewer distinct configurations than lanes, the best again with other seeds
    (a lane left idle would leave its CPUs, and the budget's time on them, unused)."""
    trials = facts.lanes
    val_every = max(1, math.ceil(epochs / validations(epochs)))  # at most VALIDATIONS points, the last epoch one of them
    folds = f"{facts.folds} folds" if facts.oof_share >= 1 else f"a holdout ({facts.folds} fold(s) of {facts.oof_share:.0%} of the images; each model trains on {facts.fold_train_images():.0f})"
    note = f"the best {trials} configuration(s), {folds} x {epochs} epoch(s) at full scale (then as many as the clock allows), validated every {val_every}"
    return Stage("finalists", finalist_seconds(facts, epochs), trials=trials, epochs=epochs, folds=facts.folds, val_every=val_every, note=note)


def refit_stage(facts: Facts, seconds: float, members: int, epochs: int) -> Stage:
    if not epochs:
        return Stage("refit", seconds, note="no time for a refit: the fold models are exported")
    most = min(refit_time_epochs(facts, seconds, members), 2 * epochs)
    note = f"each selected member on all {facts.images} images, {epochs} to {max(most, epochs)} epoch(s) (the finalists' learning curves decide)"
    return Stage("refit", seconds, trials=members, epochs=epochs, note=note)


def refit_time_epochs(facts: Facts, seconds: float, members: int) -> int:
    """Epochs each of ``members`` models can train on every image, one after another, in ``seconds``."""
    per_epoch = members * facts.images * facts.refit_train_s
    if per_epoch <= 0:
        return 0
    return max(0, int((seconds - members * facts.trial_overhead_s) // per_epoch))


def finalists_and_refit(facts: Facts, seconds: float, members: int) -> tuple[int, bool]:
    """The finalists' epochs in ``seconds`` and whether a refit is planned after them.

    A refit is planned only where, sized together, the finalists still train the space's epochs; on a
    tighter budget the finalists take all the time and their fold models are the ensemble (a refit
    bought with half the finalists' epochs is not expected to pay)."""
    if facts.oof_share < 1:  # a holdout's models already train on most images: they take all the time
        return finalist_epochs(facts, seconds), False
    together = joint_epochs(facts, seconds, members)
    if together >= facts.space_epochs:
        return together, True
    return finalist_epochs(facts, seconds), False


def choose_split(facts: Facts, setup_s: float, share: float) -> Facts:
    """K folds where the budget holds the finalists and a refit on every image at ``KFOLD_EPOCHS`` times the
    space's epochs; otherwise a holdout: one fold of ``share`` of the images, each finalist one model trained on the rest.

    Either way the models shipped train on most images (the refit on all, a holdout's on 1 - share);
    what K folds without a refit would ship, fold models on (K-1)/K of the images for fewer epochs, lost to
    a plain script at equal time on every split measured (issue 21). So did K folds with a refit at just the
    space's epochs: a 10-minute masks search whose timing read fast planned 2 folds and a refit of 7 epochs and
    scored 0.046 under the plain script, where the holdout's models, trained 16-19 epochs, were 0.011-0.015
    under it. A split already a holdout is kept."""
    if facts.oof_share < 1 or make_plan(facts, setup_s).stages["refit"].epochs >= KFOLD_EPOCHS * facts.space_epochs:
        return facts
    return Facts(**{**asdict(facts), "folds": 1, "oof_share": share})


def make_plan(facts: Facts, setup_s: float = 0.0) -> BudgetPlan:
    """The first plan, once the setup (Ray, the store, the timing) has spent ``setup_s`` of the budget:
    the shares are of what is left. :func:`too_small` says when it cannot hold one finalist epoch."""
    left = max(0.0, facts.budget_s - setup_s)
    reserve = Stage("reserve", SHARES["reserve"] * left, note="selection, then export and the prediction of the test images (after this command)")
    work = left - reserve.seconds
    k = facts.lanes
    screen = screen_stage(facts, SHARES["screen"] * left)
    if screen.trials:
        fed, _ = finalists_and_refit(facts, work - screen.seconds, k)
        if fed < facts.space_epochs:
            screen = Stage("screen", 0.0, note=f"no screen: with it the finalists would train {fed} epoch(s), fewer than the space's {facts.space_epochs}")
    epochs, refit_planned = finalists_and_refit(facts, work - screen.seconds, k)
    finalists = finalists_stage(facts, epochs)
    refit = _planned_refit(facts, work - screen.seconds - finalists.seconds, k, epochs, refit_planned)
    select = Stage("select", 0.0, note="the greedy ensemble and its post-processing, tuned on the finalists' OOF (from the reserve)")
    setup = Stage("setup", setup_s, spent=setup_s, note="the study, Ray, the MLflow store and the timing of a few training steps", outcome="done")
    stages = {s.name: s for s in (setup, screen, finalists, select, refit, reserve)}
    return BudgetPlan(budget_s=facts.budget_s, stages=stages, facts=asdict(facts))


def _planned_refit(facts: Facts, seconds: float, members: int, epochs: int, planned: bool) -> Stage:
    if planned:
        return refit_stage(facts, seconds, members, epochs)
    if facts.oof_share < 1:
        return Stage("refit", max(0.0, seconds), note=f"no refit: the holdout's models train on {facts.fold_train_images():.0f} of the {facts.images} images already")
    together = joint_epochs(facts, seconds + finalist_seconds(facts, epochs), members)
    return Stage("refit", max(0.0, seconds), note=(
        f"no refit planned: with one the finalists would train {together} epoch(s), fewer than the space's {facts.space_epochs}; "
        "the fold models are the ensemble"))


def too_small(facts: Facts, plan: BudgetPlan) -> str | None:
    """Why the budget cannot be planned (one line naming what it needs), or None."""
    if plan.stages["finalists"].epochs >= 1:
        return None
    one_epoch = finalist_seconds(facts, 1)
    need = plan.stages["setup"].seconds + one_epoch / (1 - SHARES["reserve"])
    return (
        f"time_budget={facts.budget_s:.0f}s cannot train one epoch of {split_text(facts)} on {facts.images} images "
        f"(measured here: ~{one_epoch:.0f} s, after {plan.stages['setup'].seconds:.0f} s of setup); give at least time_budget={math.ceil(need / 60)}m, "
        "or fewer images (data.limit=) or a smaller scale (train.scale=)"
    )


def measured_overhead(facts: Facts, spent: float, epochs_done: list[int], contention: float) -> float:
    """A trial's overhead as the screen measured it: its wall time, less what its epochs and validations
    should have taken at the measured pace, per wave of lanes (never below the default)."""
    if not epochs_done:
        return facts.trial_overhead_s
    paced = Facts(**{**asdict(facts), "contention": contention, "trial_overhead_s": 0.0})
    compute = sum(screen_compute(paced, e) for e in epochs_done)
    waves = math.ceil(len(epochs_done) / facts.lanes)
    return max(TRIAL_OVERHEAD_S, (spent - compute / facts.lanes) / waves)


def replan_finalists(facts: Facts, plan: BudgetPlan, elapsed: float, contention: float | None, overhead: float | None = None) -> Facts:
    """The finalists and the refit once the screen has run: the time left less the reserve, at the
    contention (the screen trials' pace against the timing) and trial overhead the screen measured.
    Returns the facts as measured, which later stages plan with."""
    changes: dict[str, Any] = {}
    if contention is not None:
        changes["contention"] = max(1.0, contention)
    if overhead is not None:
        changes["trial_overhead_s"] = overhead
    facts = Facts(**{**asdict(facts), **changes})
    work = max(0.0, plan.budget_s - elapsed - plan.stages["reserve"].seconds)
    k = facts.lanes
    epochs, refit_planned = finalists_and_refit(facts, work, k)
    plan.stages["finalists"] = finalists_stage(facts, epochs)
    plan.stages["refit"] = _planned_refit(facts, work - plan.stages["finalists"].seconds, k, epochs, refit_planned)
    plan.facts = asdict(facts)
    return facts


def best_epoch(curve: list[tuple[int, float]], tolerance: float = TOLERANCE) -> int:
    """The first validated epoch whose score is within ``tolerance`` of the curve's best."""
    top = max(score for _, score in curve)
    return min(epoch for epoch, score in curve if score >= top - tolerance)


def refit_epochs(curves: list[list[tuple[int, float]]], trained: int, time_epochs: int) -> tuple[int, str]:
    """How many epochs a refit on every image trains, and why (0: keep the fold models).

    A curve still rising at its last validation (best at the last epoch) justifies training longer,
    up to twice the epochs trained (further is extrapolation); a curve that peaked earlier justifies
    that epoch. The refit happens only if the time left holds the justified epochs: a refit trained
    less than the fold models were is not expected to beat them."""
    curves = [c for c in curves if c]
    if not curves:
        return 0, "no learning curve was recorded: the fold models are exported"
    peaks = [best_epoch(c) for c in curves]
    justified = max(peaks)
    rising = justified >= trained
    if rising:
        curve = curves[peaks.index(justified)]
        first, last = curve[0], curve[-1]
        if len(curve) == 1:
            why = f"the finalists validated once (epoch {last[0]}), so no peak was seen"
        else:
            why = f"the finalists' OOF score still rose at their last epoch ({first[1]:.4f} at epoch {first[0]}, {last[1]:.4f} at {last[0]})"
        wanted = 2 * trained
    else:
        why = f"the finalists' OOF score peaked at epoch {justified} of {trained}"
        wanted = justified
    if time_epochs >= wanted:
        return wanted, f"{why}: refit for {wanted} epoch(s)"
    if time_epochs >= justified:
        return time_epochs, f"{why}: refit for {time_epochs} epoch(s), what the time left holds"
    return 0, f"{why}, but the time left holds {time_epochs} epoch(s) of refit: the fold models are exported"


def format_plan(plan: BudgetPlan) -> str:
    lines = [f"{'stage':<10} {'seconds':>7}  what"]
    for stage in plan.stages.values():
        lines.append(f"{stage.name:<10} {stage.seconds:>7.0f}  {stage.note}")
    return "\n".join(lines)


def format_spent(plan: BudgetPlan) -> str:
    lines = [f"{'stage':<10} {'planned':>7} {'spent':>7}  outcome"]
    total = 0.0
    for stage in plan.stages.values():
        spent = "-" if stage.spent is None else f"{stage.spent:.0f}"
        total += stage.spent or 0.0
        lines.append(f"{stage.name:<10} {stage.seconds:>7.0f} {spent:>7}  {stage.outcome}")
    lines.append(f"{'total':<10} {plan.budget_s:>7.0f} {total:>7.0f}  (the reserve's spent time is this command's own: export and predict come after it)")
    return "\n".join(lines)
