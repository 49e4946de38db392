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


@pytest.mark.parametrize(("key", "value", "message"), [
    ("schedule", "linear", "optim.schedule must be one of"),
    ("warmup_steps", -1, "optim.warmup_steps must be >= 0"),
    ("final_lr_ratio", 2.0, "optim.final_lr_ratio must be in"),
])
def test_bad_schedule_values_fail_when_the_config_is_loaded(key, value, message):
    from talkfreq.training.registry import load_run_config

    with pytest.raises(ConfigError, match=message):
        OptimConfig(**{key: value})
    for kind in ("syncnet", "stage1", "refiner"):
        with pytest.raises(ConfigError, match=message) as e:
            load_run_config(kind, None, [f"optim.{key}={value}"])
        assert "\n" not in str(e.value)


def test_cosine_without_max_steps_fails_in_each_trainers_check(tmp_path):
    from talkfreq.training import refiner, stage1, syncnet
    from talkfreq.training.registry import load_run_config

    bad = ["optim.schedule=cosine", "trainer.max_steps=-1", f"run.out_dir={tmp_path}"]
    with pytest.raises(ConfigError, match="optim.schedule=cosine needs trainer.max_steps > 0"):
        stage1.check_config(load_run_config("stage1", None, bad))
    with pytest.raises(ConfigError, match="optim.schedule=cosine needs trainer.max_steps > 0"):
        syncnet.fit(load_run_config("syncnet", None, bad))  # before any data or folder
    with pytest.raises(ConfigError, match="trainer.max_steps must be > 0"):  # a refiner always needs max_steps
        refiner.fit(load_run_config("refiner", None, bad))
    assert not any(tmp_path.iterdir())
    # an lr schedule built directly is checked too; a constant lr with warm-up needs no length
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ConfigError, match="needs trainer.max_steps"):
        with_schedule(opt, cfg=OptimConfig(schedule="cosine"), total_steps=-1)
    assert with_schedule(opt, cfg=OptimConfig(warmup_steps=2), total_steps=-1)["lr_scheduler"]["interval"] == "step"
