"""``key=value`` parsing for the ensembling tools."""

from __future__ import annotations

import pytest

from ensembling.cli import parse_args, read_yaml

USAGE = "python -m ensembling.select study=DIR [budget.seconds=3600]"
REQUIRED = ["study", "out"]
OPTIONAL = ["budget.seconds", "budget.images", "device"]


def parse(*argv: str) -> dict:
    return parse_args(list(argv), REQUIRED, OPTIONAL, USAGE)


def test_required_and_optional_keys() -> None:
    args = parse("study=studies/quick", "out=export", "budget.seconds=60")
    assert args == {"study": "studies/quick", "out": "export", "budget.seconds": 60}


def test_missing_required_keys_list_key_and_usage() -> None:
    with pytest.raises(ValueError, match=r"^missing study=\.\.\., out=\.\.\.; usage: python -m ensembling\.select"):
        parse()
    with pytest.raises(ValueError, match=r"^missing out=\.\.\.; usage: "):
        parse("study=s")


def test_unknown_key_suggests_the_nearest() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'budget\.second'; did you mean 'budget\.seconds'\?.*usage: "):
        parse("study=s", "out=o", "budget.second=60")


def test_a_word_without_equals_sign_shows_the_usage() -> None:
    with pytest.raises(ValueError, match=r"argument 'study' must look like key=value; usage: python -m"):
        parse("study")
    with pytest.raises(ValueError, match=r"argument '=3' must look like key=value"):
        parse("=3")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("60", 60),
        ("1.5", 1.5),
        ("1e-3", 0.001),
        ("2E4", 20000.0),
        ("-1.0e-2", -0.01),
        ("null", None),
        ("", None),
        ("cpu", "cpu"),
    ],
)
def test_optional_values_are_read_as_yaml(text: str, value: object) -> None:
    got = parse("study=s", "out=o", f"device={text}")["device"]
    assert got == value
    assert type(got) is type(value)


def test_required_values_stay_text() -> None:
    # A path is a path even when it reads as a number.
    assert parse("study=2024", "out=1e-3")["study"] == "2024"
    assert parse("study=2024", "out=1e-3")["out"] == "1e-3"


def test_read_yaml_keeps_text_and_nested_values() -> None:
    assert read_yaml("[1e-4, 2, resnet18]") == [0.0001, 2, "resnet18"]
    assert read_yaml("1e") == "1e"
    assert read_yaml("e5") == "e5"
