"""The pandas-free CSV table the offline kernel reads samples and writes submissions with."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.data.table import Table, read_csv_table


def test_reads_every_cell_as_text_like_pandas(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    # a BOM, a quoted cell with a comma, "NA", an empty cell, a blank line, a short row
    path.write_bytes('\ufeffImageId,ClassId,EncodedPixels\n"a,b.jpg",1,1 3\nNA,02,\n\nc.jpg,3\n'.encode())
    table = read_csv_table(path)
    want = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert table.columns == list(want.columns) == ["ImageId", "ClassId", "EncodedPixels"]
    for column in table.columns:
        assert table[column] == list(want[column])
    assert table["ClassId"] == ["1", "02", "3"] and len(table) == 3


def test_writes_what_pandas_writes(tmp_path: Path) -> None:
    data = {"ImageId_ClassId": ["x.jpg_1", "y,z.jpg_2", "w.jpg_3"], "EncodedPixels": ["1 2", "", None]}
    Table(list(data), data).to_csv(tmp_path / "ours.csv")
    pd.DataFrame(data).to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"s\.csv: the file is empty"),
        ("a,b\n1,2,3\n", r"s\.csv: line 2: 3 fields, but the header names 2"),
        ("a,a\n1,2\n", r"s\.csv: the header names a column twice"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_csv_table(tmp_path / "s.csv")
