"""The search's command line before any heavy import: ``--help`` and the words that cannot be a plan.

``python -m search.run --help`` lists every key with the default of the space named (``space=NAME``,
else ``quick``): the space's settings over the built-in defaults, the keys it searches with their
distributions, and the options of its data format. A typo, a bad type, a value out of range or a
broken space file is answered here too, in well under a second, before torch, Ray and MLflow are imported.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from core.config import TrialConfig, key_help
from core.help import HELP_WORDS, default_text, format_keys, show_help, wants_help
from search.config import ALIASES, Plan, SearchConfig, check_values, read_plan

USAGE = "python -m search.run [space=NAME|PATH.yaml] [key=value ...]"
ABOUT = (
    "Search a space: prepare the study (data, fixed folds, OOF truth), run the trials Optuna proposes and ASHA\n"
    "prunes on Ray, record them in MLflow, and print the best with the next commands. A key given here wins\n"
    "over the space's settings; a trial key given here is fixed instead of searched."
)


def parse_command(argv: list[str]) -> Plan:
    """The plan the words name, checked as far as it can be without heavy imports or reading data
    (search.config.load_plan checks the rest); ``--help`` prints the help."""
    if wants_help(argv):
        show_help(search_help([word for word in argv if word not in HELP_WORDS]))
    plan = read_plan(argv)
    check_values(copy.deepcopy(plan.config))  # it fills in defaults (the metric): the plan stays as given
    return plan


def search_help(argv: list[str]) -> str:
    """The usage and every key with its default under this command line's space and overrides."""
    plan = read_plan(argv)
    config = plan.config
    run_rows = [(key, _shown(_value(config, key)), meaning) for key, _, meaning in key_help(SearchConfig)
                if key not in {"data.options", "description"}]
    run_keys = {key for key, _, _ in key_help(SearchConfig)}  # seed is the search's (trials derive theirs)
    trial_rows = [(key, _shown(plan.fixed.get(key, default)), meaning) for key, default, meaning in key_help(TrialConfig)
                  if key not in plan.search and key not in run_keys]
    searched = [(key, _shown(spec), "searched by the space (fix it with key=value)") for key, spec in plan.search.items()]
    options = _data_options(config)
    space = Path(config.space)
    parts = [
        f"usage: {USAGE}",
        ABOUT,
        f"Defaults below are those of space={space.stem} ({space}){_first_sentence(config.description)}.\n"
        f"Spaces: {', '.join(_spaces())}; `space=NAME --help` shows another's. Aliases: "
        + ", ".join(f"{k}= is {v}=" for k, v in ALIASES.items()),
        format_keys(run_rows, "run keys"),
        format_keys(trial_rows, "trial keys (fixed for every trial)"),
        format_keys(searched, f"trial keys searched by space={space.stem}"),
        format_keys(options, f"options of data.format={config.data.format} (python -m trainables.data lists every format)"),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _first_sentence(text: str) -> str:
    sentence = text.strip().split(". ")[0].rstrip(".")
    return f": {sentence}" if sentence else ""


def _value(config: SearchConfig, key: str) -> Any:
    value: Any = config
    for name in key.split("."):
        value = getattr(value, name)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, dict):  # a distribution such as {loguniform: [0.0001, 0.003]}
        return ", ".join(f"{kind}: {default_text(args)}" for kind, args in value.items())
    return default_text(value)


def _data_options(config: SearchConfig) -> list[tuple[str, str, str]]:
    from core.data.formats import get_format

    given = config.data.options
    rows = []
    for key, default, meaning in get_format(config.data.format).describe_options():
        name = key.removeprefix("data.")
        rows.append((key, default_text(given[name]) if name in given else default.strip("'"), meaning))
    return rows


def _spaces() -> list[str]:
    from search.spaces import list_spaces

    return list_spaces()
