"""Space files by name or path, and the distributions they may name, down to the Ray Tune domains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Uniform

from search.spaces import DOMAINS, check_domain, domain_values, list_spaces, space_path, to_tune

# One valid example per registered distribution, the Tune domain it makes, and its ends.
EXAMPLES = {
    "choice": ({"choice": ["a", "b"]}, Categorical, ["a", "b"]),
    "uniform": ({"uniform": [1, 3]}, Float, [1.0, 3.0]),
    "loguniform": ({"loguniform": [1.0e-4, 1.0e-2]}, Float, [1.0e-4, 1.0e-2]),
    "randint": ({"randint": [1, 3]}, Integer, [1, 3]),
}


def test_every_distribution_has_an_example() -> None:
    assert sorted(EXAMPLES) == DOMAINS.names()


def test_built_in_spaces_are_listed_and_found() -> None:
    names = list_spaces()
    assert {"quick", "encoders"} <= set(names)
    for name in names:
        path = space_path(name)
        assert path.is_file()
        assert path.name == f"{name}.yaml"


def test_unknown_space_suggests_the_nearest() -> None:
    with pytest.raises(ValueError, match=r"unknown space 'quik'; did you mean 'quick'\? available spaces: .*encoders"):
        space_path("quik")


def test_space_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text("search: {}\n")
    assert space_path(str(path)) == path.resolve()
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml: space file not found"):
        space_path(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_to_tune_makes_the_right_domain(kind: str) -> None:
    spec, domain_type, ends = EXAMPLES[kind]
    check_domain("key", spec)
    domain = to_tune(spec)
    assert isinstance(domain, domain_type)
    assert domain_values(spec) == ends
    assert [type(v) for v in domain_values(spec)] == [type(v) for v in ends]


def test_float_domains_sample_on_the_right_scale() -> None:
    assert isinstance(to_tune({"uniform": [0, 1]}).get_sampler(), Uniform)
    log = to_tune({"loguniform": [1.0e-4, 1.0]})
    assert isinstance(log.get_sampler(), LogUniform)
    values = np.array(log.sample(size=400, random_state=np.random.default_rng(0)))
    assert values.min() >= 1.0e-4
    assert values.max() <= 1.0
    assert np.mean(values < 1.0e-2) > 0.3  # half the decades lie below 1e-2; uniform would give 1%


def test_randint_includes_its_upper_bound() -> None:
    domain = to_tune({"randint": [1, 3]})
    values = domain.sample(size=300, random_state=np.random.default_rng(0))
    assert set(values) == {1, 2, 3}


def test_choice_samples_only_its_values() -> None:
    values = to_tune({"choice": ["Unet", "FPN"]}).sample(size=50, random_state=np.random.default_rng(0))
    assert set(values) == {"Unet", "FPN"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"uniform": [3, 1]}, r"k: uniform: `low <= high` must hold, but got \(low=3, high=1\)"),
        ({"loguniform": [0, 1]}, r"k: loguniform: `low > 0` must hold on a log scale, but got low=0"),
        ({"loguniform": [1.0e-3]}, r"k: loguniform takes \[low, high\] as numbers, got \[0\.001\]"),
        ({"uniform": ["a", 1]}, r"uniform takes \[low, high\] as numbers"),
        ({"uniform": [False, True]}, r"uniform takes \[low, high\] as numbers"),
        ({"randint": [1, 2.5]}, r"randint takes \[low, high\] as integers, got \[1, 2\.5\]"),
        ({"randint": [5, 2]}, r"randint: `low <= high` must hold, but got \(low=5, high=2\)"),
        ({"choice": []}, r"k: choice takes a non-empty list of values, got \[\]"),
        ({"choice": "resnet18"}, r"choice takes a non-empty list of values, got 'resnet18'"),
        (
            {"normal": [0, 1]},
            r"k: Unknown distribution 'normal'\. Available options are: choice, loguniform, randint, uniform",
        ),
        ({"choice": [1], "uniform": [0, 1]}, r"k must be one distribution such as \{choice: \[a, b\]\}"),
        ([1, 2], r"k must be one distribution"),
    ],
)
def test_bad_distributions_name_the_key(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_domain("k", spec, "file.yaml: search: ")
    with pytest.raises(ValueError, match=r"^file\.yaml: search: k"):
        check_domain("k", spec, "file.yaml: search: ")
