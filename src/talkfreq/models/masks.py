"""The masks a stage-1 generator inpaints: which pixels of the target are hidden, and how they are blanked."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from talkfreq.face.config import ellipse_offsets

MaskKind = Literal["half", "lower", "full"]
DUB_MASKS = ("half", "lower")


def make_mask(kind: MaskKind, *, batch: int, size: int, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (B,1,S,S) mask, 1 = hidden: ``"half"`` hides rows S//2.. and ``"lower"`` the ellipse
    ``face.config.REGIONS["lower"]`` (dubbing), ``"full"`` hides all (one-shot)."""
    mask = torch.zeros(batch, 1, size, size, device=device, dtype=dtype)
    if kind == "half":
        mask[:, :, size // 2:] = 1.0
    elif kind == "lower":
        inside = np.hypot(*ellipse_offsets("lower", size)) <= 1.0
        mask[:, :] = torch.from_numpy(inside).to(device=device, dtype=dtype)
    elif kind == "full":
        mask.fill_(1.0)
    else:
        raise ValueError(f"mask kind must be 'half', 'lower' or 'full', got {kind!r}")
    return mask


def apply_mask(image: torch.Tensor, mask: torch.Tensor, *, fill: float = 0.0) -> torch.Tensor:
    """Blank the hidden pixels of ``image`` (B,3,S,S) with ``fill`` (0 = mid-grey in [-1, 1]) where mask (B,1,S,S)=1."""
    return image * (1.0 - mask) + fill * mask
