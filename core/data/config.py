"""The data keys of a search or an inspection, checked before any file is read or written.

``DataConfig`` holds the keys every format shares and the format's own ``data.<key>`` options; the
checks here need no pandas, torch or scikit-learn, so a command can answer a bad key at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.contract import CLASSIFICATION
from core.data.formats import DataFormat, get_format
from core.data.problems import ON_ERROR


@dataclass(init=False)
class DataConfig:
    """The data keys every format shares, plus ``options``: the format's own ``data.<key>`` values.

    ``DataConfig(format="synthetic", images=16)`` and a study.yaml written before options had their
    own section both work: a keyword that is not a shared key is a format option.
    """

    format: str = "synthetic"  # a registered data format (python -m trainables.data lists them)
    root: str | None = None  # None: the format's default folder (only synthetic has one)
    limit: int = 0  # use a random subset of this many training images (0 = all), for fast screening
    on_error: str = "stop"  # "skip": leave bad rows out, list them in the study's report file
    # "auto": what the format holds (masks, or labels); "presence": a segmentation set read as multi-label
    # classification, label k = the image has any pixel of class k (same images and folds as its masks' study)
    task: str = "auto"
    # false: a set where no image has any labelled pixel (or label) is refused: it would train on nothing
    # and score a perfect 1.0; true allows it (e.g. to check a pipeline on clean images only)
    allow_empty: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        format: str = "synthetic",
        root: str | None = None,
        limit: int = 0,
        on_error: str = "stop",
        task: str = "auto",
        allow_empty: bool = False,
        options: dict[str, Any] | None = None,
        **more: Any,
    ) -> None:
        self.format, self.root, self.limit, self.on_error, self.task = format, root, limit, on_error, task
        self.allow_empty = allow_empty
        self.options = {**(options or {}), **more}


SHARED_KEYS = tuple(f.name for f in dataclasses.fields(DataConfig))
TASKS = ("auto", "presence")


def fold_data_options(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat ``data.<key>`` words that are no shared key into ``data.options`` (a format's options)."""
    out = {k: v for k, v in flat.items() if not is_data_option(k)}
    options = dict(out.pop("data.options", None) or {})
    options.update({k.split(".", 1)[1]: v for k, v in flat.items() if is_data_option(k)})
    if options:
        out["data.options"] = options
    return out


def is_data_option(key: str) -> bool:
    section, _, name = key.partition(".")
    return section == "data" and bool(name) and "." not in name and name not in SHARED_KEYS


def data_format(config: DataConfig) -> tuple[DataFormat, Any]:
    """The format and its typed options; an unknown format or option is a one-line error."""
    fmt = get_format(config.format)
    if isinstance(config.limit, bool) or not isinstance(config.limit, int) or config.limit < 0:
        raise ValueError(f"data.limit must be an integer >= 0 (0: every image), got {config.limit!r}")
    if config.on_error not in ON_ERROR:
        raise ValueError(f"data.on_error must be one of {', '.join(ON_ERROR)}, got {config.on_error!r}")
    if config.task not in TASKS:
        raise ValueError(f"data.task must be one of {', '.join(TASKS)}, got {config.task!r}")
    if config.task == "presence" and fmt.kind != "segmentation":
        raise ValueError(f"data.task=presence reads a segmentation set's masks as labels; data.format={fmt.name} has labels already (leave data.task out)")
    return fmt, fmt.parse_options(config.options)


def check_data_config(config: DataConfig) -> None:
    """Everything about the data keys that can be checked before reading a file."""
    fmt, options = data_format(config)
    if config.root is None and fmt.default_root(Path("."), options) is None:
        raise ValueError(f"data.format={config.format} reads a folder: name it with data.root=PATH")


def data_kind(config: DataConfig) -> tuple[str, bool]:
    """(``segmentation`` or ``classification``, multi-label) of a data config, read from its format and
    options without opening a file."""
    fmt, options = data_format(config)
    if config.task == "presence":
        return CLASSIFICATION, True
    return fmt.kind, bool(getattr(options, "multi_label", False))


def study_metric(config: DataConfig, metric: str | None) -> str:
    """The metric a study of this data is scored by: the one named, checked against the data's kind, or
    the kind's default (dice_pairs for masks; accuracy single-label, macro_f1 multi-label)."""
    from core.class_metrics import CLASS_METRICS, default_metric, is_class_metric
    from core.metrics import DEFAULT_METRIC, get_metric, list_metrics

    kind, multi = data_kind(config)
    if kind == CLASSIFICATION:
        if metric is None:
            return default_metric(multi)
        if not is_class_metric(metric):
            raise ValueError(
                f"metric={metric}: data.format={config.format} holds image labels; use one of {', '.join(CLASS_METRICS.names())}"
                + ("" if metric in list_metrics() else f" (masks: {', '.join(list_metrics())})")
            )
        return metric
    if metric is None:
        return DEFAULT_METRIC
    if is_class_metric(metric):
        raise ValueError(
            f"metric={metric} scores image labels, but data.format={config.format} holds masks; use one of "
            f"{', '.join(list_metrics())}, or data.task=presence to classify which classes each image has"
        )
    get_metric(metric)  # an unknown name lists the registered metrics
    return metric


def resolve_root(config: DataConfig, storage: str | Path) -> str:
    """data.root made absolute, or the format's default folder under ``storage``."""
    fmt, options = data_format(config)
    if config.root is not None:
        root = Path(config.root).expanduser().resolve()
        generates = fmt.default_root(root, options) is not None  # synthetic: data.root is where it is generated
        if (root.exists() or not generates) and not root.is_dir():
            raise FileNotFoundError(f"data.root={config.root}: {'not a folder' if root.exists() else 'no such folder'}; name the data folder of data.format={config.format}")
        return str(root)
    root = fmt.default_root(Path(storage).expanduser().resolve(), options)
    if root is None:
        raise ValueError(f"data.format={config.format} reads a folder: name it with data.root=PATH")
    return str(root)
