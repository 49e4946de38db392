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
