"""How every command ends on bad input: one line that says what is wrong, and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERRORS = (ValueError, FileNotFoundError)


class HelpShown(Exception):
    """The help was printed (``core/help.py``): the command ends here with status 0."""


def exit_status(body: Callable[[], int | None]) -> int:
    """Run a command's body; bad input becomes ``error: <message>`` on stderr and status 2, not a traceback."""
    try:
        status = body()
    except HelpShown:  # -h/--help: the usage and keys were printed
        return 0
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if status is None else status
