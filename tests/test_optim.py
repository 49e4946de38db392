"""optim.schedule: the lr multiplier, the Lightning wiring (auto and manual optimisation), config errors."""

from __future__ import annotations

import math

import pytest
import torch

from talkfreq.errors import ConfigError
from talkfreq.training.optim import OptimConfig, lr_factor, with_schedule


def test_cosine_factor_runs_from_one_to_the_final_ratio_after_warmup():
    cfg = OptimConfig(schedule="cosine", warmup_steps=10, final_lr_ratio=0.1)
    f = [lr_factor(s, cfg=cfg, total_steps=110) for s in range(111)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warm-up
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.55) and f[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # never rises after the warm-up
    assert lr_factor(5, cfg=OptimConfig(), total_steps=100) == 1.0


def test_with_schedule_steps_the_lr_per_step():
    p = torch.nn.Parameter(torch.zeros(1))
    cfg = OptimConfig(lr=1.0, schedule="cosine")
    opt = torch.optim.Adam([p], lr=1.0)
    out = with_schedule(opt, cfg=cfg, total_steps=4)
    sched = out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))])
    assert with_schedule(opt, cfg=OptimConfig(), total_steps=4) is opt  # constant: the optimiser alone
    pair = [opt, torch.optim.Adam([p])]
    opts, scheds = with_schedule(pair, cfg=cfg, total_steps=4)  # GAN: the generator's optimiser is scheduled
    assert opts is pair and scheds[0]["scheduler"].optimizer is opt


@pytest.mark.parametrize(("kwargs", "steps", "message"), [
    ({"schedule": "linear"}, 10, "optim.schedule must be one of"),
    ({"schedule": "cosine", "final_lr_ratio": 2.0}, 10, "final_lr_ratio"),
    ({"schedule": "cosine"}, -1, "needs trainer.max_steps"),
])
def test_schedule_errors(kwargs, steps, message):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ConfigError, match=message):
        with_schedule(opt, cfg=OptimConfig(**kwargs), total_steps=steps)
