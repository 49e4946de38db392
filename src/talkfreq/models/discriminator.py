"""PatchGAN discriminator for the optional GAN term of stage 1.

The layout is pix2pix's ``NLayerDiscriminator`` (Isola et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix): 4×4
convs, the first ``num_layers`` with stride 2 and widths ``base_channels · min(2^i, 8)``, then a stride-1 conv and a
1-channel stride-1 conv; LeakyReLU(0.2). Each output logit sees a ~70×70 patch at ``num_layers=3``.

Ours: ``norm`` is a config value ("batch" as pix2pix, "instance", "group" or "none"), and ``spectral_norm=True``
wraps every conv in spectral normalisation (then ``norm`` is usually "none"). Outputs are raw logits: the loss
(hinge, non-saturating, LSGAN) lives in ``talkfreq.losses.gan``. Inputs are images in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from talkfreq.errors import ConfigError
from talkfreq.models._io import PretrainedMixin, build_config

_NORMS = ("batch", "instance", "group", "none")


@dataclass
class PatchDiscriminatorConfig:
    """Settings of :class:`PatchDiscriminator`."""

    in_channels: int = 3
    base_channels: int = 64
    num_layers: int = 3  # stride-2 convs; 3 gives 70×70 receptive fields
    norm: str = "batch"  # batch | instance | group | none
    spectral_norm: bool = False


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(32, c), c) if c % min(32, c) == 0 else nn.GroupNorm(1, c)
    return nn.Identity()


class PatchDiscriminator(PretrainedMixin, nn.Module):
    """(B,C,H,W) -> patch logits (B,1,H',W'); H' = H/2^num_layers - 2 (e.g. 30×30 at 256 px, 3 layers)."""

    config_class = PatchDiscriminatorConfig

    def __init__(self, *, config: PatchDiscriminatorConfig | DictConfig | dict | None = None):
        super().__init__()
        cfg = build_config(PatchDiscriminatorConfig, config, source="PatchDiscriminator config")
        if cfg.norm not in _NORMS:
            raise ConfigError(f"PatchDiscriminator: norm must be one of {', '.join(_NORMS)}, got {cfg.norm!r}")
        if cfg.num_layers < 1:
            raise ConfigError("PatchDiscriminator: num_layers must be at least 1")
        self.config = cfg

        def conv(cin: int, cout: int, stride: int, bias: bool = True) -> nn.Module:
            c = nn.Conv2d(cin, cout, 4, stride, 1, bias=bias)
            return _sn(c) if cfg.spectral_norm else c

        # A conv followed by an affine norm needs no bias: the norm's shift replaces it.
        bias = cfg.norm == "none"
        nf = cfg.base_channels
        layers: list[nn.Module] = [conv(cfg.in_channels, nf, 2), nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, cfg.num_layers):
            prev, nf = nf, cfg.base_channels * min(2**i, 8)
            layers += [conv(prev, nf, 2, bias), _norm(cfg.norm, nf), nn.LeakyReLU(0.2, inplace=True)]
        prev, nf = nf, cfg.base_channels * min(2**cfg.num_layers, 8)
        layers += [conv(prev, nf, 1, bias), _norm(cfg.norm, nf), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(conv(nf, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,C,H,W) in [-1, 1] -> (B,1,H',W') logits."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"PatchDiscriminator: expected (B,{self.config.in_channels},H,W), got {tuple(x.shape)}")
        return self.model(x)
