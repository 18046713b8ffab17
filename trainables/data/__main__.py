"""``python -m trainables.data``: the registered data formats with their options."""

from __future__ import annotations

import sys
from pathlib import Path

import core.data  # noqa: F401  (registers the formats)
from core.data.formats import get_format, list_formats


def describe() -> str:
    lines = ["Data formats (data=NAME data.root=DIR data.<option>=VALUE; every format also takes "
             "data.limit=N, data.on_error=stop|skip, data.task=auto|presence and data.allow_empty=false):"]
    for name in list_formats():
        fmt = get_format(name)
        lines.append(f"\n  {name}  [{fmt.kind}, RLE order {fmt.order}, predictions: {fmt.submission}]")
        lines.append(f"    {fmt.description}")
        for key, default, help_text in fmt.describe_options():
            lines.append(f"    {key:<18} {default:<12} {help_text}")
        if fmt.default_root(Path("<storage>"), fmt.parse_options({})) is not None:
            lines.append(f"    {'data.root':<18} {'(generated)':<12} default {fmt.default_root(Path('<storage>'), fmt.parse_options({}))}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m trainables.data [-h]``: the formats and their options (the same with or without --help)."""
    from core.help import wants_help

    words = [word for word in argv if not wants_help([word])]
    if words:
        print(f"error: python -m trainables.data takes no keys, got {words[0]!r}; it lists the data formats", file=sys.stderr)
        return 2
    if argv:
        print("usage: python -m trainables.data [-h]\n")
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
