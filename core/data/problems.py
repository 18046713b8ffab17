"""Bad input while reading a data set: stop at the first (the default) or skip and list every one.

A reader calls ``problems.bad(where, message, image_id)`` for each bad row or file. With
``data.on_error=stop`` that raises one ``ValueError`` line naming the file and row; with
``data.on_error=skip`` the row is recorded (and the image, if named, left out of training) and the
study writes the list to its report file (``core/contract.py`` owns its name), printing the count.
Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

ON_ERROR = ("stop", "skip")


@dataclass
class Problem:
    where: str  # file, or file:line
    message: str
    image_id: str = ""


@dataclass
class Problems:
    on_error: str = "stop"
    found: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"data.on_error must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")

    def bad(self, where: str | Path, message: str, image_id: str = "", error: type[Exception] = ValueError) -> None:
        """Report one bad row or file: raise (stop) or record it (skip)."""
        if self.on_error == "stop":
            raise error(f"{where}: {message}")
        self.found.append(Problem(str(where), message, image_id))

    @property
    def skipped_images(self) -> set[str]:
        return {p.image_id for p in self.found if p.image_id}

    def __len__(self) -> int:
        return len(self.found)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["where", "image_id", "problem"])
        for p in self.found:
            writer.writerow([p.where, p.image_id, p.message])
        return out.getvalue()
