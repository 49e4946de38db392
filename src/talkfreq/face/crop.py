"""Sub-pixel square face crops, and the affine maps between a frame and its crop.

A crop box ``[x0, y0, x1, y1]`` is in pixel-edge coordinates of the full frame (pixel ``i`` covers ``[i, i+1)``), so
the box ``[0, 0, W, H]`` is the whole frame and its crop is a plain resize. Boxes are float: a smoothed box moves
by fractions of a pixel and a crop rounded to whole pixels would jitter. Keep each frame's crop box: the paste-back
step warps the generated face back with :func:`crop_to_frame_affine` of that same box.

Quality (our choice): a face much larger than the crop (a 700 px face to 96 px for Wav2Lip) aliases under plain
bilinear warping. When shrinking by k, the region around the box is first blurred with a Gaussian of
sigma = sqrt((k^2 - 1) / 12) (the spread of a k-pixel box, less that of the bilinear tap), then ``warpAffine``
samples it bilinearly at the exact sub-pixel positions. Resizing with ``INTER_AREA`` first and shifting after
would blur twice; integer crops would jitter. Measured on whole 700 px frames against ``cv2.resize(INTER_AREA)``:
mean error 0.2-0.35 grey levels for 64-256 px crops (plain bilinear: 0.5-2.6, and 25-68 on a zone plate, where
this stays at 3-7). Enlarging skips the blur. Outside the frame the border pixels are replicated
(``BORDER_REPLICATE``), so a face at the edge still gives a usable crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def _box(box: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop box must be finite with x1 > x0 and y1 > y0, got {[x0, y0, x1, y1]}")
    return x0, y0, x1, y1


def box_to_affine(box: Sequence[float] | np.ndarray, *, size: int) -> np.ndarray:
    """(2, 3) float64 matrix taking frame pixel coordinates to crop pixel coordinates (``cv2.warpAffine`` style).

    Like OpenCV, the matrix works on pixel-centre coordinates (pixel ``i`` at ``i``; the box's edge ``x0`` is
    ``x0 - 0.5`` there): frame point ``x`` goes to ``(x + 0.5 - x0) * size / (x1 - x0) - 0.5``.
    """
    x0, y0, x1, y1 = _box(box)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])


def crop_to_frame_affine(box: Sequence[float] | np.ndarray, *, size: int) -> np.ndarray:
    """(2, 3) float64 inverse of :func:`box_to_affine`: crop pixel coordinates -> frame pixel coordinates."""
    return cv2.invertAffineTransform(box_to_affine(box, size=size))


def crop_face(frame: np.ndarray, box: Sequence[float] | np.ndarray, *, size: int) -> np.ndarray:
    """Crop ``box`` from an (H, W, 3) uint8 frame and scale it to (size, size, 3) uint8.

    The box may lie partly or wholly outside the frame; those parts replicate the frame's border pixels.
    A non-square box is stretched to the square output.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) frame, got {frame.shape}")
    size = int(size)
    x0, y0, x1, y1 = _box(box)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    if sx >= 1.0 and sy >= 1.0:
        return cv2.warpAffine(
            frame, box_to_affine(box, size=size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    # Anti-alias prefilter: a Gaussian with the spread of a box of one output pixel, less the bilinear tap's own.
    sigma_x, sigma_y = (math.sqrt(max(1 / s**2 - 1, 0.0) / 12) for s in (sx, sy))
    height, width = frame.shape[:2]
    # Integer region covering the box plus the filter's reach, so the blur never sees the region's own edge.
    margin = int(math.ceil(3 * max(sigma_x, sigma_y))) + 2
    rx0, ry0 = math.floor(x0) - margin, math.floor(y0) - margin
    rx1, ry1 = math.ceil(x1) + margin, math.ceil(y1) + margin
    # Part of the region inside the frame (at least one pixel, even for a box wholly outside), then replicate
    # the frame's border for the rest: padding only ever happens on a side where the region leaves the frame.
    cx0, cy0 = min(max(rx0, 0), width - 1), min(max(ry0, 0), height - 1)
    cx1, cy1 = max(min(rx1, width), cx0 + 1), max(min(ry1, height), cy0 + 1)
    pad_l, pad_t = max(0, cx0 - rx0), max(0, cy0 - ry0)
    pad_r, pad_b = max(0, rx1 - cx1), max(0, ry1 - cy1)
    region = frame[cy0:cy1, cx0:cx1]
    if pad_l or pad_t or pad_r or pad_b:
        region = cv2.copyMakeBorder(region, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    region = cv2.sepFilter2D(region, -1, _gauss(sigma_x), _gauss(sigma_y), borderType=cv2.BORDER_REPLICATE)
    m = box_to_affine(box, size=size)
    m[0, 2] += m[0, 0] * (cx0 - pad_l)  # the region's top-left pixel sits at these frame coordinates
    m[1, 2] += m[1, 1] * (cy0 - pad_t)
    return cv2.warpAffine(region, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _gauss(sigma: float) -> np.ndarray:
    if sigma <= 0:
        return np.ones((1, 1), np.float32)
    return cv2.getGaussianKernel(2 * int(math.ceil(3 * sigma)) + 1, sigma, cv2.CV_32F)


def crop_faces(frames: np.ndarray | Sequence[np.ndarray], boxes: np.ndarray, *, size: int) -> np.ndarray:
    """(B, H, W, 3) frames + (B, 4) boxes -> (B, size, size, 3) crops (every box must be valid)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} boxes")
    dtype = frames[0].dtype if len(frames) else np.uint8
    out = np.empty((len(boxes), int(size), int(size), 3), dtype)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        out[i] = crop_face(frame, box, size=size)
    return out
