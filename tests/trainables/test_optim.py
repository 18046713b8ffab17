"""Schedules as pure functions of the step, optimizers by name, EMA of the weights."""

from __future__ import annotations

import pytest
import torch

from trainables.optim import FLOOR, cycle_ends, list_optimizers, list_schedules, make_ema, make_optimizer, make_schedule


@pytest.mark.parametrize("name", list_schedules())
def test_schedules_warm_up_then_follow_their_shape(name: str) -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = make_optimizer("sgd", model, 1.0, 0.0, 0.9)
    schedule = make_schedule(name, optimizer, total_steps=40, warmup_steps=4, cycles=2)
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[:4] == pytest.approx([0.04, 0.18125, 0.52, 0.85875], abs=0.01) if name == "one_cycle" else lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    if name == "cyclic":
        assert lrs[19] == pytest.approx(FLOOR, abs=1e-6) and lrs[20] > 0.9  # low point, then a restart
    if name in ("cosine", "one_cycle"):
        assert max(lrs) == pytest.approx(1.0, abs=0.02) and lrs[-1] < 0.01


@pytest.mark.parametrize("name", list_optimizers())
def test_every_optimizer_takes_a_step(name: str) -> None:
    model = torch.nn.Linear(2, 1)
    before = model.weight.detach().clone()
    optimizer = make_optimizer(name, model, 0.1, 0.01, 0.9)
    model(torch.ones(4, 2)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.weight)


def test_sgd_is_nesterov() -> None:
    optimizer = make_optimizer("sgd", torch.nn.Linear(2, 1), 0.1, 0.0, 0.9)
    assert optimizer.param_groups[0]["nesterov"] is True


def test_cycle_ends_are_the_low_points() -> None:
    assert cycle_ends(12, 3) == [4, 8, 12]
    with pytest.raises(ValueError, match=r"train\.cycles must divide train\.epochs"):
        cycle_ends(10, 3)


def test_ema_averages_weights_and_batchnorm_statistics() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = make_ema(model, 0.5)
    start = model[0].weight.detach().clone()
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model[0].weight.add_(2.0)
    model(torch.randn(8, 2))  # moves the BatchNorm running mean
    ema.update_parameters(model)
    assert torch.allclose(ema.module[0].weight, start + 1.0)  # halfway with decay 0.5
    assert not torch.equal(ema.module[1].running_mean, torch.zeros(2))
