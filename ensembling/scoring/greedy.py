"""Ensemble selection from libraries of models (Caruana et al., ICML 2004), under a cost budget.

The paper's selection in full, with scoring passed in so this file knows nothing of arrays or metrics:

- *forward selection with replacement*: at each step add the candidate (possibly one already in)
  whose addition scores best; stop after ``patience`` steps without gain or at ``max_steps``, and keep
  the best prefix, so the result never scores below where it started;
- *sorted initialization*: start from the ``init_n`` best single candidates (each once) instead of one;
- *bagged selection*: repeat the selection ``bags`` times, each on a random ``bag_fraction`` of the
  candidates, and sum the counts (the paper's cure for overfitting the hillclimb set);
- a *member cap* (``max_members`` distinct candidates) and a *cost budget* (summed cost of distinct
  candidates); ties go to the candidate already in (it adds no cost) and then to the cheaper one.

A scorer ``scorer(counts, candidates)`` returns the score of the blend ``counts`` plus one more pick of
each candidate; a candidate ``None`` scores ``counts`` as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Scorer = Callable[[dict[int, int], Sequence["int | None"]], list[float]]


@dataclass(frozen=True)
class GreedyConfig:
    max_steps: int = 20
    patience: int = 3
    init_n: int = 1  # sorted initialization: start from the best n single candidates
    bags: int = 1  # bagged selection: 1 is plain forward selection
    bag_fraction: float = 0.5  # share of the candidates each bag sees
    max_members: int = 0  # distinct candidates at most (0: no cap)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("max_steps", self.max_steps >= 0, "an integer >= 0"),
            ("patience", self.patience >= 1, "an integer >= 1"),
            ("init_n", self.init_n >= 1, "an integer >= 1"),
            ("bags", self.bags >= 1, "an integer >= 1"),
            ("bag_fraction", 0 < self.bag_fraction <= 1, "a number in (0, 1]"),
            ("max_members", self.max_members >= 0, "an integer >= 0 (0: no cap)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"greedy.{name} must be {rule}, got {getattr(self, name)!r}")


@dataclass
class Selection:
    counts: dict[int, int]  # candidate index -> times picked; weights are counts / total
    score: float
    history: list[tuple[dict[int, int], float]] = field(default_factory=list)  # the (last) bag's steps

    @property
    def weights(self) -> dict[int, float]:
        total = sum(self.counts.values())
        return {i: c / total for i, c in self.counts.items()}


def greedy_select(
    singles: Sequence[float],
    costs: Sequence[float],
    budget: float,
    scorer: Scorer,
    max_steps: int = 20,
    patience: int = 3,
    config: GreedyConfig | None = None,
) -> Selection:
    """Select a weighted subset of candidates whose summed cost of distinct members stays <= budget."""
    config = config or GreedyConfig(max_steps=max_steps, patience=patience)
    if len(singles) != len(costs):
        raise ValueError(f"singles ({len(singles)}) and costs ({len(costs)}) must have the same length")
    if not singles:
        raise ValueError("no candidates to select from: finish at least one trial first")
    affordable = [i for i, cost in enumerate(costs) if cost <= budget]
    if not affordable:
        cheapest = min(range(len(costs)), key=lambda i: costs[i])
        raise ValueError(
            f"no model fits the budget: the cheapest costs {costs[cheapest]:.1f} s, the budget is {budget:.1f} s; "
            "raise budget.seconds, lower budget.images or name the target with budget.device"
        )
    if config.bags == 1:
        return _forward(affordable, singles, costs, budget, scorer, config)
    rng = np.random.default_rng(config.seed)
    size = max(1, round(config.bag_fraction * len(affordable)))
    total: dict[int, int] = {}
    last = None
    for _ in range(config.bags):
        pool = sorted(int(i) for i in rng.choice(affordable, size=size, replace=False))
        last = _forward(pool, singles, costs, budget, scorer, config)
        for i, c in last.counts.items():
            total[i] = total.get(i, 0) + c
    total = _fit(total, costs, budget, config.max_members)
    assert last is not None
    return Selection(counts=total, score=float(scorer(total, [None])[0]), history=last.history)


def _forward(
    pool: Sequence[int], singles: Sequence[float], costs: Sequence[float], budget: float, scorer: Scorer, config: GreedyConfig
) -> Selection:
    """Forward selection with replacement over ``pool``, from its best ``init_n`` affordable singles."""
    ranked = sorted(pool, key=lambda i: (-singles[i], costs[i], i))
    counts: dict[int, int] = {}
    for i in ranked:
        if len(counts) >= config.init_n:
            break
        if _fits(counts, i, costs, budget, config.max_members):
            counts[i] = 1
    score = float(singles[ranked[0]]) if len(counts) == 1 else float(scorer(counts, [None])[0])
    history = [(dict(counts), score)]
    best = 0
    for _ in range(config.max_steps):
        allowed = [i for i in pool if _fits(counts, i, costs, budget, config.max_members)]
        scores = scorer(counts, allowed)
        # Ties go to the candidate already in (free) and then to the cheaper one.
        pick = max(range(len(allowed)), key=lambda k: (scores[k], allowed[k] in counts, -costs[allowed[k]], -allowed[k]))
        counts[allowed[pick]] = counts.get(allowed[pick], 0) + 1
        history.append((dict(counts), float(scores[pick])))
        if history[-1][1] > history[best][1]:
            best = len(history) - 1
        elif len(history) - 1 - best >= config.patience:
            break
    return Selection(counts=history[best][0], score=history[best][1], history=history)


def _fits(counts: dict[int, int], candidate: int, costs: Sequence[float], budget: float, cap: int) -> bool:
    if candidate in counts:
        return True
    if cap and len(counts) >= cap:
        return False
    return sum(costs[i] for i in counts) + costs[candidate] <= budget


def _fit(counts: dict[int, int], costs: Sequence[float], budget: float, cap: int) -> dict[int, int]:
    """Bags chose within the budget one by one; their union may not: drop the least-picked (then dearest)."""
    kept = dict(counts)
    order = sorted(kept, key=lambda i: (kept[i], -costs[i]))
    while len(kept) > 1 and ((cap and len(kept) > cap) or sum(costs[i] for i in kept) > budget):
        del kept[order.pop(0)]
    return kept


def select_with_progress(
    scores: Callable[[dict[int, int], Sequence[int]], list[float]], costs: Sequence[float], budget: float, config: GreedyConfig, quiet: bool = False
) -> tuple[Selection, list[float]]:
    """Every candidate scored alone, then :func:`greedy_select` with a bar counting its steps."""
    from tqdm import tqdm

    singles = scores({}, list(range(len(costs))))
    bar = tqdm(total=config.bags * config.max_steps, desc="greedy steps", unit="step", disable=quiet, leave=False)

    def counted(counts: dict[int, int], candidates: Sequence[int]) -> list[float]:
        bar.update(1)
        return scores(counts, candidates)

    selection = greedy_select(singles, costs, budget, counted, config=config)
    bar.close()
    return selection, singles
