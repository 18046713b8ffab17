"""``python -m trainables.inspect data=FORMAT data.root=DIR [data.<option>=...] [out=data.png] [images=12] [seed=0]``

Prints a table of the data set (images, images per class, empty images, mask area quantiles per
class, image sizes) and writes a PNG grid of images with their decoded masks drawn over them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trainables.data  # noqa: F401  (registers the formats)
from trainables.config import read_yaml, split_words
from trainables.data.inspect import data_picture, format_table, summary, write_picture
from trainables.data.study import DataConfig, fold_data_options, is_data_option, load_data, resolve_root
from trainables.errors import exit_status

OWN = {"out": "data.png", "images": 12, "seed": 0, "storage": "studies"}
SHARED = {"data.format", "data.root", "data.limit", "data.on_error", "data.task"}


def inspect(argv: list[str]) -> Path:
    values = {("data.format" if k == "data" else k): v for k, v in split_words(argv, " (e.g. data=folder data.root=DIR)")}
    own = {k: values.pop(k) for k in list(values) if k in OWN}
    bad = [k for k in values if k not in SHARED and not is_data_option(k)]
    if bad:
        raise ValueError(f"unknown key {bad[0]!r}; valid keys: data, data.root, data.task, data.<option>, {', '.join(OWN)}")
    flat = fold_data_options({k: (v if k == "data.root" else read_yaml(v, f"{k}={v}")) for k, v in values.items()})
    config = DataConfig(
        format=str(flat.get("data.format", "synthetic")),
        root=flat.get("data.root"),
        on_error=str(flat.get("data.on_error", "stop")),
        task=str(flat.get("data.task", "auto")),
        options=flat.get("data.options") or {},
    )
    config.root = resolve_root(config, own.get("storage", OWN["storage"]))
    data = load_data(config)
    print(format_table(data, summary(data, sample=400)))
    out = Path(own.get("out", OWN["out"]))
    write_picture(out, data_picture(data, int(own.get("images", OWN["images"])), int(own.get("seed", OWN["seed"]))))
    print(f"Wrote {out}: {min(int(own.get('images', 12)), len(data))} images with their masks drawn")
    return out


def main(argv: list[str]) -> int:
    return exit_status(lambda: inspect(argv) and None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
