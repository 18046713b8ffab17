"""``key=value`` command lines for the ensembling tools, checked against the keys each one takes.

Optional keys may carry a type and a range (:class:`Typed`): ``budget.seconds=abc`` or ``batch_size=0``
is an error that names the key, the rule and the value, as the search's keys are. :func:`command` runs a
command's body so that bad input and unwritable places end as one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.config import read_yaml, split_words, unknown_key_error
from core.errors import exit_status
from core.help import answer_early, default_text, format_keys, show_help, wants_help


@dataclass(frozen=True)
class Typed:
    """The type and range of one key's value: ``kind`` is int, float, bool or str."""

    kind: type
    minimum: float | None = None
    above: bool = False  # True: the value must be strictly above ``minimum``
    choices: tuple[str, ...] = ()

    def rule(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        name = {int: "an integer", float: "a number", bool: "true or false", str: "text"}[self.kind]
        if self.minimum is None:
            return name
        return f"{name} {'>' if self.above else '>='} {self.minimum:g}"

    def check(self, key: str, value: Any) -> Any:
        bad = ValueError(f"{key} must be {self.rule()}, got {value!r}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is str:
            text = "" if value is None else str(value)
            if self.choices and text not in self.choices:
                raise bad
            return text
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise bad
            value = int(value)
        value = self.kind(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise bad
        if self.minimum is not None and (value <= self.minimum if self.above else value < self.minimum):
            raise bad
        return value


POSITIVE = Typed(float, 0, above=True)
COUNT = Typed(int, 1)
FLAG = Typed(bool)
TEXT = Typed(str)


def parse_args(
    argv: list[str],
    required: list[str],
    optional: list[str] | Mapping[str, Typed | None],
    usage: str,
) -> dict[str, Any]:
    """Parse and check ``key=value`` words; a missing or unknown key, or a value out of range, names the fix.

    Required values stay text (paths); optional ones are read as YAML, then checked against their
    :class:`Typed` when ``optional`` maps keys to one.
    """
    types = dict(optional) if isinstance(optional, Mapping) else dict.fromkeys(optional)
    valid = required + list(types)
    args: dict[str, Any] = {}
    for key, value in split_words(argv, f"; usage: {usage}"):
        if key not in valid:
            raise ValueError(f"{unknown_key_error(key, valid, 'command line: ')}; usage: {usage}")
        if key in required:
            args[key] = value
            continue
        typed = types[key]
        args[key] = typed.check(key, value if typed is not None and typed.kind is str else read_yaml(value, f"{key}={value}")) if typed else read_yaml(value, f"{key}={value}")
    missing = [k for k in required if k not in args]
    if missing:
        raise ValueError(f"missing {', '.join(k + '=...' for k in missing)}; usage: {usage}")
    return args


REQUIRED = object()  # a Key's default when the key must be given


@dataclass(frozen=True)
class Key:
    """One key of a command: its one-line meaning, its default (REQUIRED: must be given), its type and range."""

    meaning: str
    default: Any = REQUIRED
    typed: Typed | None = None

    def shown(self) -> str:
        if self.default is REQUIRED:
            return "(required)"
        return default_text(self.default)


@dataclass(frozen=True)
class Command:
    """A command's ``key=value`` line: its usage, what it does, and its keys; ``parse`` answers ``--help`` too."""

    usage: str
    about: str
    keys: Mapping[str, Key]

    def parse(self, argv: list[str]) -> dict[str, Any]:
        """The given keys, checked (defaults are not filled in); ``-h``/``--help`` prints :meth:`help` and ends."""
        if wants_help(argv):
            show_help(self.help())
        required = [k for k, key in self.keys.items() if key.default is REQUIRED]
        optional = {k: key.typed for k, key in self.keys.items() if key.default is not REQUIRED}
        return parse_args(argv, required, optional, self.usage)

    def help(self) -> str:
        rows = [(k, key.shown(), key.meaning) for k, key in self.keys.items()]
        return f"usage: {self.usage}\n\n{self.about}\n\n{format_keys(rows)}\n"

    def answer_early(self, argv: list[str]) -> None:
        """Under ``python -m``, before the command's heavy imports: help (exit 0) or a bad word (exit 2)."""
        answer_early(argv, self.parse)


def command(body: Callable[[], int | None]) -> int:
    """Run a command's body: bad input, and a place we cannot write or read, end as one ``error:`` line, status 2."""

    def guarded() -> int | None:
        try:
            return body()
        except FileNotFoundError:
            raise
        except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as error:
            where = error.filename or "a file"
            raise ValueError(f"{where}: {error.strerror or error} (choose a place you may write, or fix its permissions)") from None
        except OSError as error:
            if error.filename is None:
                raise
            raise ValueError(f"{error.filename}: {error.strerror or error}") from None

    return exit_status(guarded)
