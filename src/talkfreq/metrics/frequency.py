"""Frequency-domain view of a video's face crops (FREAK's figure 1) and the numbers derived from it.

Choices (ours, documented because they change the numbers):

* Spectra are taken on the **grey** (BT.601 luma) image in [0, 1]: one spectrum per frame, as FREAK's figure shows,
  and colour channels of natural images share almost the same spectral shape.
* ``fft2(norm="ortho")``, no window: the plain spectrum FREAK and earlier synthetic-image studies show (the frame
  border adds the usual horizontal/vertical cross; it is the same for every candidate at the same crop).
* log amplitude = ``log(|F| + 1e-5)``: the epsilon keeps fully blurred (near-zero) coefficients finite; it sits well
  below the high-frequency amplitude of real 8-bit video (quantisation alone gives ~1e-3 with ortho scaling).
* Frequencies are measured as a normalised radius ``r = sqrt(fx^2 + fy^2) / 0.5`` (fx, fy in cycles/pixel): r = 1 at
  the Nyquist frequency along an axis, corners reach sqrt(2).
* Power statistics (radial spectrum, high-frequency ratio) drop the DC term (each frame's mean), so brightness does
  not dilute them. The radial spectrum covers r in [0, 1] (the corners have no full ring); the ratio uses every
  frequency. Ratios pool energy over frames (sum of high / sum of total), which a stream can accumulate exactly.
* ``region``: a pixel box ``(x0, y0, x1, y1)`` (see :func:`talkfreq.metrics.fidelity.crop_box`), e.g. the mouth.

:class:`SpectrumAccumulator` adds batches one at a time, so a long video is never held in memory; the one-shot
functions equal an accumulator fed the same frames in any chunking.
"""

from __future__ import annotations

import numpy as np
import torch

from talkfreq.metrics.fidelity import Box, as_frames, crop_box

__all__ = [
    "HF_RADIUS",
    "LOG_EPS",
    "RADIAL_BINS",
    "SpectrumAccumulator",
    "high_frequency_ratio",
    "mean_log_spectrum",
    "radial_power_spectrum",
    "radius_grid",
    "spectrum_gap",
    "to_grey",
]

LOG_EPS = 1e-5
HF_RADIUS = 0.25  # default "high frequency" cut: normalised radius beyond which energy counts as high (period < 8 px)
RADIAL_BINS = 64  # default number of rings of the radial power spectrum
_LUMA = (0.299, 0.587, 0.114)


def to_grey(frames) -> torch.Tensor:
    """(B, 3, H, W) RGB (or (B, 1, H, W)) frames in [0, 1] -> (B, H, W) float64 BT.601 luma."""
    x = as_frames(frames).double()
    if x.shape[1] == 1:
        return x[:, 0]
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1)


def radius_grid(h: int, w: int) -> np.ndarray:
    """(H, W) normalised radius of each fftshift-ed frequency bin (1 = Nyquist along an axis)."""
    fy = np.fft.fftshift(np.fft.fftfreq(h))
    fx = np.fft.fftshift(np.fft.fftfreq(w))
    return np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / 0.5


def _spectra(frames, region: Box | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Sum over frames of the (H, W) log amplitude and of the DC-free power, both fftshift-ed, and the frame count."""
    g = crop_box(to_grey(frames), region)
    f = torch.fft.fftshift(torch.fft.fft2(g, norm="ortho"), dim=(-2, -1))
    amp = f.abs()
    log_sum = torch.log(amp + LOG_EPS).sum(0)
    power = amp.square()
    h, w = g.shape[-2:]
    power[:, h // 2, w // 2] = 0.0  # DC sits at the centre after fftshift
    return log_sum.cpu().numpy(), power.sum(0).cpu().numpy(), g.shape[0]


def _radial(power: np.ndarray, n_bins: int) -> np.ndarray:
    r = radius_grid(*power.shape)
    idx = np.floor(r * n_bins).astype(np.int64)
    keep = idx < n_bins  # r < 1: full rings only
    sums = np.bincount(idx[keep], weights=power[keep], minlength=n_bins)
    counts = np.bincount(idx[keep], minlength=n_bins)
    return np.divide(sums, counts, out=np.zeros(n_bins), where=counts > 0)


def _hf_ratio(power: np.ndarray, radius: float) -> float:
    total = power.sum()
    if total <= 0:
        return 0.0  # a flat (constant) region has no AC energy at all
    return float(power[radius_grid(*power.shape) > radius].sum() / total)


class SpectrumAccumulator:
    """Streaming spectrum statistics: ``add`` (B, 3, H, W) batches, then read the results.

    All batches must have the same (cropped) size. Holds two (H, W) float64 arrays, whatever the video length.
    """

    def __init__(self, *, region: Box | None = None):
        self.region = region
        self.count = 0
        self._log_sum: np.ndarray | None = None
        self._power_sum: np.ndarray | None = None

    def add(self, frames) -> SpectrumAccumulator:
        """Add a batch of frames (any format :func:`as_frames` takes); returns self."""
        log_sum, power_sum, n = _spectra(frames, self.region)
        if self._log_sum is None:
            self._log_sum, self._power_sum = log_sum, power_sum
        else:
            if log_sum.shape != self._log_sum.shape:
                raise ValueError(f"frame size changed mid-stream: {log_sum.shape} vs {self._log_sum.shape}")
            self._log_sum += log_sum
            self._power_sum += power_sum
        self.count += n
        return self

    def _check(self) -> None:
        if self.count == 0:
            raise ValueError("no frames were added")

    def mean_log_spectrum(self) -> np.ndarray:
        """(H, W) mean log amplitude, fftshift-ed (DC at the centre)."""
        self._check()
        return self._log_sum / self.count

    def mean_power(self) -> np.ndarray:
        """(H, W) mean power |F|^2 without DC, fftshift-ed."""
        self._check()
        return self._power_sum / self.count

    def radial_power_spectrum(self, *, n_bins: int = RADIAL_BINS) -> np.ndarray:
        """(n_bins,) mean power in equal-width rings of normalised radius over [0, 1)."""
        return _radial(self.mean_power(), n_bins)

    def high_frequency_ratio(self, *, radius: float = HF_RADIUS) -> float:
        """Energy at normalised radius > ``radius`` / total AC energy, pooled over frames."""
        return _hf_ratio(self.mean_power(), radius)


def mean_log_spectrum(frames, *, region: Box | None = None) -> np.ndarray:
    """(H, W) averaged log-amplitude spectrum of (B, 3, H, W) frames (fftshift-ed; the FREAK figure-1 image)."""
    return SpectrumAccumulator(region=region).add(frames).mean_log_spectrum()


def spectrum_gap(spec_a: np.ndarray, spec_b: np.ndarray) -> float:
    """Mean |difference| between two (H, W) log-amplitude spectra (0 for a video against itself)."""
    a, b = np.asarray(spec_a, np.float64), np.asarray(spec_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spectra of different sizes: {a.shape} vs {b.shape}; crop both videos the same way")
    return float(np.abs(a - b).mean())


def radial_power_spectrum(frames, *, n_bins: int = RADIAL_BINS, region: Box | None = None) -> np.ndarray:
    """(n_bins,) radially averaged power spectrum of (B, 3, H, W) frames (DC dropped; r in [0, 1))."""
    return SpectrumAccumulator(region=region).add(frames).radial_power_spectrum(n_bins=n_bins)


def high_frequency_ratio(frames, *, radius: float = HF_RADIUS, region: Box | None = None) -> float:
    """Fraction of the AC energy of (B, 3, H, W) frames at normalised radius > ``radius`` (in [0, 1])."""
    return SpectrumAccumulator(region=region).add(frames).high_frequency_ratio(radius=radius)
