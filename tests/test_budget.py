"""talkfreq.training.budget: a wall-clock budget becomes step counts (``talkfreq personalize --minutes``)."""

from __future__ import annotations

import json

import pytest

from talkfreq.errors import ConfigError
from talkfreq.training.budget import MIN_STEPS, PROBE_STEPS, SAFETY, Budget, StepTimer, seconds_per_step


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_gives_each_network_its_share_of_the_time_left(tmp_path):
    clock = Clock()
    budget = Budget(10, record=tmp_path / "budget.json", clock=clock)

    def probe_freak() -> float:
        clock.now += 30.0  # the probe's own time comes out of the budget
        return 0.5

    freak = budget.steps("freak", probe=probe_freak, share=0.5)
    assert freak == int((600 - 30) * 0.5 * SAFETY / 0.5)
    clock.now += freak * 0.5  # FREAK trains as planned
    budget.trained("freak", freak * 0.5)
    refiner = budget.steps("refiner", probe=lambda: 2.0)
    assert refiner == int((600 - 30 - freak * 0.5) * SAFETY / 2.0)
    clock.now += refiner * 2.0
    budget.close()
    plan = json.loads((tmp_path / "budget.json").read_text())
    assert plan["networks"]["freak"]["steps"] == freak and plan["networks"]["refiner"]["seconds_per_step"] == 2.0
    assert plan["used_seconds"] == pytest.approx(clock.now - 1000.0) and plan["used_seconds"] <= 600


def test_a_rerun_plans_the_recorded_steps_without_probing(tmp_path):
    record = tmp_path / "budget.json"
    first = Budget(5, record=record, clock=Clock())
    steps = first.steps("freak", probe=lambda: 0.1)
    first.close()
    used = json.loads(record.read_text())["used_seconds"]

    def fail() -> float:
        raise AssertionError("a recorded network is not probed again")

    again = Budget(5, record=record, clock=Clock())
    assert again.steps("freak", probe=fail) == steps
    again.close()  # nothing planned here: the first run's figure stays
    assert json.loads(record.read_text())["used_seconds"] == used
    # another budget plans from scratch
    assert Budget(6, record=record, clock=Clock()).steps("freak", probe=lambda: 0.1) != steps


def test_too_little_time_still_trains_the_minimum_and_bad_values_fail(tmp_path):
    clock = Clock()
    budget = Budget(0.01, record=tmp_path / "b.json", clock=clock)
    clock.now += 3600
    assert budget.left() < 0 and budget.steps("freak", probe=lambda: 1.0) == MIN_STEPS
    with pytest.raises(ConfigError, match="minutes"):
        Budget(0, record=tmp_path / "c.json")
    with pytest.raises(ConfigError, match="share"):
        budget.steps("refiner", probe=lambda: 1.0, share=1.5)


def test_step_timer_skips_the_first_intervals():
    timer = StepTimer()
    timer.intervals = [5.0, 3.0, 1.0, 1.2, 0.8, 6.0]  # a one-off 6 s step does not count
    assert timer.seconds_per_step(skip=2) == pytest.approx(1.0)
    timer.intervals = [9.0, 9.0, *[1.0] * 8, *[2.0] * 10, 30.0]  # two phases: their mix, not the median
    assert timer.seconds_per_step(skip=2, trim=0.1) == pytest.approx((8 * 1.0 + 9 * 2.0) / 17)
    with pytest.raises(ValueError):
        StepTimer().seconds_per_step()


def test_seconds_per_step_times_a_real_run_in_a_scratch_folder(prepared_dir, tmp_path):
    from talkfreq.training.registry import load_run_config

    runs = tmp_path / "runs"
    steps = PROBE_STEPS
    cfg = load_run_config("syncnet", None, [
        f"data.root={prepared_dir}", f"run.out_dir={runs}", "run.name=s", f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}", "model.image_size=32", "model.width=16", "data.batch_size=4",
        "data.num_workers=0"])
    sps = seconds_per_step("syncnet", cfg)
    assert 0.0 < sps < 30.0
    assert not runs.exists()  # the probe trains in a scratch folder, not in the run's


def test_a_run_slower_than_its_probe_scales_the_next_probe(tmp_path):
    clock = Clock()
    budget = Budget(20, record=tmp_path / "budget.json", clock=clock)
    freak = budget.steps("freak", probe=lambda: 0.2, share=0.5)
    clock.now += freak * 0.3  # the run's steps cost 1.5x the probe's
    budget.trained("freak", freak * 0.3)
    assert budget.slowdown() == pytest.approx(1.5)
    refiner = budget.steps("refiner", probe=lambda: 1.0)
    assert refiner == int(budget.left() * SAFETY / 1.5)
    assert json.loads((tmp_path / "budget.json").read_text())["networks"]["refiner"]["slowdown"] == pytest.approx(1.5)
    # a run faster than its probe does not make later plans bolder
    fast = Budget(20, record=tmp_path / "fast.json", clock=Clock())
    n = fast.steps("freak", probe=lambda: 0.4)
    fast.trained("freak", n * 0.2)
    assert fast.slowdown() == 1.0
