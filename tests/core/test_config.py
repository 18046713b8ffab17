from dataclasses import dataclass, field

import pytest

from core.config import ModelConfig, TrainConfig, TrialConfig, flat_keys, from_flat, to_flat


def test_defaults_from_an_empty_dict():
    assert from_flat(TrialConfig, {}) == TrialConfig()


def test_flat_keys_name_every_field_with_its_type():
    keys = flat_keys(TrialConfig)
    assert keys["model.encoder"] is str
    assert keys["train.lr"] is float
    assert keys["seed"] is int
    assert {"model.arch", "train.folds", "tta"} <= set(keys)
    assert not any(k in keys for k in ("model", "train"))


def test_from_flat_to_flat_round_trip():
    flat = {
        "model.arch": "FPN",
        "model.encoder": "resnet34",
        "model.encoder_depth": 3,
        "model.encoder_weights": "/weights/r34.safetensors",
        "train.epochs": 3,
        "train.lr": 3e-4,
        "train.folds": [0, 2],
        "train.scale": 0.25,
        "tta": "hvflip",
        "seed": 11,
    }
    config = from_flat(TrialConfig, flat)
    assert config.model == ModelConfig(
        arch="FPN", encoder="resnet34", encoder_depth=3, encoder_weights="/weights/r34.safetensors"
    )
    assert config.train.folds == [0, 2] and config.train.batch_size == TrainConfig().batch_size
    back = to_flat(config)
    assert {k: back[k] for k in flat} == flat
    assert set(back) == set(flat_keys(TrialConfig))
    assert from_flat(TrialConfig, back) == config


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(ValueError, match=r"^trial: unknown key 'model\.encodr'; did you mean 'model\.encoder'\?$"):
        from_flat(TrialConfig, {"model.encodr": "resnet18"}, where="trial: ")
    with pytest.raises(ValueError, match=r"unknown key 'qqq'; valid keys: model\.arch, model\.decoder_channels, model\.encoder, "):
        from_flat(TrialConfig, {"qqq": 0.1})
    with pytest.raises(ValueError, match=r"unknown key 'model'; did you mean 'model\.arch'\?"):
        from_flat(TrialConfig, {"model": {"arch": "Unet"}})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.epochs", 2.5, r"train\.epochs must be int, got 2\.5"),
        ("train.epochs", "2", r"train\.epochs must be int, got '2'"),
        ("train.epochs", True, r"train\.epochs must be int, got True"),  # a bool is no count
        ("train.lr", "1e-3", r"train\.lr must be float, got '1e-3'"),
        ("train.lr", False, r"train\.lr must be float, got False"),
        ("model.encoder", 18, r"model\.encoder must be str, got 18"),
        ("train.folds", 3, r"train\.folds must be a list of int, got 3"),
        ("train.folds", [0, "1"], r"train\.folds\[1\] must be int, got '1'"),
        ("tta", ["hflip"], r"tta must be str, got \['hflip'\]"),
    ],
)
def test_wrong_types_are_errors_naming_the_key(key, value, message):
    with pytest.raises(ValueError, match="^where: " + message):
        from_flat(TrialConfig, {key: value}, where="where: ")


def test_int_is_accepted_for_float_fields():
    config = from_flat(TrialConfig, {"train.lr": 1, "train.scale": 1})
    assert config.train.lr == 1.0 and type(config.train.lr) is float
    assert type(config.train.scale) is float


def test_tuple_is_accepted_for_list_fields():
    assert from_flat(TrialConfig, {"train.folds": (1, 3)}).train.folds == [1, 3]


def test_none_only_for_optional_fields():
    config = from_flat(TrialConfig, {"model.encoder_weights": None, "train.folds": None})
    assert config.model.encoder_weights is None and config.train.folds is None
    for key in ("model.encoder", "train.lr", "train.epochs", "seed", "tta"):
        with pytest.raises(ValueError, match=rf"^{key.replace('.', '[.]')} must not be empty \(null\)$"):
            from_flat(TrialConfig, {key: None})


@dataclass
class _Inner:
    sizes: list[int] = field(default_factory=lambda: [1])  # a list that is not Optional
    ratio: float = 0.5


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    name: str | None = "x"


def test_other_dataclasses_and_non_optional_lists():
    config = from_flat(_Outer, {"inner.sizes": [2, 3], "inner.ratio": 2, "name": None})
    assert config == _Outer(inner=_Inner(sizes=[2, 3], ratio=2.0), name=None)
    assert to_flat(config) == {"inner.sizes": [2, 3], "inner.ratio": 2.0, "name": None}
    with pytest.raises(ValueError, match=r"inner\.sizes must be a list of int, got 2"):
        from_flat(_Outer, {"inner.sizes": 2})
    with pytest.raises(ValueError, match=r"inner\.sizes must not be empty"):
        from_flat(_Outer, {"inner.sizes": None})
