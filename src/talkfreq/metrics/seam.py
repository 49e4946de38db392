"""Is there a visible box? The gradient across the paste-back boundary, compared with the real frame's.

A generated lower face pasted back through the ``lower`` ellipse (:data:`talkfreq.face.config.REGIONS`, what
``talkfreq infer`` blends through when dubbing) shows a seam when its colour, brightness or blur differs from the
frame around it: the intensity then jumps across the ellipse's edge. ``seam_gradient`` is the mean Sobel gradient
magnitude of the grey crop (BT.601 luma, 0..255) over the band of pixels whose normalised elliptic radius is within
``width`` of the edge (ours: ``width`` 0.1 is +-7.7 px across the sides and +-5.6 px across the chin at 256 px, the
feathered blend's transition); a seam raises it above the real video's value for the same frames, a blurred band
lowers it. The report's ``seam`` column is the candidate's mean over the real one's (1 = as in the real frames).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from talkfreq.face.config import ellipse_offsets

__all__ = ["boundary_band", "seam_gradient"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@lru_cache(maxsize=8)
def boundary_band(size: int, *, region: str = "lower", width: float = 0.1) -> np.ndarray:
    """(S, S) bool: pixels of an S px crop within ``width`` (normalised elliptic radius) of ``region``'s edge."""
    if not 0 < width < 1:
        raise ValueError(f"width must be in (0, 1), got {width}")
    band = np.abs(np.hypot(*ellipse_offsets(region, size)) - 1.0) <= width
    band.setflags(write=False)
    return band


def seam_gradient(crops: np.ndarray, *, region: str = "lower", width: float = 0.1) -> np.ndarray:
    """(B,) mean Sobel gradient magnitude of (B, S, S, 3) uint8 RGB crops over :func:`boundary_band`."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected (B, S, S, 3) crops, got {crops.shape}")
    band = boundary_band(crops.shape[1], region=region, width=width)
    out = np.empty(len(crops), dtype=np.float64)
    for i, frame in enumerate(crops):
        grey = frame.astype(np.float32) @ _LUMA
        gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
        out[i] = float(np.sqrt(gx * gx + gy * gy)[band].mean())
    return out
