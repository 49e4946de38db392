"""The optimiser section shared by talkfreq training runs (``optim.*``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from talkfreq.errors import ConfigError

SCHEDULES = ("constant", "cosine")


@dataclass
class OptimConfig:
    """Adam settings. Defaults are Wav2Lip's generator (lr 1e-4, betas 0.5/0.999); ``disc_lr`` is its
    discriminator's (1e-4), used only when a GAN term is on."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    disc_lr: float = 1e-4
    # constant | cosine: cosine decays lr to lr·final_lr_ratio at trainer.max_steps (after warmup_steps of linear
    # ramp). Ours, for short CPU runs: BatchNorm's running statistics trail weights that still move fast at the end
    # of a constant-lr run, so eval-mode outputs lag train-mode ones; a decayed lr lets them settle.
    schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        # Runs when OmegaConf builds the object too, so a bad value fails at config time, not after the Trainer.
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ConfigError(f"optim.final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")


def check_schedule(cfg: OptimConfig, *, max_steps: int) -> None:
    """The ``optim`` check that needs the ``trainer`` section (each trainer's start-up check calls it): a cosine
    decay ends at ``trainer.max_steps``, so it needs one."""
    if cfg.schedule == "cosine" and max_steps <= 0:
        raise ConfigError(f"optim.schedule=cosine needs trainer.max_steps > 0 (its length), got {max_steps}")


def adam(params: Iterable[torch.nn.Parameter], *, cfg: OptimConfig, lr: float | None = None) -> torch.optim.Adam:
    """Adam over ``params`` with ``cfg`` (``lr`` overrides ``cfg.lr``, e.g. with ``cfg.disc_lr``)."""
    if len(cfg.betas) != 2:
        raise ConfigError(f"optim.betas must have two values, got {cfg.betas}")
    return torch.optim.Adam(params, lr=cfg.lr if lr is None else lr, betas=(cfg.betas[0], cfg.betas[1]),
                            weight_decay=cfg.weight_decay)


def lr_factor(step: int, *, cfg: OptimConfig, total_steps: int) -> float:
    """The multiplier of ``cfg.lr`` at optimiser step ``step`` of ``total_steps`` (see ``OptimConfig.schedule``)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or total_steps <= cfg.warmup_steps:
        return 1.0
    t = min(1.0, (step - cfg.warmup_steps) / (total_steps - cfg.warmup_steps))
    return cfg.final_lr_ratio + (1.0 - cfg.final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


Horizon = int | Callable[[], int]  # a run's length in steps, or a function that reads it when the lr is computed


def horizon(module) -> Callable[[], int]:
    """A LightningModule's run length as its trainer holds it now, or its config's ``trainer.max_steps`` while no
    trainer is attached: a cosine schedule that reads this follows a run whose ``max_steps`` is re-planned inside
    the run (:class:`talkfreq.training.budget.Deadline`)."""
    def total() -> int:
        trainer = module._trainer  # the public property raises when no trainer is attached
        return trainer.max_steps if trainer is not None else module.cfg.trainer.max_steps
    return total


def lr_scheduler(opt: torch.optim.Optimizer, *, cfg: OptimConfig, total_steps: Horizon):
    """A per-step LambdaLR of ``opt`` under ``cfg.schedule``, or None for a constant lr without warm-up."""
    length = total_steps if callable(total_steps) else (lambda: total_steps)
    check_schedule(cfg, max_steps=length())
    if cfg.schedule == "constant" and cfg.warmup_steps == 0:
        return None
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg=cfg, total_steps=length()))


def with_schedule(opts: torch.optim.Optimizer | list, *, cfg: OptimConfig, total_steps: Horizon):
    """What ``configure_optimizers`` returns: ``opts`` (one optimiser, or [generator, discriminator]) with a per-step
    scheduler on the first (the generator's) when ``cfg`` asks for one. Manual optimisation steps it with
    :func:`step_scheduler`. ``total_steps``: the run's length, or a function returning it (:func:`horizon`)."""
    first = opts[0] if isinstance(opts, list) else opts
    sched = lr_scheduler(first, cfg=cfg, total_steps=total_steps)
    if sched is None:
        return opts
    entry = {"scheduler": sched, "interval": "step", "frequency": 1}
    return (opts, [entry]) if isinstance(opts, list) else {"optimizer": opts, "lr_scheduler": entry}


def step_scheduler(module) -> None:
    """Under manual optimisation Lightning does not step schedulers: the module calls this after its G step."""
    sched = module.lr_schedulers()
    if sched is not None:
        sched.step()


def step_without_counting(opt) -> None:
    """``opt.step()`` on a LightningOptimizer without advancing ``trainer.global_step`` (ours).

    Under manual optimisation Lightning counts every optimiser step, so a GAN (a D and a G step per batch) would
    stop at max_steps/2 batches and halve every step-based cadence. The D step goes through the same
    LightningOptimizer (precision and strategy hooks still apply) with only its progress hooks muted.
    """
    before, after = opt._on_before_step, opt._on_after_step
    opt._on_before_step = opt._on_after_step = lambda: None
    try:
        opt.step()
    finally:
        opt._on_before_step, opt._on_after_step = before, after
