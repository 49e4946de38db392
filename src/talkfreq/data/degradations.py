"""Image degradations for the SOVQAE refiner: what blurs a face crop, and stage-1 output pairs.

Used by the denoising fine-tune (the encoder sees a degraded frame, the target is the clean frame's codes) and by
``talkfreq diagnose-refiner`` (each kind at a fixed strength, through the NRoUB diagnostics).

Every function takes and returns an (H, W, 3) uint8 RGB image of the same shape, never modifies its input, and is
the identity at strength 0 (sigma 0, length <= 1, factor <= 1, noise 0, and ``quality=None`` or >= 100 for JPEG).

What BasicSR parts this replaces (BasicSR is not a dependency here; everything is OpenCV/numpy):

- ``basicsr.data.degradations.random_mixed_kernels`` / ``bivariate_Gaussian``: only the isotropic Gaussian kernel
  (:func:`gaussian_blur`) and, ours, a line kernel for motion blur (:func:`motion_blur`); the anisotropic,
  generalised, plateau and sinc kernels are not reproduced;
- ``random_add_gaussian_noise`` (colour or grey Gaussian noise; BasicSR's Poisson noise is not reproduced);
- ``random_add_jpg_compression`` / ``add_jpg_compression``: the same ``cv2.imencode(".jpg")`` round trip;
- Real-ESRGAN's random resize step: :func:`down_up` (down by a factor, back up, random interpolations) keeps the
  frame size, because the refiner works at a fixed crop size.

:func:`degrade` composes a random subset in Real-ESRGAN's first-order order (blur, resize, noise, JPEG); the
sampling rules (each kind with probability ``prob``, at least ``min_kinds``, parameters uniform in their ranges,
all scaled by ``strength``) are ours. The second-order pipeline is not reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from talkfreq.errors import ConfigError

__all__ = [
    "KINDS",
    "FIXED_STRENGTHS",
    "Degradation",
    "apply_kind",
    "degrade",
    "describe",
    "down_up",
    "gaussian_blur",
    "jpeg",
    "motion_blur",
    "motion_kernel",
    "gaussian_noise",
    "stage1_output_pairs",
]

KINDS = ("gaussian_blur", "motion_blur", "downup", "jpeg", "noise")  # also the order in which degrade applies them

# The fixed strengths of `talkfreq diagnose-refiner` (native units, see apply_kind). Blur sigma 1.5 and down-up x4
# are the acceptance degradations; the others are "clearly visible, face still recognisable" at 128-256 px.
FIXED_STRENGTHS: dict[str, float] = {
    "gaussian_blur": 1.5,
    "motion_blur": 7.0,
    "downup": 4.0,
    "jpeg": 30.0,
    "noise": 10.0,
}

_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)


def _check(img: np.ndarray) -> None:
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")


def gaussian_blur(img: np.ndarray, *, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur with standard deviation ``sigma`` pixels (kernel 2*ceil(3 sigma)+1); 0 = identity."""
    _check(img)
    if sigma <= 0:
        return img.copy()
    k = 2 * int(math.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(img, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """(k, k) float32 line kernel of ``length`` pixels at ``angle`` degrees (0 = horizontal), summing to 1.

    Drawn anti-aliased on a 4x supersampled grid and area-downsampled, so fractional lengths and any angle give a
    smooth, centred kernel (ours: a camera/head shake over one exposure is a short straight streak).
    """
    k = max(3, int(math.ceil(length)) | 1)
    up = 4
    big = np.zeros((k * up, k * up), np.float32)
    c = (k * up - 1) / 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    half = (length * up - 1) / 2
    p0 = (int(round(c - dx * half)), int(round(c - dy * half)))
    p1 = (int(round(c + dx * half)), int(round(c + dy * half)))
    cv2.line(big, p0, p1, 1.0, thickness=up, lineType=cv2.LINE_AA)
    kernel = cv2.resize(big, (k, k), interpolation=cv2.INTER_AREA)
    return kernel / max(float(kernel.sum()), 1e-12)


def motion_blur(img: np.ndarray, *, length: float, angle: float = 0.0) -> np.ndarray:
    """Linear motion blur over ``length`` pixels at ``angle`` degrees; ``length <= 1`` = identity."""
    _check(img)
    if length <= 1:
        return img.copy()
    return cv2.filter2D(img, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT_101)


def down_up(img: np.ndarray, *, factor: float, down: int = cv2.INTER_AREA, up: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Downsample by ``factor`` and back to the original size (detail lost, size kept); ``factor <= 1`` = identity."""
    _check(img)
    if factor <= 1:
        return img.copy()
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=down)
    return cv2.resize(small, (w, h), interpolation=up)


def jpeg(img: np.ndarray, *, quality: float | None) -> np.ndarray:
    """JPEG round trip at ``quality`` (1-99, cv2.imencode); None or >= 100 = identity (no compression at all)."""
    _check(img)
    if quality is None or quality >= 100:
        return img.copy()
    q = int(np.clip(round(quality), 1, 99))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write a JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def gaussian_noise(img: np.ndarray, *, sigma: float, rng: np.random.Generator, grey: bool = False) -> np.ndarray:
    """Add N(0, sigma^2) noise (grey levels, 0-255 scale), per channel or the same on all (``grey``); 0 = identity."""
    _check(img)
    if sigma <= 0:
        return img.copy()
    shape = img.shape[:2] + ((1,) if grey else (3,))
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(img.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)


def describe(kind: str, strength: float) -> str:
    """A short label of a fixed-strength degradation, e.g. ``σ1.5``, ``×4``, ``q30``."""
    fmt = {"gaussian_blur": "σ{:g}", "motion_blur": "{:g}px", "downup": "×{:g}", "jpeg": "q{:g}", "noise": "σ{:g}"}
    return fmt.get(kind, "{:g}").format(strength)


def apply_kind(img: np.ndarray, *, kind: str, strength: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """One degradation at a fixed strength in its native unit: gaussian_blur sigma (px), motion_blur length (px,
    at a random angle when ``rng`` is given, else 45 degrees), downup factor, jpeg *quality* (lower is stronger;
    >= 100 = none), noise sigma (grey levels)."""
    if kind == "gaussian_blur":
        return gaussian_blur(img, sigma=strength)
    if kind == "motion_blur":
        angle = float(rng.uniform(0, 180)) if rng is not None else 45.0
        return motion_blur(img, length=strength, angle=angle)
    if kind == "downup":
        return down_up(img, factor=strength)
    if kind == "jpeg":
        return jpeg(img, quality=strength)
    if kind == "noise":
        return gaussian_noise(img, sigma=strength, rng=rng if rng is not None else np.random.default_rng(0))
    raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(KINDS)}")


@dataclass
class Degradation:
    """Random degradation of a clean face crop (:func:`degrade`). Ranges are [low, high] in native units.

    ``strength`` scales every sampled parameter toward its identity value (0 = no degradation at all, 1 = the
    ranges as written): a curriculum knob for the denoising fine-tune.
    """

    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    prob: float = 0.5  # each kind is applied with this probability ...
    min_kinds: int = 1  # ... but at least this many are (so every training input is actually degraded)
    strength: float = 1.0
    gaussian_sigma: list[float] = field(default_factory=lambda: [0.5, 2.5])
    motion_length: list[float] = field(default_factory=lambda: [3.0, 11.0])
    downup_factor: list[float] = field(default_factory=lambda: [1.5, 4.0])
    jpeg_quality: list[float] = field(default_factory=lambda: [30.0, 90.0])
    noise_sigma: list[float] = field(default_factory=lambda: [1.0, 10.0])
    grey_noise_prob: float = 0.4  # BasicSR's gray_prob
    # the degraded input's resolution over the crop's (ours): < 1 takes the crop down by it (area), degrades it there
    # with the ranges above and brings it back up (bicubic), as a refiner larger than its stage 1 sees stage 1's
    # faces (0.5: a 128 px generator under a 256 px refiner; the ranges keep their meaning at the generator's size)
    scale: float = 1.0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ConfigError(f"degradation.kinds: unknown {bad[0]!r}; choose from {', '.join(KINDS)}")
        if not 0.0 <= self.prob <= 1.0 or not 0.0 <= self.grey_noise_prob <= 1.0:
            raise ConfigError("degradation.prob and degradation.grey_noise_prob must be in [0, 1]")
        if not 0 <= self.min_kinds <= len(self.kinds):
            raise ConfigError(f"degradation.min_kinds must be in [0, {len(self.kinds)}], got {self.min_kinds}")
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"degradation.strength must be in [0, 1], got {self.strength}")
        if not 0.0 < self.scale <= 1.0:
            raise ConfigError(f"degradation.scale must be in (0, 1], got {self.scale}")
        for name in ("gaussian_sigma", "motion_length", "downup_factor", "jpeg_quality", "noise_sigma"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(f"degradation.{name} must be [low, high] with low <= high, got {list(lo_hi)}")


# identity value of each kind's native parameter: strength s maps a sampled p to identity + s * (p - identity)
_IDENTITY = {"gaussian_blur": 0.0, "motion_blur": 1.0, "downup": 1.0, "jpeg": 100.0, "noise": 0.0}
_RANGE = {"gaussian_blur": "gaussian_sigma", "motion_blur": "motion_length", "downup": "downup_factor",
          "jpeg": "jpeg_quality", "noise": "noise_sigma"}


def degrade(img: np.ndarray, *, cfg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """A random subset of ``cfg.kinds`` with random strengths, applied in :data:`KINDS` order; (H, W, 3) uint8.

    The draw depends only on ``rng`` (seed it per sample for reproducible training data). With ``cfg.scale`` < 1 the
    kinds act on the crop taken down to that scale, and the result comes back up to the crop's size (at any
    ``strength``: the lost resolution is part of what such a refiner's input is).
    """
    _check(img)
    chosen = [k for k in cfg.kinds if rng.random() < cfg.prob]
    if len(chosen) < cfg.min_kinds:
        rest = [k for k in cfg.kinds if k not in chosen]
        chosen += list(rng.choice(rest, size=cfg.min_kinds - len(chosen), replace=False))
    size = img.shape[:2]
    small = (max(1, round(size[1] * cfg.scale)), max(1, round(size[0] * cfg.scale)))  # (w, h), OpenCV's order
    out = img.copy() if cfg.scale == 1.0 else cv2.resize(img, small, interpolation=cv2.INTER_AREA)
    if cfg.strength > 0:
        out = _degrade_kinds(out, chosen, cfg=cfg, rng=rng)
    return out if cfg.scale == 1.0 else cv2.resize(out, size[::-1], interpolation=cv2.INTER_CUBIC)


def _degrade_kinds(out: np.ndarray, chosen: list[str], *, cfg: Degradation, rng: np.random.Generator) -> np.ndarray:
    for kind in KINDS:
        if kind not in chosen:
            continue
        lo, hi = getattr(cfg, _RANGE[kind])
        p = float(rng.uniform(lo, hi))
        p = _IDENTITY[kind] + cfg.strength * (p - _IDENTITY[kind])
        if kind == "noise":
            out = gaussian_noise(out, sigma=p, rng=rng, grey=bool(rng.random() < cfg.grey_noise_prob))
        elif kind == "downup":
            down, up = rng.choice(len(_INTERPOLATIONS), size=2)
            out = down_up(out, factor=p, down=_INTERPOLATIONS[down], up=_INTERPOLATIONS[up])
        else:
            out = apply_kind(out, kind=kind, strength=p, rng=rng)
    return out


def stage1_output_pairs(
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    frames: np.ndarray,
    *,
    indices: np.ndarray | None = None,
    batch_size: int = 16,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) pairs where "degraded" is a stage-1 generator's output for the very same frames.

    ``generate(clean (B, S, S, 3) uint8, indices (B,) int) -> (B, S', S', 3) uint8`` wraps a loaded stage-1 model
    (FREAK / Wav2Lip): it masks the frames it gets, drives them with the audio of those frame indices, and returns
    its generated faces. ``frames`` (N, S, S, 3) uint8 (a prepared clip's memmap works); ``indices`` the frame
    numbers passed to ``generate`` (default 0..N-1). Yields batches ``(degraded (B, S, S, 3), clean (B, S, S, 3))``,
    the output resized to S when the generator works at another size. Building ``generate`` (masks, audio windows,
    device) belongs to the stage-1 code; this only pairs and batches.
    """
    n = len(frames)
    idx = np.arange(n) if indices is None else np.asarray(indices)
    if len(idx) != n:
        raise ValueError(f"{n} frames but {len(idx)} indices")
    size = frames.shape[1]
    for start in range(0, n, batch_size):
        clean = np.ascontiguousarray(frames[start : start + batch_size])
        out = np.asarray(generate(clean, idx[start : start + batch_size]))
        if out.shape[0] != clean.shape[0] or out.ndim != 4 or out.shape[-1] != 3:
            raise ValueError(f"generate returned {out.shape} for a batch of {clean.shape[0]} frames")
        if out.shape[1:3] != (size, size):
            interp = cv2.INTER_AREA if out.shape[1] > size else cv2.INTER_CUBIC
            out = np.stack([cv2.resize(o, (size, size), interpolation=interp) for o in out])
        yield out.astype(np.uint8, copy=False), clean
