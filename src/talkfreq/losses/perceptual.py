"""L_percep: LPIPS-VGG (:mod:`talkfreq.models.lpips`) as a training loss; built at start-up, so missing VGG16
weights fail before training begins, with a message saying how to supply them."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from talkfreq.models.lpips import LPIPS


class PerceptualLoss(nn.Module):
    """L_percep for training: mean LPIPS-VGG over the batch; inputs in [0, 1] by default (``normalize=True``).

    Construct it at start-up: without weights it raises :class:`TalkfreqError` saying how to supply them.
    """

    def __init__(self, vgg16_path: str | Path | None = None, *, normalize: bool = True, lpips: LPIPS | None = None):
        super().__init__()
        self.lpips = lpips if lpips is not None else LPIPS.from_path(vgg16_path)
        self.normalize = normalize

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.lpips(pred, target, normalize=self.normalize).mean()
