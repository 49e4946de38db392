"""talkfreq.training.budget: a wall-clock budget becomes step counts (``talkfreq personalize --minutes``)."""

from __future__ import annotations

import json
import math

import pytest

from talkfreq.errors import ConfigError
from talkfreq.training.budget import MIN_STEPS, PROBE_STEPS, SAFETY, Budget, Deadline, StepTimer, seconds_per_step


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


class FakeTrainer:
    """What Deadline reads and writes of a Lightning Trainer: the step and the fit loop's max_steps."""

    def __init__(self, max_steps: int) -> None:
        from types import SimpleNamespace

        self.global_step = 0
        self.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(max_steps=max_steps))

    @property
    def max_steps(self) -> int:
        return self.fit_loop.epoch_loop.max_steps


def train(trainer: FakeTrainer, deadline: Deadline, clock: Clock, cost) -> None:
    while trainer.global_step < trainer.max_steps:
        clock.now += cost(trainer.global_step)
        trainer.global_step += 1
        deadline.on_train_batch_end(trainer, None, None, None, trainer.global_step - 1)
    deadline.on_train_end(trainer, None)


def test_deadline_ends_a_run_whose_pace_falls_at_its_deadline():
    clock = Clock()
    end = clock.now + 100.0
    trainer = FakeTrainer(max_steps=200)  # planned at the probe's 0.5 s/step
    deadline = Deadline(end, clock=clock, every=5, window=20)
    train(trainer, deadline, clock, lambda step: 0.5 if step < 40 else 1.0)  # the CPU slows down after 20 s
    assert deadline.trained_steps == trainer.global_step < 200
    assert end - 1.0 <= clock.now <= end + 1.0  # within one step of the deadline, not 2x over it
    assert deadline.replans and deadline.replans[-1][2] == trainer.global_step
    # a faster pace than planned uses the time for more steps
    clock, trainer = Clock(), FakeTrainer(max_steps=100)
    deadline = Deadline(clock.now + 100.0, clock=clock, every=5, window=20)
    train(trainer, deadline, clock, lambda step: 0.5)
    assert trainer.global_step >= 195 and clock.now <= clock.now + 100.0


def test_deadline_holds_its_plan_until_a_run_changes_phase_and_ends_a_late_run_at_once():
    clock = Clock()
    trainer = FakeTrainer(max_steps=60)
    deadline = Deadline(clock.now + 1000.0, hold_until=40, clock=clock, every=5, warmup=5)
    train(trainer, deadline, clock, lambda step: 0.1)
    assert all(step > 40 for step, _, _ in deadline.replans) and deadline.replans
    late = Deadline(clock.now - 1.0, clock=clock, every=1, warmup=2, min_steps=1)
    trainer = FakeTrainer(max_steps=500)
    train(trainer, late, clock, lambda step: 1.0)
    assert trainer.global_step == 3  # the first re-plan (after two timed intervals) stops it
    with pytest.raises(ConfigError):
        Deadline(0.0, every=0)


def test_a_real_run_cut_by_its_deadline_still_anneals_its_learning_rate(prepared_dir, tmp_path):
    """The cosine schedule reads the trainer's live max_steps, so a run re-planned inside the run anneals to its new
    end; and a real run whose deadline has passed stops at its first re-plan."""
    import time

    from lightning.pytorch.callbacks import Callback

    from talkfreq.training.optim import lr_factor
    from talkfreq.training.registry import kind_module, load_run_config

    class Shorten(Callback):  # what Deadline does, at a step of the test's choosing
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == 4:
                trainer.fit_loop.epoch_loop.max_steps = 12

    def config(name: str):
        return load_run_config("syncnet", None, [
            f"data.root={prepared_dir}", f"run.out_dir={tmp_path}", f"run.name={name}", "trainer.max_steps=200",
            "trainer.val_check_interval=200", "model.image_size=32", "model.width=16", "data.batch_size=4",
            "data.num_workers=0", "optim.schedule=cosine", "optim.lr=0.001", "logging.quiet=true",
            "logging.logger=csv"])

    cfg, shorten = config("s"), Shorten()
    kind_module("syncnet").fit(cfg, callbacks=[shorten])
    assert len(shorten.lrs) == 12
    # Lightning steps the schedule before on_train_batch_end: the step after the change still has the old length
    assert shorten.lrs[6:] == pytest.approx([1e-3 * lr_factor(s, cfg=cfg.optim, total_steps=12) for s in range(6, 12)])
    assert shorten.lrs[-1] < 0.02e-3  # annealed by step 12 of what was planned as 200

    deadline = Deadline(time.monotonic() - 1.0, every=1, warmup=2, min_steps=1)  # already late
    kind_module("syncnet").fit(config("late"), callbacks=[deadline])
    assert deadline.trained_steps == 3 and deadline.replans[0][2] == 3


def test_budget_hands_each_planned_run_its_deadline_and_records_the_steps_it_trained(tmp_path):
    clock = Clock()
    record = tmp_path / "budget.json"
    budget = Budget(10, record=record, clock=clock)
    steps = budget.steps("freak", probe=lambda: 0.5, share=0.5)
    deadline = budget.deadline_for("freak")
    assert deadline.deadline == pytest.approx(clock.now + 600 * 0.5 * SAFETY)
    trainer = FakeTrainer(max_steps=steps)
    train(trainer, deadline, clock, lambda step: 1.0)  # twice the probe's pace: half the steps fit
    assert trainer.global_step < 0.6 * steps
    budget.trained("freak", clock.now - 1000.0, deadline=deadline)
    net = json.loads(record.read_text())["networks"]["freak"]
    assert net["trained_steps"] == trainer.global_step and net["replans"][-1][2] == trainer.global_step
    assert budget.slowdown() == pytest.approx(2.0, rel=0.05)  # per step trained, not per step planned
    assert Budget(10, record=record, clock=clock).deadline_for("freak") is None  # recorded: reused, not trained


def test_shortfall_names_the_steps_a_slow_machine_gave_and_the_minutes_that_would_give_them_all(tmp_path):
    def run(pace: float) -> Budget:
        clock = Clock()
        budget = Budget(10, record=tmp_path / f"budget_{pace}.json", clock=clock)
        for name, nominal, share in (("freak", 1000, 0.5), ("refiner", 100, 1.0)):
            clock.now += 20.0  # a probe's fixed cost
            sps = pace * (4 if name == "refiner" else 1)
            steps = budget.steps(name, probe=lambda: sps, share=share, nominal=nominal)
            seconds = steps * sps
            clock.now += seconds
            budget.trained(name, seconds)
        budget.close()
        return budget

    assert run(0.1).shortfall() is None  # a fast machine: more steps than the configs'
    slow = run(0.6)
    plan = json.loads(slow.record.read_text())
    assert plan["networks"]["freak"]["nominal_steps"] == 1000 and plan["networks"]["freak"]["steps"] < 900
    line = slow.shortfall()
    got = {n: v["steps"] for n, v in plan["networks"].items()}
    assert f"freak {got['freak']} of 1000" in line and f"refiner {got['refiner']} of 100" in line
    # the configs' steps at the measured paces, plus the probes' 40 s, over the safety margin
    need = (40.0 + 1000 * 0.6 + 100 * 2.4) / 60 / SAFETY
    assert f"about {math.ceil(need)} min" in line
