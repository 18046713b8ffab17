"""``key=value`` command lines for the ensembling tools, checked against the keys each one takes."""

from __future__ import annotations

from typing import Any

from trainables.config import read_yaml, split_words, unknown_key_error


def parse_args(argv: list[str], required: list[str], optional: list[str], usage: str) -> dict[str, Any]:
    """Parse and check ``key=value`` words; a missing or unknown key names the fix."""
    args: dict[str, Any] = {}
    for key, value in split_words(argv, f"; usage: {usage}"):
        if key not in required + optional:
            raise ValueError(f"{unknown_key_error(key, required + optional, 'command line: ')}; usage: {usage}")
        args[key] = value if key in required else read_yaml(value)
    missing = [k for k in required if k not in args]
    if missing:
        raise ValueError(f"missing {', '.join(k + '=...' for k in missing)}; usage: {usage}")
    return args
