"""Greedy forward selection with replacement (Caruana et al., 2004) under a cost budget.

Start from the best single model; at each step add the candidate (possibly one already in) whose
addition scores best, skipping any that would break the budget; stop after ``patience`` steps
without gain or at ``max_steps``; return the best prefix, so the ensemble never scores below the
best single model. Scoring is passed in, so this file knows nothing of arrays or metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Scores of the current blend plus one of each candidate: scorer(counts, candidates) -> scores.
Scorer = Callable[[dict[int, int], Sequence[int]], list[float]]


@dataclass
class Selection:
    counts: dict[int, int]  # candidate index -> times picked; weights are counts / total
    score: float
    history: list[tuple[dict[int, int], float]] = field(default_factory=list)

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
) -> Selection:
    """Select a weighted subset of candidates whose summed cost of distinct members stays <= budget."""
    if len(singles) != len(costs):
        raise ValueError(f"singles ({len(singles)}) and costs ({len(costs)}) must have the same length")
    if not singles:
        raise ValueError("no candidates to select from: finish at least one trial first")
    affordable = [i for i, cost in enumerate(costs) if cost <= budget]
    if not affordable:
        cheapest = min(range(len(costs)), key=lambda i: costs[i])
        raise ValueError(
            f"no model fits the budget: the cheapest costs {costs[cheapest]:.1f} s, the budget is {budget:.1f} s; "
            "raise budget.seconds or lower budget.images"
        )
    first = max(affordable, key=lambda i: (singles[i], -costs[i]))
    counts = {first: 1}
    history = [(dict(counts), float(singles[first]))]
    best = 0
    for _ in range(max_steps):
        spent = sum(costs[i] for i in counts)
        allowed = [i for i in range(len(costs)) if i in counts or spent + costs[i] <= budget]
        scores = scorer(counts, allowed)
        # Ties go to the candidate already in (free) and then to the cheaper one.
        pick = max(range(len(allowed)), key=lambda k: (scores[k], allowed[k] in counts, -costs[allowed[k]]))
        counts[allowed[pick]] = counts.get(allowed[pick], 0) + 1
        history.append((dict(counts), float(scores[pick])))
        if history[-1][1] > history[best][1]:
            best = len(history) - 1
        elif len(history) - 1 - best >= patience:
            break
    return Selection(counts=history[best][0], score=history[best][1], history=history)
