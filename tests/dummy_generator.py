"""A stage-1 generator that talkfreq does not ship: one module and one registry entry, nothing else.

``tests/test_registry.py`` runs ``infer`` and ``bench`` on it; that it needs no other change to talkfreq is the
point. A real new generator (a diffusion model, say) is the same: its nn.Module with a config dataclass, the call
that adapts talkfreq's tensors to its forward, and a :func:`~talkfreq.models.registry.register` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from talkfreq.models._io import PretrainedMixin, build_config
from talkfreq.models.registry import BenchModel, ModelKind, register


@dataclass
class DummyConfig:
    image_size: int = 96
    channels: int = 8


class DummyGenerator(PretrainedMixin, nn.Module):
    """``forward(reference (B,3,S,S), masked (B,3,S,S), audio (B,1,80,16)) -> (B,3,S,S)`` in [-1, 1]."""

    config_class = DummyConfig

    def __init__(self, *, config: DummyConfig | dict | None = None):
        super().__init__()
        self.config = build_config(DummyConfig, config, source="DummyGenerator config")
        c = self.config.channels
        self.body = nn.Sequential(nn.Conv2d(6, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))
        self.audio = nn.Linear(80 * 16, 3)

    def forward(self, reference: torch.Tensor, masked: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        shift = self.audio(audio.flatten(1).float())[:, :, None, None]
        return torch.tanh(self.body(torch.cat([masked, reference], dim=1)) + shift)


def generate(model: DummyGenerator, *, reference, masked, audio, mask):
    return model(reference, masked, audio)


KIND = register(ModelKind(
    "dummy", "generator", DummyGenerator, forward=generate,
    bench={"Dummy-96": BenchModel({"image_size": 96}, {"image_size": 96, "channels": 4}, refiner="SOVQAE-96")}))
