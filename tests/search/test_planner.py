"""The budget planner's arithmetic (search/planner.py) on numbers whose answers are worked out by hand."""

from __future__ import annotations

import dataclasses

import pytest

from search.config import read_plan
from search.planner import (
    SHARES,
    TRIAL_OVERHEAD_S,
    Facts,
    best_epoch,
    choose_split,
    finalist_epochs,
    finalist_seconds,
    finalists_and_refit,
    finalists_stage,
    format_plan,
    format_spent,
    joint_epochs,
    make_plan,
    measured_overhead,
    refit_epochs,
    replan_finalists,
    screen_compute,
    screen_scale,
    screen_stage,
    too_small,
    validated_epochs,
)

# 100 images, 2 folds, one lane: a finalist epoch trains 100 images at 0.1 s = 10 s; a validation pass is 100 x 0.02 = 2 s
FACTS = Facts(
    budget_s=1000.0, images=100, folds=2, lanes=1, space_epochs=6, searchable=True,
    train_s=0.1, eval_s=0.02, screen_train_s=0.025, screen_eval_s=0.005, refit_train_s=0.05, tta_views=2,
)


def test_a_finalist_costs_its_epochs_its_validations_and_its_tta_pass() -> None:
    # 5 epochs: 3 validations, the last with 2 views: 5 x 10 + (3 - 1 + 2) x 2 + overhead
    assert finalist_seconds(FACTS, 5) == pytest.approx(50 + 8 + TRIAL_OVERHEAD_S)
    # 1 epoch validates once, with TTA: 10 + 2 x 2 + overhead
    assert finalist_seconds(FACTS, 1) == pytest.approx(10 + 4 + TRIAL_OVERHEAD_S)
    assert finalist_epochs(FACTS, 50 + 8 + TRIAL_OVERHEAD_S) == 5
    assert finalist_epochs(FACTS, 50 + 8 + TRIAL_OVERHEAD_S - 0.1) == 4
    assert finalist_epochs(FACTS, 5.0) == 0


def test_a_finalist_validates_at_most_three_times_the_last_epoch_among_them() -> None:
    for epochs in range(1, 30):
        points = validated_epochs(epochs, finalists_stage(FACTS, epochs).val_every)
        assert len(points) <= min(3, epochs) and points[-1] == epochs, (epochs, points)
    assert validated_epochs(7, 3) == [3, 6, 7]


def test_side_by_side_lanes_are_planned_slower_than_one_trial_alone() -> None:
    two = dataclasses.replace(FACTS, lanes=2, contention=1.5)
    assert finalist_seconds(two, 4) - TRIAL_OVERHEAD_S == pytest.approx(1.5 * (finalist_seconds(FACTS, 4) - TRIAL_OVERHEAD_S))


def test_the_plan_splits_the_budget_and_sizes_each_stage() -> None:
    plan = make_plan(FACTS)
    stages = plan.stages
    assert list(stages) == ["setup", "screen", "finalists", "select", "refit", "reserve"]
    assert sum(s.seconds for s in stages.values()) == pytest.approx(FACTS.budget_s)
    assert stages["reserve"].seconds == pytest.approx(100.0)
    # screen: 3 epochs (half of 6) of 50 images at 0.025 s, validated at epochs 1, 2, 3 (rung 1) on 50 images at 0.005 s, + overhead
    per_trial = 3 * 50 * 0.025 + 3 * 50 * 0.005 + TRIAL_OVERHEAD_S
    assert stages["screen"].seconds == 250 and stages["screen"].trials == int(250 // per_trial) and stages["screen"].epochs == 3
    assert stages["screen"].val_every == 1 and stages["screen"].folds == 1
    # finalists + refit share 650 s: a finalist epoch 10 s, its validations and TTA 8 s; a refit epoch 5 s; two overheads
    assert stages["finalists"].epochs == (650 - 8 - 2 * TRIAL_OVERHEAD_S) // 15
    assert stages["finalists"].trials == 1 and stages["finalists"].folds == 2
    assert stages["refit"].epochs == stages["finalists"].epochs  # planned to refit at least as long as the finalists trained
    text = format_plan(plan)
    assert "screen" in text and "finalists" in text and "refit" in text
    # what the setup spent comes off the top: the shares are of the rest
    later = make_plan(FACTS, setup_s=200.0)
    assert later.stages["setup"].spent == 200.0 and later.stages["reserve"].seconds == pytest.approx(SHARES["reserve"] * 800)
    assert sum(s.seconds for s in later.stages.values()) == pytest.approx(FACTS.budget_s)


def test_a_space_that_varies_nothing_has_no_screen_and_its_finalists_get_the_time() -> None:
    plan = make_plan(dataclasses.replace(FACTS, searchable=False))
    assert plan.stages["screen"].trials == 0 and plan.stages["screen"].seconds == 0
    assert "varies nothing" in plan.stages["screen"].note
    assert plan.stages["finalists"].epochs == joint_epochs(FACTS, 900, 1) == (900 - 8 - 2 * TRIAL_OVERHEAD_S) // 15


def test_a_screen_that_cannot_compare_two_configurations_is_skipped() -> None:
    slow = dataclasses.replace(FACTS, screen_train_s=2.0)  # a screening trial: 300 s, more than the 250 s share
    assert make_plan(slow).stages["screen"].trials == 0
    assert "fewer than 2 fit" in make_plan(slow).stages["screen"].note


def test_no_screen_where_it_would_leave_the_finalists_fewer_epochs_than_the_space_asks() -> None:
    hungry = dataclasses.replace(FACTS, space_epochs=70)  # with a screen the finalists alone get 62 epochs
    plan = make_plan(hungry)
    assert plan.stages["screen"].trials == 0 and "fewer than the space's 70" in plan.stages["screen"].note
    # without it, finalists and refit together would get 56 < 70: no refit, the finalists take the time
    assert plan.stages["finalists"].epochs == finalist_epochs(hungry, 900) == (900 - 8 - TRIAL_OVERHEAD_S) // 10
    assert plan.stages["refit"].epochs == 0 and "no refit planned" in plan.stages["refit"].note


def test_a_refit_is_planned_only_where_the_finalists_still_get_the_space_epochs() -> None:
    assert finalists_and_refit(FACTS, 900, 1) == (joint_epochs(FACTS, 900, 1), True)
    assert finalists_and_refit(dataclasses.replace(FACTS, space_epochs=57), 900, 1) == (finalist_epochs(FACTS, 900), False)
    assert finalists_and_refit(FACTS, 5, 1) == (0, False)


def test_a_budget_too_small_for_one_finalist_epoch_is_refused_with_what_it_needs() -> None:
    tiny = dataclasses.replace(FACTS, budget_s=30.0)  # 27 s of work; one finalist epoch is 34 s
    message = too_small(tiny, make_plan(tiny))
    assert message is not None and "time_budget=30s cannot train one epoch of 2 folds on 100 images" in message
    assert "give at least time_budget=1m" in message
    assert too_small(FACTS, make_plan(FACTS)) is None


def test_the_finalists_are_replanned_from_the_time_left_at_the_measured_pace() -> None:
    plan = make_plan(FACTS)
    facts = replan_finalists(FACTS, plan, elapsed=300.0, contention=None)
    assert plan.stages["finalists"].epochs == joint_epochs(FACTS, 1000 - 300 - 100, 1) and facts == FACTS
    two = dataclasses.replace(FACTS, lanes=2)
    slower = replan_finalists(two, plan, elapsed=300.0, contention=2.0, overhead=60.0)
    assert slower.contention == 2.0 and slower.trial_overhead_s == 60.0 and plan.facts["contention"] == 2.0
    assert plan.stages["finalists"].trials == 2 and plan.stages["finalists"].epochs == joint_epochs(slower, 600, 2)
    replan_finalists(FACTS, plan, elapsed=990.0, contention=None)
    assert plan.stages["finalists"].epochs == 0


def test_every_lane_gets_a_finalist_however_few_configurations_the_screen_left() -> None:
    # measured in issue 21: ASHA stopped one of two screened configurations and one finalist ran on two lanes,
    # leaving a CPU idle and 165 s of a 600 s budget unspent; the finalists fill the lanes (other seeds of the best)
    two = dataclasses.replace(FACTS, lanes=2)
    plan = make_plan(two)
    replan_finalists(two, plan, elapsed=300.0, contention=None)
    assert plan.stages["finalists"].trials == 2 and "the best 2 configuration(s)" in plan.stages["finalists"].note


def test_the_screen_measures_a_trial_overhead_from_its_wall_time() -> None:
    # two trials of 3 epochs, one lane: 9 s of compute together (4.5 s each); 60 s spent in two waves: 25.5 s each
    assert measured_overhead(FACTS, 60.0, [3, 3], contention=1.0) == pytest.approx((60 - 2 * screen_compute(FACTS, 3)) / 2)
    assert measured_overhead(FACTS, 1.0, [3, 3], contention=1.0) == TRIAL_OVERHEAD_S  # never below the default


def test_screen_scale_halves_the_side_unless_the_image_gets_too_small() -> None:
    assert screen_scale((256, 1600), 0.5) == 0.5  # Severstal at 128 rows screens at 64
    assert screen_scale((200, 200), 0.5) == 1.0  # NEU at 100 would screen at 50: too small
    assert screen_scale((200, 200), 1.0) == 0.5


def test_a_rising_curve_justifies_twice_the_epochs_if_the_time_holds_them() -> None:
    rising = [(2, 0.70), (4, 0.78), (6, 0.81)]
    assert best_epoch(rising) == 6
    assert refit_epochs([rising], trained=6, time_epochs=20)[0] == 12
    epochs, why = refit_epochs([rising], trained=6, time_epochs=8)
    assert epochs == 8 and "still rose" in why and "the time left holds" in why
    epochs, why = refit_epochs([rising], trained=6, time_epochs=5)
    assert epochs == 0 and "fold models are exported" in why


def test_a_curve_that_peaked_early_justifies_its_peak() -> None:
    peaked = [(2, 0.80), (4, 0.85), (6, 0.8495)]  # within the tolerance of the best at 4: the first such epoch counts
    assert best_epoch(peaked) == 4
    epochs, why = refit_epochs([peaked], trained=6, time_epochs=20)
    assert epochs == 4 and "peaked at epoch 4 of 6" in why
    # two members: the later peak decides
    assert refit_epochs([peaked, [(2, 0.7), (4, 0.72), (6, 0.75)]], trained=6, time_epochs=20)[0] == 12
    assert refit_epochs([], trained=6, time_epochs=20)[0] == 0


def test_the_spent_table_lists_planned_and_spent_seconds() -> None:
    plan = make_plan(FACTS)
    plan.stages["screen"].spent, plan.stages["screen"].outcome = 240.0, "4 configurations"
    text = format_spent(plan)
    assert "240" in text and "4 configurations" in text and "total" in text
    assert plan.to_json()["stages"]["screen"]["spent"] == 240.0


def test_finalists_without_enough_configurations_are_the_best_again_with_other_seeds() -> None:
    from search.budget_run import finalist_points

    plan = read_plan(["space=quick", "train.lr=0.001", "train.loss=bce_dice", "seed=7"])  # nothing left to search
    assert finalist_points(plan, [], 3) == [{"seed": 7}, {"seed": 8}, {"seed": 9}]


def test_a_holdout_finalist_trains_one_model_on_the_images_it_does_not_validate() -> None:
    # folds=1 of 20 % of 100 images: one model trains on 80 images (8 s an epoch at 0.1 s) and validates 20 (0.4 s a pass)
    holdout = dataclasses.replace(FACTS, folds=1, oof_share=0.2)
    assert holdout.fold_train_images() == pytest.approx(80) and holdout.oof_images() == pytest.approx(20)
    assert finalist_seconds(holdout, 5) == pytest.approx(5 * 8 + (3 - 1 + 2) * 0.4 + TRIAL_OVERHEAD_S)
    # its screening trial is the same fold: 3 epochs of 80 images at 0.025 s, validated 3 times on 20 at 0.005 s
    assert screen_compute(holdout, 3) == pytest.approx(3 * 80 * 0.025 + 3 * 20 * 0.005)
    # K folds with 20 % of the images in them: each of 2 fold models validates 10 and trains on 90
    two = dataclasses.replace(FACTS, oof_share=0.2)
    assert two.fold_train_images() == pytest.approx(90) and finalist_seconds(two, 1) == pytest.approx(2 * 9 + 2 * 0.4 + TRIAL_OVERHEAD_S)
    plan = make_plan(holdout)
    assert plan.stages["refit"].epochs == 0 and "holdout's models train on 80 of the 100 images" in plan.stages["refit"].note
    assert "a holdout (1 fold(s) of 20% of the images; each model trains on 80)" in plan.stages["finalists"].note


def test_the_split_stays_k_folds_where_a_refit_fits_and_becomes_a_holdout_where_it_does_not() -> None:
    assert make_plan(FACTS).stages["refit"].epochs >= FACTS.space_epochs
    assert choose_split(FACTS, 0.0, 0.1) == FACTS  # 1000 s hold 2 folds and a refit of 40 epochs, over twice the space's 6
    tight = dataclasses.replace(FACTS, budget_s=150.0)  # 135 s of work (no screen): 2 folds and a refit fit 5 epochs (15 s each + 48 s)
    assert make_plan(tight).stages["refit"].epochs == 0
    chosen = choose_split(tight, 0.0, 0.1)
    assert (chosen.folds, chosen.oof_share) == (1, 0.1) and {**dataclasses.asdict(chosen), "folds": 2, "oof_share": 1.0} == dataclasses.asdict(tight)
    # the holdout's model trains 12 epochs of 90 images (9 s each + 0.8 + 20 s) where 2 fold models trained 10 of 50
    assert (make_plan(chosen).stages["finalists"].epochs, make_plan(tight).stages["finalists"].epochs) == (12, 10)
    # a split that is a holdout already (the user's oof_share) is kept, however tight
    assert choose_split(chosen, 0.0, 0.3) == chosen
    # the setup's seconds count: what fits in 1000 s does not once 880 s went to the setup (108 s of work: 4 epochs)
    assert choose_split(FACTS, 880.0, 0.1).oof_share == 0.1
    # a refit at the space's 6 epochs is not enough: K folds need room for twice them (12: 360 s here, not 340 s)
    assert make_plan(dataclasses.replace(FACTS, budget_s=340.0)).stages["refit"].epochs == 11
    assert choose_split(dataclasses.replace(FACTS, budget_s=340.0), 0.0, 0.1).oof_share == 0.1
    assert choose_split(dataclasses.replace(FACTS, budget_s=360.0), 0.0, 0.1).oof_share == 1.0


def test_no_screen_where_no_more_configurations_fit_than_there_are_finalists() -> None:
    # one screening trial: 3 epochs x 50 images x 0.025 s + 3 validations x 50 x 0.005 s + 20 s = 24.5 s
    two_lanes = dataclasses.replace(FACTS, lanes=2, contention=1.0)
    assert screen_stage(two_lanes, 50.0).trials == 4  # 2 a lane: more than the 2 finalists, so the screen chooses
    none = screen_stage(two_lanes, 30.0)  # 1 a lane: both screened would go on
    assert none.trials == 0 and "2 fit in 30 s, no more than the 2 finalists" in none.note
    assert "fewer than 2 fit" in screen_stage(FACTS, 20.0).note


def test_a_finalists_clock_is_its_stage_less_its_overhead_and_its_last_validation() -> None:
    from search.planner import finalist_time_limit

    # 100 OOF images x 2 views x 0.02 s = 4 s of last validation, and the trial's overhead
    assert finalist_time_limit(FACTS, 100.0) == pytest.approx(100.0 - TRIAL_OVERHEAD_S - 4.0)
    two = dataclasses.replace(FACTS, lanes=2, contention=1.5)
    assert finalist_time_limit(two, 100.0) == pytest.approx(100.0 - TRIAL_OVERHEAD_S - 6.0)  # side by side: slower
    assert finalist_time_limit(FACTS, 10.0) == 1.0  # never below a second: one epoch is trained whatever the clock


def test_finalists_without_a_refit_after_them_take_all_the_time_before_the_reserve() -> None:
    from search.budget_run import finalists_seconds

    plan = make_plan(FACTS)
    assert plan.stages["refit"].epochs  # this budget plans a refit: the finalists keep their share
    assert finalists_seconds(plan, elapsed=0.0) == plan.stages["finalists"].seconds
    tight = make_plan(dataclasses.replace(FACTS, budget_s=200.0))
    assert not tight.stages["refit"].epochs
    # no refit: all that is left of the budget before the reserve, more than planned when the plan ran ahead
    assert finalists_seconds(tight, elapsed=10.0) == pytest.approx(200.0 - 10.0 - tight.stages["reserve"].seconds)
    assert finalists_seconds(tight, elapsed=190.0) == tight.stages["finalists"].seconds  # never less than planned
