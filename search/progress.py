"""Where each trial runs: a live table on the terminal, node tags on the MLflow runs, a final summary.

Tune puts ``node_ip`` in every result; the trial adds Ray's ``node_id`` (``trainables/tune_edge.py``).
:class:`WhereTable` prints a compact table of the trials (stage, status, node, epoch, score) each time
one starts, moves to another node, or ends, and at most every ``every`` seconds otherwise; it tags
each trial's MLflow child run with the node(s) it ran on; and :meth:`WhereTable.summary` says what
ran where, for the terminal and for the parent run's description.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from mlflow.entities import RunTag
from ray.tune import Callback

from search.resume import trial_id_of


@dataclass
class TrialWhere:
    trial_id: str
    name: str
    stage: str
    status: str = "PENDING"
    nodes: list[str] = field(default_factory=list)  # node addresses in the order the trial ran on them
    node_ids: list[str] = field(default_factory=list)
    epoch: int = 0
    score: float | None = None
    final: bool = False  # reported its final result (its folder is written)


class WhereTable(Callback):
    """A Tune callback that follows each trial's node; one instance may serve several stages."""

    def __init__(self, kinds: dict[str, str] | None = None, out: TextIO | None = None, every: float = 30.0) -> None:
        self.kinds = kinds or {}  # node address -> kind (proto, heavy), for the summary
        self.out = out  # None: sys.stdout when printing (Tune pickles its callbacks; a stream does not pickle)
        self.every = every
        self.stage = "full"
        self.trials: dict[str, TrialWhere] = {}
        self.mlflow_logger: Any = None  # the stage's TrialRuns callback, to tag its runs
        self._printed = 0.0

    def begin_stage(self, stage: str, mlflow_logger: Any = None) -> None:
        self.stage, self.mlflow_logger = stage, mlflow_logger

    def _get(self, trial: Any) -> TrialWhere:
        if trial.trial_id not in self.trials:
            self.trials[trial.trial_id] = TrialWhere(trial.trial_id, str(trial), self.stage)
        return self.trials[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._get(trial).status = "RUNNING"
        self._show(force=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        where = self._get(trial)
        where.status = "RUNNING"
        where.epoch = int(result.get("epoch", where.epoch))
        where.score = result.get("score", where.score)
        where.final = where.final or "oof_score" in result
        node, node_id = str(result.get("node_ip", "?")), str(result.get("node_id", ""))
        moved = not where.nodes or where.nodes[-1] != node
        if moved:
            where.nodes.append(node)
            if node_id:
                where.node_ids.append(node_id)
            self._tag(trial, where)
        self._show(force=moved)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        where = self._get(trial)
        where.status = "DONE" if where.final else "STOPPED"
        self._show(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._get(trial).status = "ERROR"
        self._show(force=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._get(trial).status = "RETRY"  # lost its node or failed; Tune restarts it from its checkpoint
        self._show(force=True)

    def _tag(self, trial: Any, where: TrialWhere) -> None:
        if self.mlflow_logger is None:  # search/mlflow_runs.py TrialRuns: one run per trial, kept across resumes
            return
        run_id = self.mlflow_logger.run_id(trial)
        tags = {"ray.node_ip": where.nodes[-1], "ray.nodes": " -> ".join(where.nodes), "stage": where.stage}
        if where.node_ids:
            tags["ray.node_id"] = where.node_ids[-1]
        kind = self.kinds.get(where.nodes[-1])
        if kind:
            tags["ray.node_kind"] = kind
        self.mlflow_logger.client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])

    def absorb(self, stage: str, grid: Any, done: set[str], statuses: dict[str, str]) -> None:
        """Take every trial of a stage's result grid: those that ran before a resume, too.

        A restored Tuner calls the callbacks it pickled, not this table, and trials finished before the
        resume report nothing: the grid's results (Tune's ``result.json`` of each trial) say where each
        ran. Its status: DONE (its folder is complete), ERROR, STOPPED (by ASHA), or UNFINISHED (a resume
        goes on with it; ``statuses`` as search/outcome.py reads them).
        """
        for result in grid:
            trial_id = trial_id_of(result.path)
            where = self.trials.setdefault(trial_id, TrialWhere(trial_id, trial_id, stage))
            where.nodes = _nodes_of(result) or where.nodes
            where.epoch = int((result.metrics or {}).get("epoch", where.epoch) or 0)
            if trial_id in done:
                where.status = "DONE"
            elif result.error is not None or statuses.get(trial_id) == "ERROR":
                where.status = "ERROR"
            elif statuses.get(trial_id) not in (None, "TERMINATED"):
                where.status = "UNFINISHED"
            else:
                where.status = "STOPPED"

    def table(self) -> str:
        lines = [f"  {'trial':<32} {'stage':<6} {'status':<8} {'node':<40} {'epoch':>5} {'score':>7}"]
        for where in self.trials.values():
            node = " -> ".join(f"{n}{self._kind(n)}" for n in where.nodes) or "-"
            score = "-" if where.score is None else f"{where.score:.4f}"
            lines.append(f"  {where.name[:32]:<32} {where.stage:<6} {where.status:<8} {node:<40} {where.epoch:>5} {score:>7}")
        return "\n".join(lines)

    def _kind(self, node: str) -> str:
        return f" ({self.kinds[node]})" if node in self.kinds else ""

    def _show(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._printed < self.every:
            return
        self._printed = now
        counts = Counter(w.status for w in self.trials.values())
        head = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        print(f"\nTrials ({head}):\n{self.table()}", file=self.out or sys.stdout, flush=True)

    def summary(self) -> str:
        """What ran where, one line per stage and node: its trials done, stopped, failed, unfinished, by id."""
        lines = []
        for stage in dict.fromkeys(w.stage for w in self.trials.values()):
            per_node: dict[str, dict[str, list[str]]] = {}
            for where in (w for w in self.trials.values() if w.stage == stage):
                for node in dict.fromkeys(where.nodes or ["(no result)"]):
                    per_node.setdefault(node, {}).setdefault(where.status, []).append(where.trial_id)
                if len(set(where.nodes)) > 1:
                    per_node.setdefault(" -> ".join(where.nodes), {}).setdefault("moved", []).append(where.trial_id)
            for node, by_status in per_node.items():
                said = ", ".join(f"{len(ids)} {s.lower()} ({_ids(ids)})" for s, ids in sorted(by_status.items()))
                lines.append(f"{stage}: {node}{self._kind(node)}: {said}")
        return "\n".join(lines)


def _ids(ids: list[str], most: int = 6) -> str:
    return " ".join(ids[:most]) + (f" +{len(ids) - most}" if len(ids) > most else "")


def _nodes_of(result: Any) -> list[str]:
    """The nodes a trial reported from, in order (a retry on another node adds one)."""
    frame = getattr(result, "metrics_dataframe", None)  # None where Tune kept no result rows
    if frame is None or "node_ip" not in frame:
        return []
    nodes: list[str] = []
    for node in frame["node_ip"].dropna().astype(str):
        if not nodes or nodes[-1] != node:
            nodes.append(node)
    return nodes
