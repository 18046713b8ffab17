"""A CSV as named columns of text, with the standard library's ``csv`` only (no pandas).

The offline kernel reads sample submissions and writes submissions with torch, segmentation-models-pytorch,
numpy and OpenCV alone; this is the small part of a DataFrame those files need: every cell read as text
(an empty cell stays "", "NA" stays "NA"), columns in the file's order, ``to_csv`` like pandas' with
``index=False``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Table:
    """Named columns of text, in order: what a submission CSV holds (the small part of a DataFrame used here)."""

    def __init__(self, columns: list[str], data: Mapping[str, list[Any]]) -> None:
        self.columns = list(columns)
        self.data = {c: list(data[c]) for c in self.columns}
        sizes = {len(v) for v in self.data.values()}
        if len(sizes) > 1:
            raise ValueError(f"columns of different lengths: { {c: len(v) for c, v in self.data.items()} }")

    def __getitem__(self, column: str) -> list[Any]:
        return self.data[column]

    def __len__(self) -> int:
        return len(next(iter(self.data.values()), []))

    def rows(self) -> list[list[Any]]:
        return [list(row) for row in zip(*(self.data[c] for c in self.columns), strict=True)]

    def to_csv(self, path: str | os.PathLike, index: bool = False) -> None:
        """Like DataFrame.to_csv(index=False): a header, then rows; None and NaN as empty cells."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows([[_cell(v) for v in row] for row in self.rows()])


def _cell(value: object) -> object:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def read_csv_table(path: str | os.PathLike) -> Table:
    """Every cell as text: an empty mask stays "" and ids like "NA" stay text. Blank lines are skipped."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path.name}: the file is empty; expected a header line naming the columns")
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) > len(header):
                raise ValueError(f"{path.name}: line {reader.line_num}: {len(row)} fields, but the header names {len(header)}")
            rows.append(row + [""] * (len(header) - len(row)))
    if len(set(header)) != len(header):
        raise ValueError(f"{path.name}: the header names a column twice: {header}")
    return Table(header, {name: [row[i] for row in rows] for i, name in enumerate(header)})
