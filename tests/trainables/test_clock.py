"""``train.time_limit``: the epochs the clock allows (pure arithmetic), and a real trial that follows it."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from resuming import unbroken_and_resumed

from core.data.study import DataConfig, StudyConfig, prepare_study
from trainables import clock
from trainables.clock import epoch_pace, epochs_in_time, validations_between
from trainables.fit import run_trial
from trainables.optim import make_optimizer, make_schedule, set_total_steps, total_steps


def test_the_epochs_that_fit_count_the_validations_between_them() -> None:
    # 1 done, 10 s left, 2 s an epoch, 1 s a validation every 3rd epoch: epochs 2-5 (8 s) and the validation
    # at epoch 3 (1 s) fit; a 6th would need 10 s of epochs and that validation, 11 s
    assert epochs_in_time(1, 10.0, 2.0, 1.0, 3) == 5
    # validations every epoch: epochs 2-4 and the validations after 2 and 3 (3 x 2 + 2 x 1 = 8 s); a 5th: 11 s
    assert epochs_in_time(1, 10.0, 2.0, 1.0, 1) == 4
    assert validations_between(1, 5, 3) == 1 and validations_between(1, 7, 3) == 2  # epochs 3 and 6; the last's is not counted


def test_no_time_left_stops_now_and_a_cap_holds_on_a_fast_machine() -> None:
    assert epochs_in_time(4, 1.0, 2.0, 0.0, 1) == 4  # less than an epoch left: epoch 4 is the last
    assert epochs_in_time(4, -30.0, 2.0, 0.0, 1) == 4  # over the limit already
    assert epochs_in_time(1, 1e9, 0.01, 0.0, 1, most=50) == 50
    with pytest.raises(ValueError, match="at least one epoch"):
        epochs_in_time(0, 10.0, 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="pace must be > 0"):
        epochs_in_time(1, 10.0, 0.0, 0.0, 1)


def test_the_pace_is_the_mean_of_the_last_few_epochs() -> None:
    assert epoch_pace([9.0]) == 9.0
    assert epoch_pace([30.0, 4.0, 5.0, 6.0]) == pytest.approx(5.0)  # the slow first epoch falls out
    with pytest.raises(ValueError, match="at least one epoch"):
        epoch_pace([])


def test_a_moved_schedule_end_follows_the_new_length_and_survives_a_safe_load() -> None:
    optimizer = make_optimizer("sgd", torch.nn.Linear(2, 1), 1.0, 0.0, 0.0)
    schedule = make_schedule("cosine", optimizer, 10, 0, 1)
    for _ in range(5):
        optimizer.step()
        schedule.step()
    halfway = optimizer.param_groups[0]["lr"]
    assert halfway == pytest.approx(0.5, abs=0.01)  # half of a 10-step cosine
    set_total_steps(schedule, 20)
    optimizer.step()
    schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(0.3 * math.pi)), abs=0.01)  # step 6 of 20 (0.79), not of 10 (0.35)
    buffer = io.BytesIO()
    torch.save(schedule.state_dict(), buffer)
    buffer.seek(0)
    other = make_schedule("cosine", make_optimizer("sgd", torch.nn.Linear(2, 1), 1.0, 0.0, 0.0), 10, 0, 1)
    other.load_state_dict(torch.load(buffer, weights_only=True))  # the length is a name and integers: no pickled code
    assert total_steps(other) == 20 and other.last_epoch == 6


TINY = {"model.arch": "Unet", "model.encoder": "resnet18", "model.encoder_depth": 3, "train.batch_size": 4,
        "train.scale": 0.125, "train.threads": 1, "tta": "hflip"}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clock")
    data = DataConfig(format="synthetic", root=str(root / "data"), images=16)
    prepare_study(root / "s", StudyConfig(data=data, folds=2, seed=0, oof_scale=0.125))
    (root / "s" / "study.yaml").write_text(yaml.safe_dump({"data": vars(data), "folds": 2, "seed": 0, "oof_scale": 0.125}))
    return root / "s"


def test_a_trial_out_of_time_after_one_epoch_stops_there_and_writes_a_whole_trial(study_dir: Path) -> None:
    reports: list[dict] = []
    metrics = run_trial({**TINY, "train.epochs": 4, "train.time_limit": 1e-3}, study_dir, trial_id="short", report=lambda m, _: reports.append(dict(m)))
    assert [m["epoch"] for m in reports] == [1] and reports[0]["epochs"] == 1
    assert "score" in reports[0]  # the epoch it stopped at became the last: validated with TTA, the trial written
    written = json.loads((study_dir / "trials" / "short" / "metrics.json").read_text())
    assert written["complete"] and written["oof_score"] == metrics["oof_score"]


def test_a_trial_with_time_to_spare_trains_past_its_plan_on_a_stretched_schedule(study_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(clock, "MOST", 3)  # an hour for epochs of a second: the cap decides, not the machine's speed
    config = {**TINY, "train.epochs": 1, "train.time_limit": 3600, "train.val_every": 5}
    # unbroken, then resumed from its epoch-1 checkpoint: it goes on to the 3 epochs it had re-planned, as unbroken
    unbroken, resumed = unbroken_and_resumed(config, study_dir, tmp_path / "ckpt", name="long-")
    assert [m["epoch"] for m in unbroken] == [1, 2, 3] and [m["epochs"] for m in unbroken] == [3, 3, 3]
    assert ["score" in m for m in unbroken] == [False, False, True]  # a plan of 1 epoch would have validated at once
    lrs = [m["lr"] for m in unbroken]
    assert lrs[0] > lrs[1] > lrs[2] > 0  # one cosine over the 3 epochs, not a 1-epoch cosine then the floor
    assert lrs[1] > 0.3 * lrs[0]
    assert [m["epoch"] for m in resumed] == [2, 3]
    for key in ("train_loss", "lr", "score"):
        assert [m.get(key) for m in resumed] == [m.get(key) for m in unbroken[1:]], key


def test_a_cyclic_schedule_of_several_cycles_keeps_its_epochs_and_says_so(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports: list[dict] = []
    config = {**TINY, "train.epochs": 2, "train.schedule": "cyclic", "train.cycles": 2, "train.time_limit": 1e-3, "train.folds": [0]}
    run_trial(config, study_dir, trial_id="cyclic", report=lambda m, _: reports.append(dict(m)))
    assert [m["epoch"] for m in reports] == [1, 2]
    assert "train.time_limit=0.001 not followed: a cyclic schedule's 2 snapshots need a fixed count" in capsys.readouterr().out
