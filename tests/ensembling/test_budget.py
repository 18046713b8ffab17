"""The budget on the target device: measured costs scaled by reference times, the kernel's own work, the curve."""

import json

import pytest

from ensembling.runtime.manifest import read_manifest
from ensembling.scoring.budget import OVERHEAD_MS, PRESETS, RESIZE_BACK_MS, Budget, curve


def test_costs_measured_on_a_slow_cpu_are_scaled_to_the_target():
    # The user's case: trials on a shared 2-core CPU (reference 650 ms) cost 5491.6 s as measured.
    cost = {"reference_ms": 650.0}
    ms = 5491.6 * 1000 / 5506
    on_p100 = Budget(images=5506, device="kaggle-p100").member_seconds(ms, cost)
    assert on_p100 == pytest.approx((ms * PRESETS["kaggle-p100"][0] / 650.0 + RESIZE_BACK_MS) * 5506 / 1000)
    assert on_p100 < 3600 / 10
    same = Budget(images=5506, device=1.0).member_seconds(ms, cost)
    assert same == pytest.approx(5491.6 + RESIZE_BACK_MS * 5.506)


def test_the_kernels_own_work_is_charged_once():
    budget = Budget(seconds=3600, images=1000)
    assert budget.fixed_seconds == pytest.approx(sum(OVERHEAD_MS.values()))
    assert budget.for_members == pytest.approx(3600 - budget.fixed_seconds)
    assert "kaggle-p100" in budget.describe()


@pytest.mark.parametrize(("device", "message"), [("gpu9000", "budget.device must be one of"), (0, "must be > 0"), (True, "a preset")])
def test_bad_devices_name_the_rule(device, message):
    with pytest.raises(ValueError, match=message):
        Budget(device=device)


def test_curve_keeps_the_best_score_within_each_time():
    points = [(30.0, 0.80), (10.0, 0.70), (20.0, 0.65), (40.0, 0.79), (50.0, 0.85)]
    assert curve(points) == [(10.0, 0.70), (30.0, 0.80), (50.0, 0.85)]


@pytest.mark.parametrize("version", [1, 2])
def test_manifests_of_both_formats_are_read(tmp_path, version):
    path = tmp_path / "ensemble.json"
    minimal = {"format_version": version, "members": [], "num_classes": 4, "metric": "dice_pairs", "oof_score": 0.5}
    path.write_text(json.dumps(minimal))
    assert read_manifest(path).format_version == version
    path.write_text(json.dumps({"format_version": 3}))
    with pytest.raises(ValueError, match=r"format_version must be one of \(1, 2\), got 3"):
        read_manifest(path)
