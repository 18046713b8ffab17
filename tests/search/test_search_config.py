"""From a space file and ``key=value`` overrides to a validated plan; errors name the file and key."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml

from core.config import TrialConfig, flat_keys
from search.config import Plan, load_plan, parse_overrides, resolved
from search.spaces import list_spaces, space_path


def write_space(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_file(path: Path, *argv: str) -> Plan:
    return load_plan([f"space={path}", *argv])


def at(path: Path) -> str:
    """The start of an error about a key of this space file."""
    return re.escape(f"{path.resolve()}: search: ")


def _space_argv(space: str) -> list[str]:
    """A built-in space on the default synthetic data: a classifier's space reads it as which classes
    each image has (data.task=presence), as the classifier gate of a segmentation study does."""
    classifier = yaml.safe_load(space_path(space).read_text())["settings"].get("model.family") == "timm"
    return [f"space={space}", *(["data.task=presence"] if classifier else [])]


@pytest.mark.parametrize("space", list_spaces())
def test_every_built_in_space_loads(space: str) -> None:
    plan = load_plan(_space_argv(space))
    assert Path(plan.config.space).name == f"{space}.yaml"
    assert plan.config.study_name == space
    assert plan.config.description
    assert plan.search
    assert not set(plan.search) & set(plan.fixed)


@pytest.mark.parametrize("space", list_spaces())
def test_built_in_settings_land_in_the_config_or_as_fixed_trial_keys(space: str) -> None:
    raw = yaml.safe_load(space_path(space).read_text())
    plan = load_plan(_space_argv(space))
    trial_keys = flat_keys(TrialConfig)
    for key, value in raw["settings"].items():
        if key in trial_keys:
            assert plan.fixed[key] == value
        else:
            assert functools.reduce(getattr, key.split("."), plan.config) == value
    assert set(plan.fixed) <= set(raw["settings"])
    assert plan.search == {k: v for k, v in raw["search"].items() if k not in raw["settings"]}


def test_quick_space_defaults() -> None:
    plan = load_plan([])
    assert plan.config.study_name == "quick"
    assert plan.config.data.format == "synthetic"
    assert set(plan.search) == {"train.lr", "train.loss"}
    assert plan.search["train.lr"] == {"loguniform": [1.0e-3, 4.0e-3]}
    assert plan.fixed["train.warmup_epochs"] == 1 and plan.fixed["train.epochs"] == 5
    assert plan.config.trials == 2 and plan.config.scheduler.grace_period >= plan.fixed["train.epochs"]  # no pruning on a CPU


def test_run_overrides_land_in_the_config() -> None:
    plan = load_plan(
        ["space=quick", "trials=3", "folds=3", "storage=/tmp/s", "ray.cpus_per_trial=2", "mlflow.experiment=e"]
    )
    assert plan.config.trials == 3
    assert plan.config.folds == 3
    assert plan.config.storage == "/tmp/s"
    assert plan.config.ray.cpus_per_trial == 2.0
    assert isinstance(plan.config.ray.cpus_per_trial, float)
    assert plan.config.mlflow.experiment == "e"
    assert "trials" not in plan.fixed


def test_trial_overrides_become_fixed_keys() -> None:
    plan = load_plan(["train.epochs=1", "train.lr=1e-4", "tta=none"])
    assert plan.fixed["train.epochs"] == 1
    assert plan.fixed["train.lr"] == pytest.approx(1.0e-4)  # YAML 1.1 would read 1e-4 as text
    assert plan.fixed["tta"] == "none"
    assert "train.lr" not in plan.search  # a fixed value wins over a searched one
    assert "train.loss" in plan.search


def test_a_fixed_override_removes_the_key_from_search() -> None:
    plan = load_plan(["space=encoders", "model.encoder=resnet34"])
    assert plan.fixed["model.encoder"] == "resnet34"
    assert "model.encoder" not in plan.search
    assert set(plan.search) == {"train.lr", "train.loss"}


def test_settings_in_the_file_also_win_over_search(tmp_path: Path) -> None:
    path = write_space(
        tmp_path,
        "settings:\n  model.arch: FPN\nsearch:\n  model.arch: {choice: [Unet, FPN]}\n  train.lr: {uniform: [1.0e-4, 1.0e-3]}\n",
    )
    plan = load_file(path)
    assert plan.fixed == {"model.arch": "FPN"}
    assert set(plan.search) == {"train.lr"}


def test_data_alias_sets_the_format(tmp_path: Path) -> None:
    plan = load_plan(["data=severstal", f"data.root={tmp_path}"])
    assert plan.config.data.format == "severstal"
    assert plan.config.data.root == str(tmp_path)
    assert parse_overrides(["data=severstal"]) == {"data.format": "severstal"}


def test_an_unknown_data_format_lists_the_formats() -> None:
    with pytest.raises(ValueError, match=r"Unknown data format 'severstl'\. Available options are: .*severstal"):
        load_plan(["data=severstl"])


def test_a_data_folder_is_needed_for_real_data() -> None:
    with pytest.raises(ValueError, match=r"data\.format=severstal reads a folder: name it with data\.root=PATH"):
        load_plan(["data=severstal"])


@pytest.mark.parametrize(
    ("word", "near"),
    [("trails=3", "trials"), ("model.encodr=x", "model.encoder"), ("train.epoch=1", "train.epochs")],
)
def test_unknown_key_suggests_the_nearest(word: str, near: str) -> None:
    key = word.partition("=")[0]
    with pytest.raises(
        ValueError, match=rf"^command line: unknown key '{re.escape(key)}'; did you mean '{re.escape(near)}'\?"
    ):
        load_plan([word])


def test_unknown_space_suggests_the_nearest() -> None:
    with pytest.raises(ValueError, match=r"unknown space 'quik'; did you mean 'quick'\?"):
        load_plan(["space=quik"])


def test_overrides_must_be_key_value() -> None:
    with pytest.raises(ValueError, match=r"argument 'trials' must look like key=value"):
        load_plan(["trials"])


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("trials=0", r"trials must be >= 1, got 0"),
        ("folds=1", r"folds must be >= 2 for out-of-fold predictions \(or 1 with oof_share below 1: a holdout\), got 1"),
        ("folds=1 oof_share=1", r"folds must be >= 2 .* got 1"),
        ("oof_share=0", r"oof_share must be in \(0, 1\] \(the share of the images validated out of fold\), got 0"),
        ("oof_scale=0", r"oof_scale must be in \(0, 1\], got 0"),
        ("trials=many", r"^command line: trials must be int, got 'many'"),
        ("train.epochs=1.5", r"^command line: train\.epochs must be int, got 1\.5"),
    ],
)
def test_bad_values_are_errors(word: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_plan(word.split())


@pytest.mark.parametrize("words", ["folds=1 oof_share=0.1", "folds=1 oof_share=0.1 stage=both", "time_budget=10m folds=1 oof_share=0.1"])
def test_a_holdout_is_one_fold_of_a_share_of_the_images_and_its_screen_is_that_fold(words: str) -> None:
    plan = load_plan(words.split())
    assert (plan.config.folds, plan.config.oof_share, plan.config.screen.folds) == (1, 0.1, [0])


def test_a_space_given_as_a_path(tmp_path: Path) -> None:
    path = write_space(
        tmp_path,
        "description: Does the loss matter?\n"
        "settings:\n  trials: 2\n  train.epochs: 1\n"
        "search:\n  train.loss: {choice: [bce, bce_dice]}\n  train.lr: {loguniform: [1e-4, 1e-3]}\n"
        "  train.batch_size: {randint: [2, 4]}\n",
    )
    plan = load_file(path, "seed=7")
    assert plan.config.space == str(path.resolve())
    assert plan.config.study_name == "mine"
    assert plan.config.description == "Does the loss matter?"
    assert (plan.config.trials, plan.config.seed) == (2, 7)
    assert plan.fixed == {"train.epochs": 1}
    assert plan.search["train.lr"] == {"loguniform": [1.0e-4, 1.0e-3]}  # floats without a dot, too
    record = resolved(plan)
    assert record["study"] == "mine"
    assert record["trial"] == {"train.epochs": 1}
    assert record["search"] == plan.search
    assert record["trials"] == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("train.lr: {loguniform: [0, 1]}", r"train\.lr: loguniform: `low > 0` must hold"),
        ("train.lr: {uniform: [3, 1]}", r"train\.lr: uniform: `low <= high` must hold, but got \(low=3, high=1\)"),
        ("model.arch: {choice: []}", r"model\.arch: choice takes a non-empty list"),
        (
            "train.lr: {normal: [0, 1]}",
            r"train\.lr: Unknown distribution 'normal'\. Available options are: choice, loguniform, randint, uniform",
        ),
        ("trials: {choice: [1, 2]}", r"unknown key 'trials'"),
    ],
)
def test_a_bad_distribution_names_the_file_and_key(tmp_path: Path, line: str, message: str) -> None:
    path = write_space(tmp_path, f"search:\n  {line}\n")
    with pytest.raises(ValueError, match=at(path) + message):
        load_file(path)


def test_a_bad_model_name_in_a_choice_fails_at_load_time(tmp_path: Path) -> None:
    path = write_space(tmp_path, "search:\n  model.encoder: {choice: [resnet18, resnet19]}\n")
    pattern = at(path) + r"model\.encoder: Unknown model\.encoder 'resnet19'\. Available options are: .*resnet18"
    with pytest.raises(ValueError, match=pattern):
        load_file(path)


def test_an_int_key_cannot_be_searched_as_floats(tmp_path: Path) -> None:
    # Tune samples floats from uniform even between integer bounds; a trial would fail on 1.7 epochs.
    path = write_space(tmp_path, "search:\n  train.epochs: {uniform: [1, 3]}\n")
    with pytest.raises(ValueError, match=at(path) + r"train\.epochs: .*train\.epochs must be int, got 1\.0"):
        load_file(path)
    plan = load_file(write_space(tmp_path, "search:\n  train.epochs: {randint: [1, 3]}\n", "ok.yaml"))
    assert plan.search == {"train.epochs": {"randint": [1, 3]}}


def test_a_bad_section_names_the_file(tmp_path: Path) -> None:
    path = write_space(tmp_path, "serach:\n  train.lr: {uniform: [0.1, 0.2]}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path.resolve()}: unknown key 'serach'; did you mean 'search'?")):
        load_file(path)
    path = write_space(tmp_path, "- train.lr\n", "list.yaml")
    with pytest.raises(
        ValueError, match=r"list\.yaml: a space is a mapping with the keys description, settings, search"
    ):
        load_file(path)
    path = write_space(tmp_path, "search: [train.lr]\n", "flat.yaml")
    with pytest.raises(ValueError, match=r"flat\.yaml: search must map dotted keys to values"):
        load_file(path)


def test_an_unknown_key_in_the_settings_names_the_file(tmp_path: Path) -> None:
    path = write_space(tmp_path, "settings:\n  train.lrr: 0.1\n")
    with pytest.raises(
        ValueError, match=re.escape(f"{path.resolve()}: settings: unknown key 'train.lrr'; did you mean 'train.lr'?")
    ):
        load_file(path)


@pytest.mark.parametrize("name", ["2024-06-01", "001", "7"])
def test_text_keys_keep_the_words_given(name: str) -> None:
    # YAML would read these as a date and ints; a study or experiment name is text.
    plan = load_plan([f"study={name}", f"mlflow.experiment={name}"])
    assert plan.config.study_name == name
    assert plan.config.mlflow.experiment == name
    assert load_plan(["study=null"]).config.study_name == "quick"


def test_parse_overrides_reads_yaml_values() -> None:
    assert parse_overrides(["trials=3", "train.lr=1e-4", "ray.address=", "tta=hflip", "train.folds=[0, 1]"]) == {
        "trials": 3,
        "train.lr": 1.0e-4,
        "ray.address": None,
        "tta": "hflip",
        "train.folds": [0, 1],
    }


def test_a_bad_value_in_the_settings_names_the_file(tmp_path: Path) -> None:
    path = write_space(tmp_path, "settings:\n  folds: five\n")
    with pytest.raises(ValueError, match=re.escape(f"{path.resolve()}: settings: folds must be int, got 'five'")):
        load_file(path)
    path = write_space(tmp_path, "settings:\n  train.batch_size: 2.5\n", "trial.yaml")
    with pytest.raises(
        ValueError, match=re.escape(f"{path.resolve()}: settings: train.batch_size must be int, got 2.5")
    ):
        load_file(path)


def test_seed_is_the_search_seed() -> None:
    plan = load_plan(["seed=3"])
    assert plan.config.seed == 3
    assert "seed" not in plan.fixed


def test_the_metric_is_a_study_setting_checked_against_the_registry() -> None:
    assert load_plan(["metric=iou_dataset"]).config.metric == "iou_dataset"
    assert load_plan([]).config.metric == "dice_pairs"
    with pytest.raises(ValueError, match=r"Unknown metric .dice.\. Available options are: dice_image, dice_pairs, iou_dataset"):
        load_plan(["metric=dice"])
