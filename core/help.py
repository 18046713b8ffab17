"""``-h``/``--help`` on every command: its usage, then each key with its default and meaning.

A command answers help, and a word it cannot parse, before it imports torch, Ray or MLflow (seconds
each): its module calls :func:`answer_early` above those imports when run with ``python -m``, with a
parse that needs none of them. ``main(argv)`` parses the same way, so ``main(["--help"])`` prints the
same text and returns 0 (:class:`HelpShown` ends it through ``core.errors.exit_status``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from core.errors import HelpShown, exit_status

HELP_WORDS = ("-h", "--help")


def wants_help(argv: Iterable[str]) -> bool:
    return any(word in HELP_WORDS for word in argv)


def format_keys(rows: Iterable[tuple[str, str, str]], title: str = "keys") -> str:
    """``key  default  meaning`` rows as aligned lines under a title."""
    rows = list(rows)
    if not rows:
        return ""
    width = max(len(key) for key, _, _ in rows) + 2
    shown = min(max(len(default) for _, default, _ in rows) + 2, 26)  # a long default pushes only its own meaning
    lines = [f"{title}:"] + [f"  {key:<{width}}{default + '  ':<{shown}}{meaning}".rstrip() for key, default, meaning in rows]
    return "\n".join(lines)


def show_help(text: str) -> None:
    """Print a command's help and end it with status 0."""
    print(text.rstrip())
    raise HelpShown


def default_text(value: object) -> str:
    """A default as a user would type it: null, true/false, lists without quotes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(default_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def answer_early(argv: list[str], parse: Callable[[list[str]], object]) -> None:
    """``python -m`` only, before the heavy imports: print help and exit 0, or a word's error and exit 2.

    ``parse`` is the command's own light parse (it raises HelpShown after printing the help); a command
    line that parses goes on to the imports and to ``main``, which checks it in full."""
    status = exit_status(lambda: parse(argv) and None)
    if status != 0 or wants_help(argv):
        sys.exit(status)
