"""Where a stage's trials may run: the node kind they ask for, and a check that some node has it.

A node says its kind with a custom resource (``proto`` on the prototyping box, ``heavy`` on the GPU
nodes; see ``search/node_start.py`` and ``cluster.yaml``). A trial asks for a sliver of its stage's
kind (``KIND_SHARE``), so the node's CPUs and GPUs, not the kind, limit how many trials share it.
Ray leaves a trial that no node can hold PENDING forever, without a word; :func:`check_fits` says so
before the search starts, naming the resource and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KINDS = {"screen": "proto", "full": "heavy"}  # the kind each stage asks for when placement is auto
KIND_SHARE = 0.01  # of a node's kind resource (1 per node) that one trial takes: up to 100 trials a node
NAMES = {"cpu": "CPU", "gpu": "GPU"}  # Tune's names in with_resources -> Ray's node resources


class PlacementError(ValueError):
    """No node of the cluster can ever run a trial of this stage."""


@dataclass(frozen=True)
class Node:
    address: str
    resources: Mapping[str, float]  # the node's total resources, as ``ray.nodes()`` reports them


def nodes_of(ray_nodes: Iterable[Mapping]) -> list[Node]:
    """The live nodes of ``ray.nodes()``."""
    return [Node(str(n.get("NodeManagerAddress", "?")), dict(n.get("Resources", {}))) for n in ray_nodes if n.get("Alive")]


def stage_kind(stage: str, placement: str, nodes: list[Node]) -> str | None:
    """The resource a stage's trials ask for: ``auto`` uses the kinds when any node declares one.

    ``auto`` on a cluster whose nodes declare no kind (a laptop, a plain ``ray start``) places
    nowhere in particular; ``none`` never places; any other name is required as given.
    """
    if placement == "none":
        return None
    if placement != "auto":
        return placement
    declared = any(kind in node.resources for node in nodes for kind in KINDS.values())
    return KINDS[stage] if declared else None


def demand(resources: Mapping[str, float], kind: str | None) -> dict[str, float]:
    """A trial's request in Tune's terms (``cpu``, ``gpu``, custom names), plus its kind."""
    out = {k: float(v) for k, v in resources.items() if v}
    if kind:
        out[kind] = KIND_SHARE
    return out


def auto_cpus(nodes: list[Node], kind: str | None, trials: int) -> float:
    """CPUs per trial when the user gave none: the CPUs of the stage's nodes shared among its trials,
    never more than its biggest node has (a trial runs on one node)."""
    cpus = [n.resources.get("CPU", 0.0) for n in nodes if kind is None or kind in n.resources]
    total, biggest = int(sum(cpus)), int(max(cpus, default=1))
    return float(max(1, min(biggest, total // max(1, min(trials, total)))))


def fits(request: Mapping[str, float], node: Node) -> bool:
    return all(node.resources.get(NAMES.get(k, k), 0.0) >= v - 1e-9 for k, v in request.items() if v > 0)


def check_fits(stage: str, request: Mapping[str, float], nodes: list[Node], wait_for_nodes: bool = False) -> str | None:
    """Raise :class:`PlacementError` when no live node can hold one trial of the stage.

    With ``wait_for_nodes`` (a cluster that autoscales: the node may come), returns the same
    sentence as a warning instead.
    """
    if any(fits(request, node) for node in nodes):
        return None
    wanted = ", ".join(f"{NAMES.get(k, k)}: {v:g}" for k, v in request.items())
    have = "; ".join(f"{n.address} has " + ", ".join(f"{k}: {v:g}" for k, v in sorted(n.resources.items()) if _shown(k)) for n in nodes)
    kinds = [k for k in request if k in KINDS.values()]
    fix = (
        f"start a node with --resources='{{\"{kinds[0]}\": 1}}' (python -m search.node_start --kind {kinds[0]}, see cluster.yaml), "
        f"or place.{stage}=none to run anywhere"
        if kinds
        else "lower ray.cpus_per_trial / ray.gpus_per_trial or add a bigger node"
    )
    message = f"no node of the cluster can run a {stage} trial, which needs {{{wanted}}} on one node ({have}): {fix}"
    if wait_for_nodes:
        return f"warning: {message}; waiting for the autoscaler to add one (ray.wait_for_nodes=true)"
    raise PlacementError(message + "; or ray.wait_for_nodes=true if the cluster autoscales")


def _shown(resource: str) -> bool:
    return not resource.startswith(("node:", "accelerator_type:")) and resource not in ("memory", "object_store_memory")
