"""Paste a generated or refined face crop back into its frame through a feathered mask (no box, no seam).

:func:`feather_mask` builds the blend mask once per crop size, in crop space; :func:`paste_back` warps crop and mask
into the frame with the inverse of the affine map that cut the crop (:func:`talkfreq.face.crop_to_frame_affine` of
the same box) and alpha-blends. Pixels where the warped mask is 0 are returned exactly as they came in.

The mask geometry is ours: the ellipses :data:`talkfreq.face.config.REGIONS` (``face``: forehead to chin,
``lower``: nose, mouth and chin), fitted to the crop boxes of :func:`talkfreq.face.square_boxes`. The edge is a
Gaussian blur of the hard ellipse with a truncated kernel; the ellipse is shrunk, when needed, so that the kernel
never reaches the crop border, which makes the mask exactly 0 on the border and the paste seamless however the crop
sits in the frame.

``inside=True`` (ours, for dubbing with a generator that hides exactly the pasted ellipse, ``freak.dub_mask=lower``)
stops the feather at the ellipse's edge: the Gaussian transition is kept inside, and outside it the mask falls to 0
within ``EDGE_RAMP_PX`` crop pixels. Outside the hidden ellipse such a generator only saw the frame, so its output
there is the frame resampled through the crop (a 128 px crop over a 400 px face is a blur); the symmetric feather
pasted that blur over a ring as wide as the transition. Measured on three real clips (benchmarks/RESULTS.md,
"paste"): the outer half of the seam band kept only 0.90-0.96 of the real gradient even for the true frame taken
through a 128 px crop.

Speed: only the frame rectangle the mask can reach (its support's bounding box, mapped into the frame,
plus the bilinear reach) is warped and blended — a quarter of the box for ``lower`` — and :func:`paste_many` warps
the mask once for consecutive frames with the same box (a still, a fixed ``--box``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from talkfreq.face.config import REGIONS, ellipse_offsets
from talkfreq.face.crop import crop_to_frame_affine

__all__ = ["EDGE_RAMP_PX", "REGIONS", "feather_mask", "paste_back", "paste_many"]

EDGE_RAMP_PX = 2.0  # inside=True: the mask reaches 0 this far (crop pixels) outside the ellipse


def _edge_ramp(size: int, region: str) -> np.ndarray:
    """(size, size): 1 inside ``region``'s ellipse, falling linearly to 0 at ``EDGE_RAMP_PX`` outside it (the
    distance to the ellipse to first order: (rho - 1) / |grad rho|)."""
    ax, ay = (v * size for v in REGIONS[region][2:])
    dx, dy = ellipse_offsets(region, size)
    rho = np.maximum(np.hypot(dx, dy), 1e-9)
    grad = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2) / rho
    return np.clip(1.0 - (rho - 1.0) / grad / EDGE_RAMP_PX, 0.0, 1.0)


@lru_cache(maxsize=16)
def _mask(size: int, region: str, feather: float, inside: bool = False) -> np.ndarray:
    cx, cy, ax, ay = (v * size for v in REGIONS[region])
    sigma = max(0.0, float(feather)) * size
    radius = int(math.ceil(3 * sigma)) if sigma > 0 else 0
    # keep the ellipse (plus the blur's reach and one pixel) inside the crop on every side
    room_x = min(cx, size - cx) - radius - 1
    room_y = min(cy, size - cy) - radius - 1
    ax, ay = min(ax, room_x), min(ay, room_y)
    if ax <= 1 or ay <= 1:
        raise ValueError(f"feather={feather} leaves no room for a {region} mask in a {size} px crop")
    hard = (np.hypot(*ellipse_offsets(region, size, axes=(ax, ay))) <= 1.0).astype(np.float32)
    if radius:
        k = 2 * radius + 1
        hard = cv2.GaussianBlur(hard, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    mask = np.clip(hard, 0.0, 1.0)
    if inside:
        mask = (mask * _edge_ramp(size, region)).astype(np.float32)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0.0  # already 0 by construction; made explicit
    mask.setflags(write=False)
    return mask


def feather_mask(size: int, *, region: str = "face", feather: float = 0.03, inside: bool = False) -> np.ndarray:
    """(size, size) float32 blend mask in [0, 1] over the ``face`` or the ``lower`` face, 0 on the crop border.

    ``feather`` is the Gaussian edge's standard deviation as a fraction of ``size`` (0.03: about 8 px at 256);
    0 gives a hard ellipse. ``inside``: no feather outside the ellipse (see the module docstring). The returned
    array is shared and read-only (cached per arguments).
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    return _mask(int(size), region, float(feather), bool(inside))


def _prefilter(crop: np.ndarray, scale: float) -> np.ndarray:
    """Anti-alias blur before shrinking a crop by ``scale`` < 1 (the same rule as :func:`talkfreq.face.crop_face`)."""
    if scale >= 1.0:
        return crop
    sigma = math.sqrt(max(1.0 / scale**2 - 1.0, 0.0) / 12.0)
    k = 2 * int(math.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(crop, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def _support(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: the bounding box of ``mask > 0`` in crop pixels."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    return x, y, x + w, y + h


def _placement(box, *, shape: tuple[int, int], mask: np.ndarray
               ) -> tuple[tuple[int, int, int, int], np.ndarray, float, np.ndarray] | None:
    """Where ``mask`` lands for ``box`` on an (H, W) frame: (frame rectangle x0, y0, x1, y1, the crop->rectangle
    affine, the crop's scale, the warped alpha (h, w, 1)), or None when it lands nowhere."""
    h, w = shape
    s = mask.shape[0]
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    m = crop_to_frame_affine(box, size=s)
    sx0, sy0, sx1, sy1 = _support(mask)
    if sx1 <= sx0:
        return None  # an empty mask
    corners = np.array([[sx0, sy0, 1], [sx1, sy0, 1], [sx0, sy1, 1], [sx1, sy1, 1]], np.float64) @ m.T
    # +-2 px: the bilinear warp spreads a mask pixel over its neighbours; also within the box's own pixels
    rx0 = max(0, int(math.floor(max(corners[:, 0].min(), x0))) - 2)
    ry0 = max(0, int(math.floor(max(corners[:, 1].min(), y0))) - 2)
    rx1 = min(w, int(math.ceil(min(corners[:, 0].max(), x1))) + 2)
    ry1 = min(h, int(math.ceil(min(corners[:, 1].max(), y1))) + 2)
    if rx1 <= rx0 or ry1 <= ry0:
        return None  # the mask lies wholly outside the frame
    m[0, 2] -= rx0  # into the rectangle's own coordinates
    m[1, 2] -= ry0
    alpha = cv2.warpAffine(np.ascontiguousarray(mask, np.float32), m, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return (rx0, ry0, rx1, ry1), m, min((x1 - x0) / s, (y1 - y0) / s), np.clip(alpha, 0.0, 1.0)[..., None]


def _blend(out: np.ndarray, crop: np.ndarray, place) -> np.ndarray:
    (rx0, ry0, rx1, ry1), m, scale, alpha = place
    warped = cv2.warpAffine(_prefilter(crop, scale), m, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    region = out[ry0:ry1, rx0:rx1]
    # region + alpha (crop - region), in place: alpha 0 gives the integer region back exactly (no np.where pass),
    # and a convex combination cannot leave [0, 255]
    blended = warped.astype(np.float32)
    blended -= region
    blended *= alpha
    blended += region
    region[...] = np.rint(blended, out=blended)
    return out


def _check(frame: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    s = crop.shape[0]
    if crop.shape != (s, s, 3) or crop.dtype != np.uint8:
        raise ValueError(f"expected an (S, S, 3) uint8 crop, got {crop.shape} {crop.dtype}")
    if mask.shape != (s, s):
        raise ValueError(f"mask is {mask.shape}, crop is {crop.shape[:2]}")


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
    return paste_many([frame], [crop], [box], mask=mask)[0]


def paste_many(frames: Sequence[np.ndarray], crops: Sequence[np.ndarray], boxes: Sequence, *,
               mask: np.ndarray) -> list[np.ndarray]:
    """:func:`paste_back` of each (frame, crop, box), the mask warped once per run of equal consecutive boxes."""
    outs: list[np.ndarray] = []
    key = place = None
    for frame, crop, box in zip(frames, crops, boxes):
        _check(frame, crop, mask)
        b = tuple(float(v) for v in np.asarray(box, np.float64).reshape(4))
        if (b, frame.shape[:2]) != key:
            key, place = (b, frame.shape[:2]), _placement(b, shape=frame.shape[:2], mask=mask)
        out = frame.copy()
        outs.append(out if place is None else _blend(out, crop, place))
    return outs
