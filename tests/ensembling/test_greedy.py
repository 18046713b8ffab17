"""Greedy forward selection with replacement, scored by toy blends of 1-D "predictions" against a target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensembling.scoring.greedy import GreedyConfig, greedy_select


def blend_score(preds: Sequence[np.ndarray], target: np.ndarray, counts: dict[int, int]) -> float:
    """Negative MSE of the count-weighted mean of the predictions."""
    total = sum(counts.values())
    mean = sum(preds[i] * c for i, c in counts.items()) / total
    return -float(np.mean((mean - target) ** 2))


def make_scorer(preds: Sequence[np.ndarray], target: np.ndarray):
    def scorer(counts: dict[int, int], candidates: Sequence[int | None]) -> list[float]:
        return [blend_score(preds, target, counts if c is None else {**counts, c: counts.get(c, 0) + 1}) for c in candidates]

    return scorer


def select(preds: list[np.ndarray], target: np.ndarray, costs: list[float] | None = None, budget: float = 100.0, **kw):
    costs = costs if costs is not None else [1.0] * len(preds)
    singles = [blend_score(preds, target, {i: 1}) for i in range(len(preds))]
    return greedy_select(singles, costs, budget, make_scorer(preds, target), **kw), singles


def test_candidate_equal_to_truth_is_picked_first_and_alone() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=16)
    preds = [target + rng.normal(size=16), target.copy(), target + rng.normal(size=16)]
    selection, _ = select(preds, target)
    assert selection.history[0] == ({1: 1}, 0.0)
    assert selection.counts == {1: 1}
    assert selection.score == 0.0
    assert selection.weights == {1: 1.0}


def test_picks_a_model_twice_when_two_to_one_is_optimal() -> None:
    # (2 * a + b) / 3 == 0 == target exactly: weights 2/3 and 1/3.
    target = np.zeros(3)
    a, b = np.array([1.0, 1.0, 1.0]), np.array([-2.0, -2.0, -2.0])
    selection, _ = select([a, b], target)
    assert selection.counts == {0: 2, 1: 1}
    assert selection.weights == pytest.approx({0: 2 / 3, 1: 1 / 3})
    assert selection.score == pytest.approx(0.0)
    # a alone (-1), then a + b (-0.25), then 2a + b (0)
    assert [score for _, score in selection.history[:3]] == pytest.approx([-1.0, -0.25, 0.0])


def test_history_starts_with_the_best_single() -> None:
    rng = np.random.default_rng(1)
    target = rng.normal(size=8)
    preds = [target + rng.normal(scale=s, size=8) for s in (2.0, 0.5, 1.0, 3.0)]
    selection, singles = select(preds, target)
    best = int(np.argmax(singles))
    assert best == 1
    assert selection.history[0] == ({best: 1}, singles[best])


def test_too_expensive_better_candidate_is_never_included() -> None:
    target = np.zeros(4)
    preds = [target.copy(), np.full(4, 1.0), np.full(4, -1.0)]  # 0 is perfect, 1 and 2 cancel out
    selection, _ = select(preds, target, costs=[10.0, 2.0, 2.0], budget=5.0)
    assert 0 not in selection.counts
    assert all(0 not in counts for counts, _ in selection.history)
    assert selection.counts == {1: 1, 2: 1}
    assert selection.score == pytest.approx(0.0)


def test_distinct_members_cost_at_most_the_budget() -> None:
    # The mean of all three is perfect, but the budget affords only two distinct members.
    target = np.zeros(3)
    preds = [np.array([1.0, -1.0, 0.0]), np.array([0.0, 1.0, -1.0]), np.array([-1.0, 0.0, 1.0])]
    costs = [2.0, 2.0, 2.0]
    selection, _ = select(preds, target, costs=costs, budget=5.0)
    assert len(selection.counts) == 2
    for counts, _ in selection.history:
        assert sum(costs[i] for i in counts) <= 5.0
    unlimited, _ = select(preds, target, costs=costs, budget=6.0)
    assert unlimited.counts == {0: 1, 1: 1, 2: 1}
    assert unlimited.score == pytest.approx(0.0)


def test_first_pick_is_the_best_affordable_single() -> None:
    target = np.zeros(2)
    preds = [target.copy(), np.full(2, 0.5), np.full(2, 2.0)]
    selection, singles = select(preds, target, costs=[9.0, 1.0, 1.0], budget=3.0)
    assert selection.history[0] == ({1: 1}, singles[1])


def test_ties_go_to_the_cheaper_candidate() -> None:
    target = np.zeros(2)
    twin = np.full(2, -1.0)
    preds = [np.full(2, 1.0), twin, twin.copy()]  # 1 and 2 are the same model at different costs
    selection, _ = select(preds, target, costs=[1.0, 3.0, 1.0], budget=10.0)
    assert selection.counts == {0: 1, 2: 1}


def test_no_model_fits_the_budget() -> None:
    with pytest.raises(ValueError, match=r"no model fits the budget: the cheapest costs 3\.0 s, the budget is 1\.0 s"):
        greedy_select([0.5, 0.6], [3.0, 4.0], 1.0, lambda counts, cands: [0.0] * len(cands))


def test_mismatched_lengths_and_no_candidates_are_errors() -> None:
    with pytest.raises(ValueError, match=r"singles \(2\) and costs \(1\) must have the same length"):
        greedy_select([0.5, 0.6], [3.0], 10.0, lambda counts, cands: [0.0] * len(cands))
    with pytest.raises(ValueError, match="no candidates to select from"):
        greedy_select([], [], 10.0, lambda counts, cands: [])


def test_stops_after_patience_steps_without_gain() -> None:
    calls: list[dict[int, int]] = []

    def flat(counts: dict[int, int], candidates: Sequence[int]) -> list[float]:
        calls.append(dict(counts))
        return [0.0] * len(candidates)

    selection = greedy_select([0.5, 0.1], [1.0, 1.0], 10.0, flat, max_steps=20, patience=3)
    assert len(calls) == 3
    assert len(selection.history) == 4
    assert selection.counts == {0: 1}
    assert selection.score == 0.5
    assert greedy_select([0.5, 0.1], [1.0, 1.0], 10.0, flat, max_steps=0).history == [({0: 1}, 0.5)]


def test_returns_the_best_prefix_not_the_last_step() -> None:
    scores = iter([[0.9, 0.8], [0.7, 0.6], [0.95, 0.1], [0.5, 0.5]])
    selection = greedy_select([0.6, 0.5], [1.0, 1.0], 10.0, lambda counts, cands: next(scores), max_steps=4, patience=5)
    assert [s for _, s in selection.history] == [0.6, 0.9, 0.7, 0.95, 0.5]
    assert selection.score == 0.95
    assert selection.counts == selection.history[3][0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), models=st.integers(1, 6), budget=st.floats(1.0, 10.0))
def test_never_below_the_best_affordable_single(seed: int, models: int, budget: float) -> None:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=12)
    preds = [target + rng.normal(scale=rng.uniform(0.1, 2.0), size=12) + rng.normal() for _ in range(models)]
    costs = [float(c) for c in rng.uniform(0.5, 5.0, size=models)]
    costs[0] = 0.5  # something always fits
    selection, singles = select(preds, target, costs=costs, budget=budget)
    affordable = [singles[i] for i in range(models) if costs[i] <= budget]
    assert selection.score >= max(affordable)
    assert selection.history[0][1] == max(affordable)
    assert selection.score == pytest.approx(blend_score(preds, target, selection.counts))
    assert sum(selection.weights.values()) == pytest.approx(1.0)
    assert sum(costs[i] for i in selection.counts) <= budget


def test_two_copies_of_one_model_do_not_beat_a_diverse_pair() -> None:
    # 0 and 1 are the same best model; 2 errs the other way: the pair (0, 2) is perfect, (0, 1) is not.
    target = np.zeros(4)
    best = np.array([0.5, -0.5, 0.5, -0.5])
    preds = [best, best.copy(), -best * 1.2]
    selection, singles = select(preds, target)
    assert singles[0] == singles[1] > singles[2]
    assert 2 in selection.counts and 1 not in selection.counts
    assert selection.score > blend_score(preds, target, {0: 1, 1: 1})


def test_sorted_initialization_starts_from_the_best_n() -> None:
    rng = np.random.default_rng(3)
    target = rng.normal(size=32)
    preds = [target + rng.normal(scale=s, size=32) for s in (0.3, 2.0, 0.4, 0.5, 3.0)]
    selection, _ = select(preds, target, config=GreedyConfig(init_n=3, max_steps=0))
    assert selection.history[0][0] == {0: 1, 2: 1, 3: 1}
    assert selection.score == pytest.approx(blend_score(preds, target, {0: 1, 2: 1, 3: 1}))


def test_member_cap_limits_distinct_members() -> None:
    # The mean of all three is perfect; a cap of two distinct members must hold all the way.
    target = np.zeros(3)
    preds = [np.array([1.0, -1.0, 0.0]), np.array([0.0, 1.0, -1.0]), np.array([-1.0, 0.0, 1.0])]
    capped, _ = select(preds, target, config=GreedyConfig(max_members=2))
    assert len(capped.counts) == 2
    assert all(len(counts) <= 2 for counts, _ in capped.history)
    bagged, _ = select(preds, target, config=GreedyConfig(max_members=2, bags=5, bag_fraction=1.0))
    assert len(bagged.counts) <= 2


def test_bagged_selection_sums_counts_over_bags() -> None:
    rng = np.random.default_rng(4)
    target = rng.normal(size=64)
    preds = [target + rng.normal(scale=1.0, size=64) for _ in range(6)]
    plain, _ = select(preds, target, config=GreedyConfig(max_steps=3, patience=5))
    full_bags, _ = select(preds, target, config=GreedyConfig(max_steps=3, patience=5, bags=4, bag_fraction=1.0))
    # Every bag sees all candidates, so each repeats the plain selection: counts are 4 times as many.
    assert full_bags.counts == {i: 4 * c for i, c in plain.counts.items()}
    assert full_bags.score == pytest.approx(plain.score)
    half, _ = select(preds, target, config=GreedyConfig(max_steps=3, patience=5, bags=8, bag_fraction=0.5, seed=1))
    assert sum(half.counts.values()) >= 8  # at least one pick per bag
    assert len(half.counts) > len(plain.counts)  # bags on different subsets reach different members
    assert half.score == pytest.approx(blend_score(preds, target, half.counts))
    again, _ = select(preds, target, config=GreedyConfig(max_steps=3, patience=5, bags=8, bag_fraction=0.5, seed=1))
    assert again.counts == half.counts


def test_bagged_union_is_trimmed_to_the_budget() -> None:
    rng = np.random.default_rng(5)
    target = rng.normal(size=64)
    preds = [target + rng.normal(scale=1.0, size=64) for _ in range(6)]
    costs = [1.0] * 6
    selection, _ = select(preds, target, costs=costs, budget=2.0, config=GreedyConfig(bags=6, bag_fraction=0.5, seed=2))
    assert sum(costs[i] for i in selection.counts) <= 2.0


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"greedy.bag_fraction must be a number in \(0, 1\], got 1.5"):
        GreedyConfig(bag_fraction=1.5)
    with pytest.raises(ValueError, match=r"greedy.init_n must be an integer >= 1, got 0"):
        GreedyConfig(init_n=0)
