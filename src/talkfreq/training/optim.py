"""The optimiser section shared by talkfreq training runs (``optim.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch

from talkfreq.errors import ConfigError


@dataclass
class OptimConfig:
    """Adam settings. Defaults are Wav2Lip's generator (lr 1e-4, betas 0.5/0.999); ``disc_lr`` is its
    discriminator's (1e-4), used only when a GAN term is on."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    disc_lr: float = 1e-4


def adam(params: Iterable[torch.nn.Parameter], *, cfg: OptimConfig, lr: float | None = None) -> torch.optim.Adam:
    """Adam over ``params`` with ``cfg`` (``lr`` overrides ``cfg.lr``, e.g. with ``cfg.disc_lr``)."""
    if len(cfg.betas) != 2:
        raise ConfigError(f"optim.betas must have two values, got {cfg.betas}")
    return torch.optim.Adam(params, lr=cfg.lr if lr is None else lr, betas=(cfg.betas[0], cfg.betas[1]),
                            weight_decay=cfg.weight_decay)


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
