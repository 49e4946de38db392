"""The restoration parts of a SOVQAE: a code predictor, encoder-to-decoder feature fusion, and a frequency split.

A VQ autoencoder trained on clean frames restores a degraded frame only as far as nearest-code snapping lands on the
clean frame's codes, and the measurements said that is not far: under blur σ 1.5 most codes flip, the decoder draws
from the wrong codes, and what stage 1 got right (the mouth's shape and timing) is replaced by a code's guess. These
three parts, each off by default (old files load unchanged), turn it into a restorer that keeps stage 1's structure:

- :class:`CodePredictor` (CodeFormer's idea, Zhou et al. 2022: predict the clean codes from the degraded latents with
  a transformer trained by cross-entropy against the clean frame's indices). Ours: its logits are the transformer's
  output *plus* the nearest-code prior ``-||z - c_k||² / (T s²)`` (``s`` the latents' spread), and the transformer's
  last layer starts at zero, so an untrained predictor picks exactly the nearest codes and training can only move
  it away from snapping where the cross-entropy says so.
- :class:`FeatureFusion` (CodeFormer's controllable feature transformation): at each decoder level the encoder's
  features of the *input* at the same resolution give a per-pixel scale and shift,
  ``h <- h + w (h * scale + shift)``, zero-initialised so a fresh fusion is the identity. It carries what the codes
  cannot: where exactly this frame's lip contour, eyelid or hair strand is.
- :func:`frequency_split` (ours): the output keeps the input's low frequencies and takes the refiner's high ones,
  ``y = r + (1 - f) G_σ*(x - r) + f (x - r)`` — so at fidelity ``f = 1`` the output *is* the input, at ``f = 0`` it
  is ``G_σ*x + (r - G_σ*r)``. Mouth opening and lip timing live in the low frequencies (a σ of a few pixels at
  128-256 px), so the refiner cannot undo stage 1's lip sync, only sharpen it.

Tensors are ``(B, C, H, W)``; images in ``[-1, 1]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class CodePredictor(nn.Module):
    """(B, D, h, w) degraded latents -> (B, K, h, w) logits over the codebook's K codes.

    A pre-norm transformer encoder over the ``h * w`` positions (learned position embeddings), whose logits are added
    to the nearest-code prior (see the module docstring); ``layers=0`` is the prior alone, i.e. nearest-code snapping.
    """

    def __init__(self, *, latent_dim: int, num_codes: int, positions: int, dim: int = 128, layers: int = 2,
                 heads: int = 4, temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature
        self.proj_in = nn.Linear(latent_dim, dim)
        self.pos = nn.Parameter(torch.zeros(1, positions, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        block = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)
        nn.init.zeros_(self.head.weight)  # starts as the nearest-code prior alone
        nn.init.zeros_(self.head.bias)

    def forward(self, z: Tensor, *, codebook: Tensor, scale: Tensor | float) -> Tensor:
        """``z`` (B, D, h, w) in the quantiser's space, ``codebook`` (K, D), ``scale`` the latents' spread."""
        h = z.shape[-2]
        seq = rearrange(z, "b d h w -> b (h w) d").float()
        d2 = torch.cdist(seq, codebook.float()[None]).pow(2) / (scale * scale)  # (B, N, K)
        t = self.blocks(self.proj_in(seq) + self.pos)
        logits = self.head(self.norm(t)) - d2 / self.temperature
        return rearrange(logits, "b (h w) k -> b k h w", h=h)


class FeatureFusion(nn.Module):
    """(B, C, H, W) decoder features + same-shape encoder features -> fused decoder features (identity at init)."""

    def __init__(self, *, channels: int):
        super().__init__()

        def branch() -> nn.Sequential:
            last = nn.Conv2d(channels, channels, 3, padding=1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            return nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.LeakyReLU(0.2), last)

        self.scale, self.shift = branch(), branch()

    def forward(self, dec: Tensor, enc: Tensor, *, weight: float = 1.0) -> Tensor:
        both = torch.cat([enc, dec], dim=1)
        return dec + weight * (dec * self.scale(both) + self.shift(both))


def gaussian_lowpass(x: Tensor, *, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflect padding; ``sigma`` in pixels (0: unchanged)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    # reflect padding needs the pad < the side; tiny test crops fall back to replicate
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    y = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, radius, radius), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def frequency_split(x: Tensor, refined: Tensor, *, sigma: float, fidelity: float = 0.0) -> Tensor:
    """Input's low frequencies + refined high ones (see the module docstring). ``sigma`` 0 (no split) returns the
    plain blend ``fidelity * x + (1 - fidelity) * refined``; ``fidelity`` 1 returns ``x`` exactly either way."""
    if fidelity >= 1.0:
        return x
    diff = x - refined
    low = gaussian_lowpass(diff, sigma=sigma) if sigma > 0 else torch.zeros_like(diff)
    return refined + (1.0 - fidelity) * low + fidelity * diff


__all__ = ["CodePredictor", "FeatureFusion", "frequency_split", "gaussian_lowpass"]
