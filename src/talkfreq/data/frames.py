"""uint8 frames -> network tensors: one function shared by the datasets and the inference pipelines (a module of
its own so that inference does not import the Lightning data modules)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def frames_to_tensor(frames: np.ndarray, *, size: int) -> torch.Tensor:
    """(..., H, W, 3) uint8 RGB -> (..., 3, size, size) float32 in [-1, 1] (antialiased resize when H != size)."""
    x = torch.from_numpy(np.array(frames, copy=True)).float().div_(127.5).sub_(1.0)  # copy: memmaps are read-only
    x = x.movedim(-1, -3)
    if x.shape[-1] != size or x.shape[-2] != size:
        lead = x.shape[:-3]
        x = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True).reshape(*lead, 3, size, size)
    return x
