"""Full-reference fidelity: PSNR, SSIM (whole crop and a region such as the mouth), LPIPS, FID.

Frames are (B, 3, H, W) float tensors in [0, 1]; every function also takes uint8 numpy (B, H, W, 3) RGB frames (what
:mod:`talkfreq.io.video` yields), converted by :func:`as_frames`. A region is a pixel box ``(x0, y0, x1, y1)``
(``x1``/``y1`` exclusive, as in a ``[y0:y1, x0:x1]`` slice) in the frames' own coordinates.

Conventions (ours):

* SSIM is Wang et al.'s as scikit-image computes it (``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)``): 11-tap Gaussian window (sigma 1.5, truncated at
  3.5 sigma), population statistics, the SSIM map averaged over the interior only (5 px from each border, where the
  window lies inside the frame) and over the colour channels; identical frames give exactly 1.
* PSNR is computed per frame and averaged; identical frames give ``inf`` (never a silent cap), so a video against
  itself reports ``inf``. Pass ``max_db`` to cap per-frame values before averaging when a finite mean is needed.
* LPIPS and FID need user-supplied networks; without them they return ``None`` (shown as "unavailable"), never a
  number from random weights.
* FID: :func:`fid_score` is the Frechet distance between two feature sets (pytorch-fid's formula); the features of
  pytorch-fid's Inception come from :class:`talkfreq.models.inception_fid.FIDInceptionV3` loaded from the user's
  ``pt_inception-2015-12-05-6726825d.pth`` (:mod:`talkfreq.metrics.fid`: running statistics, pooled FID).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from talkfreq.models.lpips import LPIPS

__all__ = ["as_frames", "crop_box", "fid_score", "lpips_score", "psnr", "region_psnr", "region_ssim", "ssim"]

Box = Sequence[float]
Reduction = Literal["mean", "none"]


def as_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Any frame batch -> (B, C, H, W) float32 tensor in [0, 1] (C = 3 or 1).

    Accepts a torch float (B, C, H, W) or (C, H, W) tensor in [0, 1] (returned as float32, same device), a torch uint8
    tensor of the same layout, or numpy (B, H, W, C) / (H, W, C) / (B, H, W) / (H, W) arrays: uint8 in [0, 255] or
    float in [0, 1].
    """
    if isinstance(frames, np.ndarray):
        a = frames
        if a.ndim == 2:
            a = a[None, :, :, None]
        elif a.ndim == 3 and a.shape[-1] not in (1, 3):
            a = a[..., None]  # (B, H, W) grey
        elif a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] not in (1, 3):
            raise ValueError(f"expected (B, H, W, 3) frames, got array shape {frames.shape}")
        # a read-only array (a prepared clip's memmap) is copied: torch warns on, and must never write to, those
        t = torch.from_numpy(np.ascontiguousarray(a) if a.flags.writeable else np.array(a)).permute(0, 3, 1, 2)
    elif isinstance(frames, torch.Tensor):
        t = frames[None] if frames.ndim == 3 else frames
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 3, H, W) frames, got tensor shape {tuple(frames.shape)}")
    else:
        raise TypeError(f"expected a torch tensor or numpy array of frames, got {type(frames).__name__}")
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    return t.float()


def crop_box(frames: torch.Tensor, box: Box | None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, y1-y0, x1-x0) crop of the pixel box ``(x0, y0, x1, y1)``; ``None`` = whole frame.

    Float boxes are rounded to whole pixels and clipped to the frame; an empty box is an error.
    """
    if box is None:
        return frames
    h, w = frames.shape[-2:]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = max(0, x0), min(w, x1)
    y0, y1 = max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region box {tuple(box)} is empty inside a {w}x{h} frame")
    return frames[..., y0:y1, x0:x1]


def _pair(pred, target, box: Box | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = as_frames(pred), as_frames(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    return crop_box(p, box), crop_box(t.to(p.device), box)


def _reduce(values: torch.Tensor, reduction: Reduction) -> float | np.ndarray:
    v = values.detach().double().cpu().numpy()
    if reduction == "none":
        return v
    if reduction == "mean":
        return float(v.mean())
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(
    pred, target, *, data_range: float = 1.0, max_db: float | None = None, reduction: Reduction = "mean"
) -> float | np.ndarray:
    """Per-frame PSNR in dB between (B, 3, H, W) batches, averaged (``reduction="mean"``) or as a (B,) array.

    Identical frames give ``inf`` (so does the mean); ``max_db`` caps each frame's value first.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    p, t = _pair(pred, target)
    with torch.no_grad():
        v = peak_signal_noise_ratio(p, t, data_range=data_range, reduction="none", dim=(1, 2, 3))
    v = v.reshape(-1)
    if max_db is not None:
        v = v.clamp(max=max_db)
    return _reduce(v, reduction)


SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scipy.ndimage's truncate=3.5 (scikit-image's window: 11 px)


def _gaussian_taps(device) -> torch.Tensor:
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _interior_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian of (B, C, H, W), valid part only (the interior scikit-image averages)."""
    c = x.shape[1]
    k = taps.numel()
    x = torch.nn.functional.conv2d(x, taps.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return torch.nn.functional.conv2d(x, taps.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def _ssim_mean(x, y, blur: Callable, c1: float, c2: float):
    """The mean SSIM map of one frame pair (torch tensors or numpy arrays, float64), ``blur`` being the Gaussian
    window's valid filter on that kind of array."""
    mx, my = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return (((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean()


def _ssim_torch(p: torch.Tensor, t: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """:func:`ssim`'s per-frame values with torch (on the frames' device: a GPU's)."""
    taps = _gaussian_taps(p.device)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return _interior_filter(x, taps)

    # one frame at a time: float64 maps of large frames stay small
    return torch.stack([_ssim_mean(p[i:i + 1].double(), t[i:i + 1].double(), blur, c1, c2)
                        for i in range(p.shape[0])])


def _ssim_cpu(p: torch.Tensor, t: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """:func:`ssim`'s per-frame values on the CPU: the same float64 maps, filtered by OpenCV's separable filter
    (several times faster than torch's float64 depthwise convolution; the interior of its "same" output is the
    valid filter, equal to :func:`_interior_filter`'s to rounding)."""
    import cv2

    r = SSIM_RADIUS
    taps = _gaussian_taps("cpu").numpy()

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(x, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    def hwc(x: torch.Tensor) -> np.ndarray:
        return x.double().permute(1, 2, 0).contiguous().numpy()

    # (H, W, C) float64 maps of one frame at a time
    return torch.tensor([float(_ssim_mean(hwc(p[i]), hwc(t[i]), blur, c1, c2)) for i in range(p.shape[0])],
                        dtype=torch.float64)


def ssim(pred, target, *, data_range: float = 1.0, reduction: Reduction = "mean") -> float | np.ndarray:
    """Per-frame SSIM as scikit-image / Wang et al. (see the module docstring), averaged or as a (B,) array.

    Frames (or regions) must be at least 11 px on each side. Computed in float64.
    """
    p, t = _pair(pred, target)
    side = 2 * SSIM_RADIUS + 1
    if min(p.shape[-2:]) < side:
        raise ValueError(f"SSIM needs at least {side}x{side} pixels, got {tuple(p.shape[-2:])}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    with torch.no_grad():
        return _reduce((_ssim_cpu if p.device.type == "cpu" else _ssim_torch)(p, t, c1, c2), reduction)


def region_psnr(pred, target, *, box: Box, **kwargs) -> float | np.ndarray:
    """:func:`psnr` inside the pixel box ``(x0, y0, x1, y1)`` (e.g. the mouth region of the face crop)."""
    p, t = _pair(pred, target, box)
    return psnr(p, t, **kwargs)


def region_ssim(pred, target, *, box: Box, **kwargs) -> float | np.ndarray:
    """:func:`ssim` inside the pixel box ``(x0, y0, x1, y1)``."""
    p, t = _pair(pred, target, box)
    return ssim(p, t, **kwargs)


def lpips_score(
    pred, target, *, lpips: LPIPS | None, batch_size: int = 16, reduction: Reduction = "mean"
) -> float | np.ndarray | None:
    """Mean LPIPS-VGG (or a (B,) array) between frame batches in [0, 1]; ``None`` when ``lpips`` is None.

    ``None`` means "unavailable" (no VGG16 weights supplied): never substitute a randomly initialised network.
    """
    if lpips is None:
        return None
    p, t = _pair(pred, target)
    device = next(lpips.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, p.shape[0], batch_size):  # bounded memory for long videos
            pb, tb = p[i : i + batch_size].to(device), t[i : i + batch_size].to(device)
            out.append(lpips(pb, tb, normalize=True).cpu())
    return _reduce(torch.cat(out), reduction)


def fid_score(
    real_feats: np.ndarray | torch.Tensor | None, fake_feats: np.ndarray | torch.Tensor | None
) -> float | None:
    """Frechet distance between two feature sets (N, D) and (M, D); ``None`` when either is None (unavailable).

    ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with unbiased covariances, as pytorch-fid's
    ``calculate_frechet_distance`` (including its small diagonal offset when the product is singular). The features
    come from a user-supplied network (Inception pool3 for a comparable FID); the value is only comparable between
    runs that used the same network and similar sample counts.
    """
    from talkfreq.metrics.fid import FeatureStats, fid_from_stats

    if real_feats is None or fake_feats is None:
        return None
    a = np.asarray(real_feats.detach().cpu() if isinstance(real_feats, torch.Tensor) else real_feats, np.float64)
    b = np.asarray(fake_feats.detach().cpu() if isinstance(fake_feats, torch.Tensor) else fake_feats, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) feature arrays, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("the Frechet distance needs at least 2 feature vectors per set")
    return fid_from_stats(FeatureStats(a.shape[1]).add(a), FeatureStats(b.shape[1]).add(b))
