"""Building blocks of :mod:`talkfreq.models.freak`: residual blocks, encoders, the audio encoder, VEFM and AVFM.

What comes from the FREAK paper and what is ours is listed in the docstring of :mod:`talkfreq.models.freak`; each
class below repeats it in one line. All spectral work runs in float32 with autocast off, because ``torch.fft`` does
not take bfloat16 and half-precision spectra lose the small high-frequency terms these modules exist to model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def group_count(channels: int) -> int:
    """GroupNorm groups for ``channels``: up to 32, at least 4 channels per group where possible (ours)."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv ×2 with a (1×1 when widths differ) shortcut. (B,Cin,H,W) -> (B,Cout,H,W). Ours.

    GroupNorm rather than BatchNorm so inference at batch 1 behaves as in training.
    """

    def __init__(self, *, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(group_count(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(group_count(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class VisualEncoder(nn.Module):
    """Multi-scale image encoder. (B,Cin,S,S) -> [ (B,ch[i],S/(f·2^i),S/(f·2^i)) for i in range(len(ch)) ]. Ours.

    Scale 0 is at full resolution (VEFM there sees the finest detail, which is FREAK's point), or at S/f with a
    space-to-depth stem (``stem_downsample = f``, see :mod:`talkfreq.models.freak`); each later scale halves the
    resolution with a stride-2 convolution.
    """

    def __init__(self, *, in_channels: int, channels: list[int], stem_downsample: int = 1):
        super().__init__()
        f = stem_downsample
        conv = nn.Conv2d(in_channels * f * f, channels[0], 3, padding=1)
        # f=1 keeps the plain conv (and its state-dict keys) so files saved before the option still load
        self.stem = conv if f == 1 else nn.Sequential(nn.PixelUnshuffle(f), conv)
        stages = [ResBlock(in_channels=channels[0], out_channels=channels[0])]
        for prev, cur in zip(channels[:-1], channels[1:]):
            stages.append(nn.Sequential(nn.Conv2d(prev, cur, 3, stride=2, padding=1),
                                        ResBlock(in_channels=cur, out_channels=cur)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class AudioEncoder(nn.Module):
    """Audio window -> embedding. (B,T,F) -> (B,E). Ours (the paper only says "HuBERT features with a context").

    Per-frame LayerNorm (mel in ±4 and HuBERT activations differ in scale by orders of magnitude), a linear
    projection, two residual 1-D convolutions over time, then a flatten over the fixed window so the position of
    each frame in the window (which one is "now") is kept, and a 2-layer MLP.
    """

    def __init__(self, *, audio_dim: int, audio_len: int, hidden: int, embed_dim: int):
        super().__init__()
        self.audio_len = audio_len
        self.norm = nn.LayerNorm(audio_dim)
        self.proj = nn.Linear(audio_dim, hidden)
        self.conv1 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.head = nn.Sequential(nn.Linear(hidden * audio_len, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.proj(self.norm(audio)), "b t c -> b c t")
        h = h + self.conv1(F.silu(h))
        h = h + self.conv2(F.silu(h))
        return self.head(rearrange(h, "b c t -> b (c t)"))


def _spectral(fn):
    """Run ``fn`` in float32 with autocast disabled (see module docstring)."""

    def wrapped(self, *args: torch.Tensor) -> torch.Tensor:
        dev = args[0].device.type
        if not torch.amp.is_autocast_available(dev):  # e.g. "meta" (shape/FLOP counting): nothing to disable
            return fn(self, *(a.float() for a in args)).to(args[0].dtype)
        with torch.autocast(device_type=dev, enabled=False):
            return fn(self, *(a.float() for a in args)).to(args[0].dtype)

    return wrapped


class VEFM(nn.Module):
    """Visual Encoding Frequency Modulator. (ref (B,C,H,W), masked (B,C,H,W)) -> (B,C,H,W).

    Paper (outline, via a third-party summary): FFT2 of the reference features -> real part -> 1×1 conv = adaptive
    filter; masked features -> gated convolution -> FFT2; element-wise product with the filter; inverse FFT.
    Ours: ``torch.fft.rfft2`` with ``norm="ortho"``; the real spectrum is divided by its RMS over frequencies (per
    sample and channel) before the 1×1 conv so that the filter is O(1) at every resolution and brightness; the
    residual form ``masked + iFFT(...)``; zero initialisation of the 1×1 conv, which makes the module exactly the
    identity on ``masked`` at step 0 while its own weights still get gradients (the branch wakes up after one step).
    """

    def __init__(self, *, channels: int):
        super().__init__()
        self.gated = nn.Conv2d(channels, 2 * channels, 3, padding=1)  # feature and gate in one conv
        self.filter = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.filter.weight)
        nn.init.zeros_(self.filter.bias)

    @_spectral
    def branch(self, ref: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """The frequency-domain term added to ``masked``; (B,C,H,W) float32."""
        h, w = masked.shape[-2:]
        ref_spec = torch.fft.rfft2(ref, norm="ortho").real  # (B,C,H,W//2+1)
        rms = ref_spec.pow(2).mean(dim=(-2, -1), keepdim=True).add(1e-6).sqrt()
        filt = self.filter(ref_spec / rms)
        feat, gate = self.gated(masked).chunk(2, dim=1)
        spec = torch.fft.rfft2(feat * torch.sigmoid(gate), norm="ortho")
        return torch.fft.irfft2(spec * filt, s=(h, w), norm="ortho")

    def forward(self, ref: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        return masked + self.branch(ref, masked)


def band_weights(height: int, width: int, num_bands: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Soft radial band membership of every rFFT2 bin. -> (K, H, W//2+1), summing to 1 over K. Ours.

    The radius ``sqrt(fy² + fx²)`` (cycles/pixel, 0 .. sqrt(0.5)) is mapped linearly onto band centres 0..K-1 and
    each bin is shared between its two nearest bands with hat (linear) weights, so a per-band gain becomes a
    piecewise-linear function of frequency without steps at band edges.
    """
    fy = torch.fft.fftfreq(height, device=device)
    fx = torch.fft.rfftfreq(width, device=device)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / math.sqrt(0.5)  # 0 .. 1
    pos = radius * (num_bands - 1)  # 0 .. K-1
    centres = torch.arange(num_bands, device=device, dtype=pos.dtype)
    return (1.0 - (pos[None] - centres[:, None, None]).abs()).clamp(min=0.0)


class AVFM(nn.Module):
    """Audio Visual Frequency Modulator. (x (B,C,H,W), audio_emb (B,E)) -> (B,C,H,W). Entirely ours.

    The paper only says that AVFM modulates visual features in the frequency domain with the audio. Here the audio
    embedding predicts, per channel, a gain for each of ``num_bands`` radial frequency bands, applied to the rFFT2
    of ``x`` in residual form ``x + iFFT(FFT(x) · Δ(r))`` (so the effective gain is ``1 + Δ``), followed by a
    per-channel FiLM in space ``x · (1 + γ) + β``. Both heads are zero-initialised: the module is exactly the
    identity at step 0. With ``spectral=False`` only the FiLM remains — the plain-fusion ablation.
    """

    def __init__(self, *, channels: int, embed_dim: int, num_bands: int, spectral: bool = True):
        super().__init__()
        self.num_bands = num_bands
        self.to_gain = nn.Linear(embed_dim, channels * num_bands) if spectral else None
        self.to_film = nn.Linear(embed_dim, 2 * channels)
        for lin in (self.to_gain, self.to_film):
            if lin is not None:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    @_spectral
    def spectral_branch(self, x: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        """``iFFT(FFT(x) · Δ(r))``; (B,C,H,W) float32."""
        assert self.to_gain is not None
        h, w = x.shape[-2:]
        delta = rearrange(self.to_gain(audio_emb), "b (c k) -> b c k", k=self.num_bands)
        gain = torch.einsum("bck,kyx->bcyx", delta, band_weights(h, w, self.num_bands, device=x.device))
        return torch.fft.irfft2(torch.fft.rfft2(x, norm="ortho") * gain, s=(h, w), norm="ortho")

    def forward(self, x: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        if self.to_gain is not None:
            x = x + self.spectral_branch(x, audio_emb)
        gamma, beta = rearrange(self.to_film(audio_emb), "b (two c) -> two b c 1 1", two=2)
        return x * (1.0 + gamma) + beta
