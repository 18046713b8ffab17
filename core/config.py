"""Typed trial configuration, built once from the flat ``section.key`` dict that a search samples.

Search spaces and command lines speak in dotted keys (``model.encoder``, ``train.lr``); a trial
turns them into these dataclasses at its boundary, and an unknown key is an error that names the
nearest valid one, never a silently ignored typo.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class ModelConfig:
    family: str = "smp"  # smp (segmentation masks) or timm (image labels); see core.models
    arch: str = "Unet"  # a segmentation-models-pytorch architecture
    encoder: str = "resnet18"  # an smp encoder or tu-<timm model>; the timm model for family=timm
    encoder_depth: int = 5  # encoder stages (3..5); fewer is faster and coarser
    decoder_channels: list[int] | None = None  # Unet/Unet++/MAnet widths, one per stage; None: smp's
    # None trains from scratch; a path names a local weights file (.safetensors or .pth) for the encoder;
    # a hub name (imagenet) is downloaded, only where a hub can be reached.
    encoder_weights: str | None = None


@dataclass
class TrainConfig:
    epochs: int = 2  # epochs of every fold
    lr: float = 1e-3  # peak learning rate of the schedule
    weight_decay: float = 1e-4  # the optimizer's weight decay
    batch_size: int = 8  # images per optimizer step (times train.accumulate)
    # A small data set trains with smaller batches (never below 2) so that each fold's epoch takes at least
    # this many optimizer steps: a space sized in epochs for a few hundred images still learns on ninety.
    min_steps: int = 0
    scale: float = 0.5  # training image side relative to the data's, rounded to a multiple of 32
    loss: str = "bce_dice"  # a registered loss or a sum such as focal+dice (trainables.losses)
    class_weights: list[float] | None = None  # one weight per class for the loss; None: equal
    # Classification (model.family=timm): the loss is cross-entropy (softmax) or, multi-label, BCE per class
    # whatever train.loss says; the targets are smoothed by this much (0.1: 0.9 + 0.1/K on the true class).
    label_smoothing: float = 0.0
    mixup: float = 0.0  # classification: mixup's Beta(a, a) alpha; 0 = off (both > 0: one or the other per batch)
    cutmix: float = 0.0  # classification: cutmix's Beta(a, a) alpha; 0 = off
    optimizer: str = "adamw"  # adamw, radam, sgd (Nesterov when momentum > 0)
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"  # cosine, one_cycle, cyclic, constant (per optimizer step)
    warmup_epochs: float = 0.0  # linear warm-up before the schedule (at most half of train.epochs)
    cycles: int = 1  # cyclic: restarts; each cycle's low point is written as a snapshot candidate
    ema: float = 0.0  # EMA decay per step (e.g. 0.99); 0 keeps no average; > 0 writes snapshot "ema"
    augment: str = "flips"  # a preset: none, flips, light, medium, heavy
    augment_ops: list[Any] | None = None  # a free composition [{Transform: {arg: v}}], replaces the preset
    folds: list[int] | None = None  # None trains every fold of the study
    precision: str = "auto"  # auto (bf16 on a GPU that has it, else fp16 + scaler; fp32 on CPU), bf16, fp16, fp32
    channels_last: bool = True  # channels-last memory format for training (faster on a GPU and on a CPU)
    compile: bool = False  # torch.compile the training forward pass
    accumulate: int = 1  # gradient accumulation: optimizer step every N batches
    # Validate (and report a score) every N epochs, and always at the last epoch and at each snapshot.
    # On a CPU validation costs about as much as training: N = the scheduler's grace period halves an epoch.
    val_every: int = 1
    # Seconds from the first epoch's start to the last's end (0: train.epochs as written). With a limit, train.epochs
    # is the plan: after every epoch the trial re-plans the epochs that end in time at its measured pace and
    # stretches or shortens its schedule to them (trainables/clock.py); the budget planner gives its finalists one.
    time_limit: float = 0.0
    num_workers: int = 0  # DataLoader worker processes per fold
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    # A folder of extra training targets, <study>/extra/<name>/ (ensembling.pseudo, ensembling.distill): each fold
    # also trains on its extra images and soft targets, made by fold-k models only; validation is unchanged.
    extra: str | None = None


@dataclass
class TrialConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tta: str = "hflip"  # test-time views averaged for OOF and submission: none, hflip, hvflip
    seed: int = 0  # the trial's seed (weights, augmentation, batches)


def flat_keys(cls: type) -> dict[str, Any]:
    """Every dotted key of a (nested) config dataclass with its type annotation."""
    hints = typing.get_type_hints(cls)
    keys: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys.update({f"{f.name}.{k}": v for k, v in flat_keys(hint).items()})
        else:
            keys[f.name] = hint
    return keys


def unknown_key_error(key: str, valid: list[str], where: str = "") -> ValueError:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(sorted(valid))}"
    return ValueError(f"{where}unknown key {key!r}{hint}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check a value against its annotation, turning ints into floats where a float is expected."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `X | None`; list[int] has args too
        hint = next(a for a in args if a is not type(None))
        if value is None and type(None) in args:
            return None
    if value is None:
        raise ValueError(f"{key} must not be empty (null)")
    return _check_type(key, value, hint)


def _check_type(key: str, value: Any, hint: Any) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if origin is list and isinstance(value, list | tuple):
        (item,) = typing.get_args(hint) or (Any,)
        return [_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{key} must be {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return f"a list of {getattr(item, '__name__', item)}"
    return getattr(hint, "__name__", str(hint))


def from_flat(cls: type, flat: dict[str, Any], where: str = "") -> Any:
    """Build a nested config dataclass from dotted keys; unknown keys and wrong types are errors."""
    keys = flat_keys(cls)
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in keys:
            raise unknown_key_error(key, list(keys), where)
        section, _, name = key.rpartition(".")
        try:
            nested.setdefault(section, {})[name] = _coerce(key, value, keys[key])
        except ValueError as error:
            raise ValueError(f"{where}{error}") from None
    return _build(cls, nested, "")


def _build(cls: type, nested: dict[str, dict[str, Any]], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], nested, f"{path}.")
        elif f.name in nested.get(prefix.rstrip("."), {}):
            kwargs[f.name] = nested[prefix.rstrip(".")][f.name]
    return cls(**kwargs)


def to_flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`from_flat`: a config dataclass as dotted keys."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(to_flat(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus floats written without a dot (``1e-4``), which YAML 1.1 reads as text."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str, where: str = "") -> Any:
    """YAML as a user means it: ``lr=1e-4`` is the float 0.0001, not the string '1e-4'.

    Text that is not YAML is a ValueError that begins with ``where`` (a file, or a key) and its line."""
    try:
        return yaml.load(text, Loader=_Loader)  # safe: a SafeLoader subclass
    except yaml.YAMLError as error:
        lines = "\n" in text.strip()  # a file, not one value of the command line
        mark, start = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
        at = f":{mark.line + 1}" if mark is not None and lines else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        column = f" (column {mark.column + 1})" if mark is not None else ""
        context = getattr(error, "context", None)
        begun = f", {context} begun on line {start.line + 1}" if context and start is not None and lines else ""
        raise ValueError(f"{where}{at}: not valid YAML: {problem}{column}{begun}") from None


def split_words(argv: list[str], hint: str = "") -> list[tuple[str, str]]:
    """``key=value`` command-line words as (key, raw value) pairs; any other word is an error."""
    pairs = []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {word!r} must look like key=value{hint}")
        pairs.append((key, value))
    return pairs


def key_help(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, meaning) of every key of a config dataclass, for ``--help``: the meaning is
    the comment beside the field, or the comment lines right above it, in the class's source."""
    comments = _field_comments(cls)
    hints = typing.get_type_hints(cls)
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows += key_help(hints[f.name], f"{prefix}{f.name}.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        rows.append((f"{prefix}{f.name}", None if default is dataclasses.MISSING else default, comments.get(f.name, "")))
    return rows


def _field_comments(cls: type) -> dict[str, str]:
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):  # no source (a frozen build): no meanings
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("# "))
            continue
        match = re.match(r"(\w+): [^#]*?(?:#\s*(.*))?$", text)
        if match and not text.startswith(("def ", "return", "self.")):
            out.setdefault(match.group(1), match.group(2) or " ".join(above))
        above = []
    return out
