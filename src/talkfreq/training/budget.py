"""A wall-clock training budget turned into step counts (``talkfreq personalize CLIP --minutes 20``).

Ours (no paper sets a budget): the same recipe must fit a stated time on a 2-core laptop and use a faster machine's
time for more steps, while every run still anneals its learning rate to the end and a refiner still reaches its
restoration phase - so the budget sets ``trainer.max_steps`` before a run starts, instead of stopping a run when
time is up. A step's cost is measured, not modelled: :func:`seconds_per_step` trains the very config (same data,
same model, same batch) for a few steps in a scratch folder and times them. :class:`Budget` hands out the time that
is left, network by network, and records what it chose in a JSON file, so a re-run plans the same steps and
reuses the finished runs instead of training again.

A short probe cannot foresee a CPU whose pace falls under sustained load (the personal recipe's FREAK was probed
12 % under, 24 % over and 32 % under its run's real pace), so each budgeted run also carries a :class:`Deadline`: it
measures the pace inside the run and moves ``max_steps`` (and with it the cosine schedule's end, which reads the
trainer's :func:`talkfreq.training.optim.horizon`) so that the run's steps end when its share of the time does.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from talkfreq.errors import ConfigError
from talkfreq.io.files import write_json

# A probe run's steps. Its first PROBE_SKIP intervals hold one-off costs (first kernels, caches); 20 steps leave a
# refiner probe (whose phase switch is scaled like the run's) about the run's mix of clean and restoring steps.
PROBE_STEPS = 20
PROBE_SKIP = 2
# Validation, checkpoints and the final save are not in the probe's steps; this much of the time given is left
# for them (the recipe's runs spent 2-4 % of their time there on the 2-core machine).
SAFETY = 0.95
MIN_STEPS = 10
# A network trained with less than this share of its config's own steps is reported as short-changed (a CPU slower
# than the one the recipe's tables were measured on, or a short budget; ours)
SHORT = 0.9


class StepTimer(Callback):
    """The wall seconds between consecutive training-batch ends: one step, its data loading and logging."""

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.intervals: list[float] = []
        self.clock = clock
        self._last: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self.clock()
        if self._last is not None:
            self.intervals.append(now - self._last)
        self._last = now

    def seconds_per_step(self, *, skip: int = PROBE_SKIP, trim: float = 0.1) -> float:
        """The mean interval after the first ``skip``, without the slowest ``trim`` of them (at least one): a
        one-off step inside a short probe (the refiner's switch to restoration copies its teacher; a pause of a
        shared machine) pulled a plain mean 40 % over the run's real step time; a median misses the mix of a
        refiner's cheaper clean steps and dearer restoring ones."""
        return trimmed_mean(self.intervals[skip:] or self.intervals, trim=trim)


def trimmed_mean(intervals: list[float], *, trim: float = 0.1) -> float:
    """The mean of ``intervals`` without the largest ``trim`` of them (at least one, when there are more than 2)."""
    kept = sorted(intervals)
    if not kept:
        raise ValueError("StepTimer: fewer than two training steps were timed")
    if len(kept) > 2:
        kept = kept[: len(kept) - max(1, round(trim * len(kept)))]
    return sum(kept) / len(kept)


class Deadline(Callback):
    """Re-plans a run's ``max_steps`` inside the run so that its training steps end at ``deadline`` (a ``clock()``
    time).

    Every ``every`` steps (from ``hold_until`` + ``warmup`` on) the pace is the trimmed mean of the last ``window``
    step intervals - the recent pace, since a CPU's pace falls under sustained load - and the run's length becomes
    the steps done + the seconds left over that pace (at least ``min_steps``; a deadline already past ends the run
    at the next step). ``hold_until``: no re-plan before this step, for a run whose steps change cost there (a
    refiner's switch from clean to restoring steps: its pace before the switch would misjudge the steps after it,
    and its switch step stays where it was planned). ``replans`` holds (step, seconds per step, new max_steps)."""

    def __init__(self, deadline: float, *, hold_until: int = 0, every: int = 25, window: int = 50, warmup: int = 10,
                 min_steps: int = MIN_STEPS, clock: Callable[[], float] = time.monotonic) -> None:
        if every < 1 or window < 2 or warmup < 0:
            raise ConfigError(f"Deadline: every >= 1, window >= 2, warmup >= 0, got {every}, {window}, {warmup}")
        self.deadline, self.hold_until, self.clock = float(deadline), int(hold_until), clock
        self.every, self.window, self.warmup, self.min_steps = every, window, warmup, min_steps
        self.replans: list[tuple[int, float, int]] = []
        self.trained_steps: int | None = None
        self._timer = StepTimer(clock=clock)

    def on_train_end(self, trainer, pl_module) -> None:
        self.trained_steps = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step <= self.hold_until:
            return
        self._timer.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        timed = len(self._timer.intervals)
        if timed < self.warmup or (timed - self.warmup) % self.every:
            return
        pace = trimmed_mean(self._timer.intervals[-self.window:])
        left = self.deadline - self.clock()
        total = max(self.min_steps, step + int(left // pace) if left > 0 else step)
        if total != trainer.max_steps:
            trainer.fit_loop.epoch_loop.max_steps = total
        self.replans.append((step, pace, total))


def seconds_per_step(kind: str, cfg: Any) -> float:
    """The mean wall seconds of one training step of ``cfg`` (a ``kind`` run config whose ``trainer.max_steps`` is
    the probe's length, e.g. ``PROBE_STEPS``), trained in a scratch folder that is removed afterwards."""
    from talkfreq.training.registry import kind_module

    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="talkfreq-probe-") as tmp:
        probe = replace(cfg, run=replace(cfg.run, out_dir=tmp, name="probe", resume=None),
                        logging=replace(cfg.logging, quiet=True, logger="csv", sample_every_n_steps=0))
        kind_module(kind).fit(probe, callbacks=[timer])
    return timer.seconds_per_step()


class Budget:
    """``minutes`` of training from now, planned network by network.

    :meth:`steps` gives a network ``share`` of the time left (after its probe), divided by its measured seconds per
    step; a later network gets what the earlier ones left. A run's steps grow dearer than a short probe's on a CPU
    whose clock falls under sustained load (the personal recipe's FREAK: probed 0.22 s/step, trained at 0.30), so
    :meth:`trained` records each run's real pace and later probes are scaled by the slowest ratio seen so far
    (never below 1: a probe slowed by a passing load is not taken as the machine's speed). The plan is kept in
    ``record`` (JSON): a network already there gets its recorded steps without a probe, as long as the budget is the
    same."""

    def __init__(self, minutes: float, *, record: Path, clock: Callable[[], float] = time.monotonic):
        if not minutes > 0:
            raise ConfigError(f"minutes: a training budget must be > 0, got {minutes}")
        self.minutes, self.record, self.clock = float(minutes), Path(record), clock
        self.deadline = clock() + 60.0 * self.minutes
        plan = json.loads(self.record.read_text()) if self.record.is_file() else {}
        self.plan: dict[str, Any] = plan if plan.get("minutes") == self.minutes else {"minutes": self.minutes}
        self._planned_here = False
        self._deadlines: dict[str, float] = {}

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - self.clock()

    def steps(self, name: str, *, probe: Callable[[], float], share: float = 1.0, nominal: int | None = None) -> int:
        """The steps network ``name`` trains: recorded, or ``share`` of the time left after ``probe()`` (which
        returns seconds per step) over that, at least ``MIN_STEPS``. ``nominal``: the config's own steps, what the
        recipe was measured with (recorded for :meth:`shortfall`)."""
        if not 0.0 < share <= 1.0:
            raise ConfigError(f"budget share of {name} must be in (0, 1], got {share}")
        done = self.plan.get("networks", {}).get(name)
        if done is not None:
            return int(done["steps"])
        sps = float(probe())
        slowdown = self.slowdown()
        seconds = max(0.0, self.left()) * share * SAFETY
        steps = max(MIN_STEPS, int(seconds // (sps * slowdown)))
        self.plan.setdefault("networks", {})[name] = {"seconds_per_step": sps, "slowdown": slowdown,
                                                      "seconds": seconds, "steps": steps}
        if nominal is not None:
            self.plan["networks"][name]["nominal_steps"] = int(nominal)
        self._deadlines[name] = self.clock() + seconds
        self._planned_here = True
        self._save()
        return steps

    def deadline_for(self, name: str, *, hold_until: int = 0) -> Deadline | None:
        """The callback that keeps network ``name``'s run inside the seconds :meth:`steps` gave it in this process
        (None for a network planned by an earlier process: its finished run is reused)."""
        end = self._deadlines.get(name)
        return None if end is None else Deadline(end, hold_until=hold_until, clock=self.clock)

    def trained(self, name: str, seconds: float, *, deadline: Deadline | None = None) -> None:
        """Record that network ``name`` (planned by :meth:`steps`) trained in ``seconds`` of wall time, and the steps
        its ``deadline`` re-planned, if it had one."""
        net = self.plan.get("networks", {}).get(name)
        if net is not None and seconds > 0:
            net["trained_seconds"] = float(seconds)
            if deadline is not None and deadline.trained_steps is not None:
                net["trained_steps"] = deadline.trained_steps
                net["replans"] = [[step, round(pace, 4), total] for step, pace, total in deadline.replans]
            self._save()

    def slowdown(self) -> float:
        """The largest (real seconds per step) / (probed seconds per step) of the networks trained so far, >= 1."""
        ratios = [n["trained_seconds"] / (n.get("trained_steps", n["steps"]) * n["seconds_per_step"])
                  for n in self.plan.get("networks", {}).values() if n.get("trained_seconds")]
        return max([1.0, *ratios])

    def close(self) -> None:
        """Record ``used_seconds``, the wall time from this budget's start to now, when this process planned a
        network (a re-run that reuses every finished run keeps the first run's figure)."""
        if self._planned_here or "used_seconds" not in self.plan:
            self.plan["used_seconds"] = 60.0 * self.minutes - self.left()
            self._save()

    def shortfall(self) -> str | None:
        """After :meth:`close`: one line when a network trained fewer than ``SHORT`` of its ``nominal`` steps - the
        steps each got, and the budget (minutes) that would give every network its nominal steps at the paces
        measured in this budget's runs (the probes' and other fixed costs kept as they were) - else None."""
        nets = {n: v for n, v in self.plan.get("networks", {}).items() if v.get("nominal_steps")}
        got = {n: int(v.get("trained_steps", v["steps"])) for n, v in nets.items()}
        if not any(got[n] < SHORT * v["nominal_steps"] for n, v in nets.items()) or "used_seconds" not in self.plan:
            return None
        trained = {n: v.get("trained_seconds", got[n] * v["seconds_per_step"] * v["slowdown"]) for n, v in nets.items()}
        fixed = max(0.0, self.plan["used_seconds"] - sum(trained.values()))
        need = fixed + sum(v["nominal_steps"] * trained[n] / max(got[n], 1) for n, v in nets.items())
        steps = ", ".join(f"{n} {got[n]} of {v['nominal_steps']}" for n, v in nets.items())
        return (f"the {self.minutes:g} min budget trained {steps} steps (the configs' own steps, at which the "
                f"recipe was measured); on this machine about {math.ceil(need / 60 / SAFETY)} min would train them all")

    def _save(self) -> None:
        write_json(self.record, self.plan)


__all__ = ["MIN_STEPS", "PROBE_STEPS", "SAFETY", "SHORT", "Budget", "Deadline", "StepTimer", "seconds_per_step"]
