"""``python -m trainables.inspect data=FORMAT data.root=DIR [data.<option>=...] [out=data.png] [images=12] [seed=0] [overwrite=false]``

Prints a table of the data set (images, images per class, empty images, mask area quantiles per
class, image sizes) and writes a PNG grid of images with their decoded masks drawn over them. ``out``
is checked before the data is read (``core.targets``): a new file, or a picture this command
drew before (its PNG mark); another file only with ``overwrite=true``, and never one of the data's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.config import read_yaml, split_words
from core.data.config import DataConfig, fold_data_options, is_data_option
from core.errors import exit_status
from core.help import answer_early, format_keys, show_help, wants_help
from core.png_mark import marked_by
from core.targets import check_file_target

OWN = {"out": "data.png", "images": 12, "seed": 0, "storage": "studies", "overwrite": False}
WRITER = "trainables.inspect"
SHARED = {"data.format", "data.root", "data.limit", "data.on_error", "data.task"}
HELP = f"""usage: python -m trainables.inspect data=FORMAT data.root=DIR [data.<option>=...] [out=data.png] [images=12] [seed=0] [overwrite=false]

Print a table of the data set (images per class, empty images, mask areas, image sizes) and draw a grid of
images with their decoded masks; python -m trainables.data lists the formats and their data.<option> keys.

{format_keys([
    ("data", "synthetic", "the data format (data.format)"),
    ("data.root", "null", "the data folder (null: the format's default; only synthetic has one)"),
    ("data.on_error", "stop", "skip: leave bad rows out"),
    ("data.task", "auto", "presence: read a segmentation set's masks as labels"),
    ("data.<option>", "", "the format's own options (python -m trainables.data)"),
    ("out", "data.png", "the PNG grid to write: a new file, or a picture this command drew before"),
    ("overwrite", "false", "true: replace another file at out= (never one of the data's)"),
    ("images", "12", "images drawn in the grid"),
    ("seed", "0", "which images are drawn"),
    ("storage", "studies", "where a generated (synthetic) data set is written"),
])}
"""


def split_keys(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The data keys and this command's own keys; -h/--help prints the help, an unknown key is an error."""
    if wants_help(argv):
        show_help(HELP)
    values = {("data.format" if k == "data" else k): v for k, v in split_words(argv, " (e.g. data=folder data.root=DIR)")}
    own = {k: values.pop(k) for k in list(values) if k in OWN}
    bad = [k for k in values if k not in SHARED and not is_data_option(k)]
    if bad:
        raise ValueError(f"unknown key {bad[0]!r}; valid keys: data, data.root, data.task, data.<option>, {', '.join(OWN)}")
    return values, own


if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    answer_early(sys.argv[1:], split_keys)

import core.data  # noqa: F401  (registers the formats)
from core.data.inspect import data_picture, format_table, summary, write_picture
from core.data.study import load_data, resolve_root


def inspect(argv: list[str]) -> Path:
    values, own = split_keys(argv)
    flat = fold_data_options({k: (v if k == "data.root" else read_yaml(v, f"{k}={v}")) for k, v in values.items()})
    config = DataConfig(
        format=str(flat.get("data.format", "synthetic")),
        root=flat.get("data.root"),
        on_error=str(flat.get("data.on_error", "stop")),
        task=str(flat.get("data.task", "auto")),
        options=flat.get("data.options") or {},
    )
    config.root = resolve_root(config, own.get("storage", OWN["storage"]))
    out = check_out(str(own.get("out", OWN["out"])), config, own.get("overwrite", "false"))
    data = load_data(config)
    print(format_table(data, summary(data, sample=400)))
    write_picture(out, data_picture(data, int(own.get("images", OWN["images"])), int(own.get("seed", OWN["seed"]))))
    print(f"Wrote {out}: {min(int(own.get('images', 12)), len(data))} images with their masks drawn")
    return out


def check_out(out: str, config: DataConfig, overwrite: str) -> Path:
    """``out=`` before the data is read: new, or a picture of ours, or (overwrite=true) no file of the data's."""
    allowed = read_yaml(overwrite)
    if not isinstance(allowed, bool):
        raise ValueError(f"overwrite must be true or false, got {overwrite!r}")
    root = Path(str(config.root))
    inputs: dict[str, Path | None] = {"data folder (data.root)": root}
    for option, value in config.options.items():  # a data file named by an option (data.csv=labels.csv) may sit outside the root
        if isinstance(value, str) and value and (root / value).exists():
            inputs[f"data.{option} file"] = root / value
    return check_file_target(out, "out", inputs, lambda p: marked_by(p) == WRITER, f"no {WRITER} mark in it", allowed, "data.png")


def main(argv: list[str]) -> int:
    return exit_status(lambda: inspect(argv) and None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
