"""Paste a generated or refined face crop back into its frame through a feathered mask (no box, no seam).

:func:`feather_mask` builds the blend mask once per crop size, in crop space; :func:`paste_back` warps crop and mask
into the frame with the inverse of the affine map that cut the crop (:func:`talkfreq.face.crop_to_frame_affine` of
the same box) and alpha-blends. Pixels where the warped mask is 0 are returned exactly as they came in.

The mask geometry is ours, fitted to the crop boxes of :func:`talkfreq.face.square_boxes` with its defaults
(padding 0.25, shift_y 0.1: the detector's face box spans about [1/6, 5/6] of the crop horizontally and [0.10,
0.77] vertically, and Haar boxes cut the chin): ``face`` is an ellipse over forehead to chin, ``lower`` one over
nose, mouth and chin - the region a dubbing model changes. The edge is a Gaussian blur of the hard ellipse with a
truncated kernel; the ellipse is shrunk, when needed, so that the kernel never reaches the crop border, which
makes the mask exactly 0 on the border and the paste seamless however the crop sits in the frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from talkfreq.face.crop import crop_to_frame_affine

__all__ = ["REGIONS", "feather_mask", "paste_back"]

# (centre x, centre y, semi-axis x, semi-axis y) as fractions of the crop side (see the module docstring)
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "face": (0.5, 0.49, 0.36, 0.43),
    "lower": (0.5, 0.67, 0.30, 0.22),
}


@lru_cache(maxsize=16)
def _mask(size: int, region: str, feather: float) -> np.ndarray:
    cx, cy, ax, ay = (v * size for v in REGIONS[region])
    sigma = max(0.0, float(feather)) * size
    radius = int(math.ceil(3 * sigma)) if sigma > 0 else 0
    # keep the ellipse (plus the blur's reach and one pixel) inside the crop on every side
    room_x = min(cx, size - cx) - radius - 1
    room_y = min(cy, size - cy) - radius - 1
    ax, ay = min(ax, room_x), min(ay, room_y)
    if ax <= 1 or ay <= 1:
        raise ValueError(f"feather={feather} leaves no room for a {region} mask in a {size} px crop")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    # pixel centres at i + 0.5 in edge coordinates, as the crop boxes use
    hard = ((((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2) <= 1.0).astype(np.float32)
    if radius:
        k = 2 * radius + 1
        hard = cv2.GaussianBlur(hard, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    mask = np.clip(hard, 0.0, 1.0)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0.0  # already 0 by construction; made explicit
    mask.setflags(write=False)
    return mask


def feather_mask(size: int, *, region: str = "face", feather: float = 0.03) -> np.ndarray:
    """(size, size) float32 blend mask in [0, 1] over the ``face`` or the ``lower`` face, 0 on the crop border.

    ``feather`` is the Gaussian edge's standard deviation as a fraction of ``size`` (0.03: about 8 px at 256);
    0 gives a hard ellipse. The returned array is shared and read-only (cached per arguments).
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    return _mask(int(size), region, float(feather))


def _prefilter(crop: np.ndarray, scale: float) -> np.ndarray:
    """Anti-alias blur before shrinking a crop by ``scale`` < 1 (the same rule as :func:`talkfreq.face.crop_face`)."""
    if scale >= 1.0:
        return crop
    sigma = math.sqrt(max(1.0 / scale**2 - 1.0, 0.0) / 12.0)
    k = 2 * int(math.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(crop, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def paste_back(
    frame: np.ndarray,
    crop: np.ndarray,
    box: Sequence[float] | np.ndarray,
    *,
    mask: np.ndarray,
) -> np.ndarray:
    """Blend ``crop`` into a copy of ``frame`` where ``box`` was cut from; returns the new (H, W, 3) uint8 frame.

    ``frame`` (H, W, 3) uint8; ``crop`` (S, S, 3) uint8 (any S: the crop the refiner made, at its own size);
    ``box`` the crop box ``[x0, y0, x1, y1]`` in frame pixels (may extend beyond the frame); ``mask`` (S, S) float
    in [0, 1] (:func:`feather_mask`). Only the box's pixel region is touched; where the warped mask is 0 the output
    equals ``frame`` bit for bit.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    s = crop.shape[0]
    if crop.shape != (s, s, 3) or crop.dtype != np.uint8:
        raise ValueError(f"expected an (S, S, 3) uint8 crop, got {crop.shape} {crop.dtype}")
    if mask.shape != (s, s):
        raise ValueError(f"mask is {mask.shape}, crop is {crop.shape[:2]}")
    out = frame.copy()
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    rx0, ry0 = max(0, int(math.floor(x0)) - 1), max(0, int(math.floor(y0)) - 1)
    rx1, ry1 = min(w, int(math.ceil(x1)) + 1), min(h, int(math.ceil(y1)) + 1)
    if rx1 <= rx0 or ry1 <= ry0:
        return out  # the box lies wholly outside the frame
    m = crop_to_frame_affine(box, size=s)
    m[0, 2] -= rx0  # into the region's own coordinates
    m[1, 2] -= ry0
    size = (rx1 - rx0, ry1 - ry0)
    scale = min((x1 - x0) / s, (y1 - y0) / s)
    warped = cv2.warpAffine(_prefilter(crop, scale), m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(np.ascontiguousarray(mask, np.float32), m, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    region = out[ry0:ry1, rx0:rx1]
    blended = region.astype(np.float32) * (1.0 - alpha) + warped.astype(np.float32) * alpha
    # np.where: mask 0 keeps the input exactly (no float round trip), whatever the crop holds there
    out[ry0:ry1, rx0:rx1] = np.where(alpha > 0, np.clip(np.rint(blended), 0, 255), region).astype(np.uint8)
    return out
