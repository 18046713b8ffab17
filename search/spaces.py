"""Search spaces: the YAML files in ``spaces/`` and the distributions they may name.

A space is found by name (``space=encoders`` is ``spaces/encoders.yaml`` in the package) or by a
path to a YAML file of the same form. A distribution is a one-key mapping such as
``{loguniform: [1.0e-4, 3.0e-3]}``; each kind checks its arguments and turns them into a Ray Tune
domain, which Optuna then samples.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from core.registry import Registry

SPACES_PACKAGE = "spaces"


def list_spaces() -> list[str]:
    folder = resources.files(SPACES_PACKAGE)
    return sorted(Path(p.name).stem for p in folder.iterdir() if p.name.endswith(".yaml"))


def space_path(name: str) -> Path:
    """The YAML file of a space given by name or path; an unknown name suggests the nearest."""
    given = Path(name).expanduser()
    if given.suffix in {".yaml", ".yml"}:
        if not given.is_file():
            raise FileNotFoundError(f"{given}: space file not found")
        return given.resolve()
    names = list_spaces()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ValueError(f"unknown space {name!r}; {hint}available spaces: {', '.join(names)} (or a path to a .yaml file)")
    return Path(str(resources.files(SPACES_PACKAGE) / f"{name}.yaml"))


def _bounds(kind: str, args: Any, log: bool = False, integer: bool = False) -> None:
    number = int if integer else int | float
    if not (isinstance(args, list) and len(args) == 2 and all(_is(a, number) for a in args)):
        raise ValueError(f"{kind} takes [low, high] as {'integers' if integer else 'numbers'}, got {args!r}")
    low, high = args
    if not low <= high:
        raise ValueError(f"{kind}: `low <= high` must hold, but got (low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"{kind}: `low > 0` must hold on a log scale, but got low={low}")


def _is(value: Any, number: Any) -> bool:
    return isinstance(value, number) and not isinstance(value, bool)  # YAML's true is not the number 1


def _choice(args: Any) -> None:
    if not isinstance(args, list) or not args:
        raise ValueError(f"choice takes a non-empty list of values, got {args!r}")


def _tune():  # type: ignore[no-untyped-def]
    from ray import tune  # imported lazily: reading and checking a space needs no Ray

    return tune


@dataclass(frozen=True)
class Distribution:
    check: Callable[[Any], None]  # raises ValueError on bad arguments
    domain: Callable[[Any], Any]  # the Ray Tune domain
    ends: Callable[[Any], list[Any]]  # the values at its ends, typed as Tune samples them


def _floats(args: list[Any]) -> list[float]:
    return [float(a) for a in args]  # Tune samples floats even between integer bounds


DOMAINS: Registry[Distribution] = Registry("distribution")
DOMAINS.register("choice")(Distribution(_choice, lambda a: _tune().choice(a), list))
DOMAINS.register("uniform")(Distribution(lambda a: _bounds("uniform", a), lambda a: _tune().uniform(*a), _floats))
DOMAINS.register("loguniform")(
    Distribution(lambda a: _bounds("loguniform", a, log=True), lambda a: _tune().loguniform(*a), _floats)
)
# [low, high] inclusive, as a user reads it; Tune's randint excludes high.
DOMAINS.register("randint")(
    Distribution(lambda a: _bounds("randint", a, integer=True), lambda a: _tune().randint(a[0], a[1] + 1), list)
)


def check_domain(key: str, spec: Any, where: str = "") -> None:
    if not (isinstance(spec, dict) and len(spec) == 1):
        raise ValueError(f"{where}{key} must be one distribution such as {{choice: [a, b]}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    try:
        DOMAINS.get(kind).check(args)
    except ValueError as error:
        raise ValueError(f"{where}{key}: {error}") from None


def to_tune(spec: dict[str, Any]) -> Any:
    kind, args = next(iter(spec.items()))
    return DOMAINS.get(kind).domain(args)


def domain_values(spec: dict[str, Any]) -> list[Any]:
    """The values a distribution can take at its ends (all of them for a choice), as Tune samples them."""
    kind, args = next(iter(spec.items()))
    return DOMAINS.get(kind).ends(args)
