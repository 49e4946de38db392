"""A wall-clock training budget turned into step counts (``talkfreq personalize CLIP --minutes 20``).

Ours (no paper sets a budget): the same recipe must fit a stated time on a 2-core laptop and use a faster machine's
time for more steps, while every run still anneals its learning rate to the end and a refiner still reaches its
restoration phase - so the budget sets ``trainer.max_steps`` before a run starts, instead of stopping a run when
time is up. A step's cost is measured, not modelled: :func:`seconds_per_step` trains the very config (same data,
same model, same batch) for a few steps in a scratch folder and times them. :class:`Budget` hands out the time that
is left, network by network, and records what it chose in a JSON file, so a re-run plans the same steps and
reuses the finished runs instead of training again.
"""

from __future__ import annotations

import json
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


class StepTimer(Callback):
    """The wall seconds between consecutive training-batch ends: one step, its data loading and logging."""

    def __init__(self) -> None:
        self.intervals: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.intervals.append(now - self._last)
        self._last = now

    def seconds_per_step(self, *, skip: int = PROBE_SKIP, trim: float = 0.1) -> float:
        """The mean interval after the first ``skip``, without the slowest ``trim`` of them (at least one): a
        one-off step inside a short probe (the refiner's switch to restoration copies its teacher; a pause of a
        shared machine) pulled a plain mean 40 % over the run's real step time; a median misses the mix of a
        refiner's cheaper clean steps and dearer restoring ones."""
        kept = sorted(self.intervals[skip:] or self.intervals)
        if not kept:
            raise ValueError("StepTimer: fewer than two training steps were timed")
        if len(kept) > 2:
            kept = kept[: len(kept) - max(1, round(trim * len(kept)))]
        return sum(kept) / len(kept)


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

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - self.clock()

    def steps(self, name: str, *, probe: Callable[[], float], share: float = 1.0) -> int:
        """The steps network ``name`` trains: recorded, or ``share`` of the time left after ``probe()`` (which
        returns seconds per step) over that, at least ``MIN_STEPS``."""
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
        self._planned_here = True
        self._save()
        return steps

    def trained(self, name: str, seconds: float) -> None:
        """Record that network ``name`` (planned by :meth:`steps`) trained in ``seconds`` of wall time."""
        net = self.plan.get("networks", {}).get(name)
        if net is not None and seconds > 0:
            net["trained_seconds"] = float(seconds)
            self._save()

    def slowdown(self) -> float:
        """The largest (real seconds per step) / (probed seconds per step) of the networks trained so far, >= 1."""
        ratios = [n["trained_seconds"] / (n["steps"] * n["seconds_per_step"])
                  for n in self.plan.get("networks", {}).values() if n.get("trained_seconds")]
        return max([1.0, *ratios])

    def close(self) -> None:
        """Record ``used_seconds``, the wall time from this budget's start to now, when this process planned a
        network (a re-run that reuses every finished run keeps the first run's figure)."""
        if self._planned_here or "used_seconds" not in self.plan:
            self.plan["used_seconds"] = 60.0 * self.minutes - self.left()
            self._save()

    def _save(self) -> None:
        write_json(self.record, self.plan)


__all__ = ["MIN_STEPS", "PROBE_STEPS", "SAFETY", "Budget", "StepTimer", "seconds_per_step"]
