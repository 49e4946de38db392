"""Settings of the face sub-system (detection, tracking, miss policy, crops), with their defaults written once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from talkfreq.errors import ConfigError

BACKENDS = ("haar", "mediapipe", "boxes", "s3fd")
MISS_POLICIES = ("interpolate", "hold", "skip")


# The mouth region (lips, their corners, the top of the chin) as fractions (x0, y0, x1, y1) of a face crop made with
# the default padding and shift_y below: where a lip-sync generator repaints, scored and weighted in training.
MOUTH_REGION = (0.28, 0.53, 0.72, 0.81)

# Ellipses (centre x, centre y, semi-axis x, semi-axis y) as fractions of a face crop with the default padding and
# shift_y (the detector's face box spans about [1/6, 5/6] of the crop horizontally and [0.10, 0.77] vertically, and
# Haar boxes cut the chin): ``face`` covers forehead to chin, ``lower`` nose, mouth and chin - the region a dubbing
# model changes. The paste-back blends through them (talkfreq.pipeline.paste) and a FREAK trained with the ``lower``
# dubbing mask hides exactly the ``lower`` one, so what is pasted is what was generated.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "face": (0.5, 0.49, 0.36, 0.43),
    "lower": (0.5, 0.67, 0.30, 0.22),
}


def ellipse_offsets(region: str, size: int, *, axes: Optional[tuple[float, float]] = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """((S, S), (S, S)) float64: the x and y offsets of an S px crop's pixel centres (at i + 0.5, as the crop boxes
    use) from ``region``'s ellipse centre, in units of its semi-axes (``axes``, in px, replaces them): their
    ``hypot`` is the normalised elliptic radius, 1 on the edge. The one place the mask a generator hides, the
    paste-back and the seam measure all compute it, so the three agree on where the ellipse is."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    cx, cy, ax, ay = (v * size for v in REGIONS[region])
    ax, ay = axes if axes is not None else (ax, ay)
    c = np.arange(size, dtype=np.float64) + 0.5
    dx, dy = (c[None, :] - cx) / ax, (c[:, None] - cy) / ay
    return np.broadcast_to(dx, (size, size)), np.broadcast_to(dy, (size, size))


def fraction_box(fractions, size: int) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) of ``fractions`` ``(x0, y0, x1, y1)`` of a ``size`` px crop."""
    x0, y0, x1, y1 = (int(round(float(v) * size)) for v in fractions)
    return x0, y0, x1, y1


@dataclass
class FaceConfig:
    """How faces are found, followed and cropped.

    backend: ``haar`` (OpenCV's bundled cascade; works offline), ``mediapipe`` (needs the optional package and a
        face-landmarker ``.task`` file in ``mediapipe_model``), ``boxes`` (user boxes from ``boxes_file``) or
        ``s3fd`` (S3FD as syncnet_python runs it, weights ``sfd_face.pth`` / ``s3fd.pth`` in ``s3fd_model``, on the
        frame scaled by ``s3fd_scale``: run_pipeline.py's 0.25 by default).
    detect_max_side: frames are downscaled so their long side is at most this before detection (speed); not for
        ``s3fd``, which gets full frames.
    detect_every: run the detector on every k-th frame only (and always on the last); the boxes of the frames
        between two key frames where the face was found are interpolated linearly and count as found. 1 = every
        frame. Ignored by ``backend=boxes`` (user boxes cost nothing). See the default's note below.
    detect_near: once the followed face is found, Haar searches near its last box first (within the jump and size
        change the tracker accepts) and the whole frame only when it is not there: ~5x cheaper per frame.
    min_face_frac: detections smaller than this fraction of the frame's short side are ignored.
    face_index: 0 = the largest face; k = the k-th largest at the first frame with that many faces. That face is
        then followed by overlap, so the identity never swaps mid-clip.
    smooth_window: centred temporal smoothing of box centre and size, in frames (1 = off).
    miss_policy: ``interpolate`` (linear over gaps of at most ``max_gap_seconds``), ``hold`` (keep the last box) or
        ``skip`` (frames without a face are left untouched).
    max_gap_seconds: the longest run of face-less frames ``interpolate`` fills (at the clip's ends too); a longer
        one stays invalid as a whole. 0.4 s: a blink of the detector is bridged, but a cut-away, a hand over the face
        or a blank half second is not turned into "valid" crops of whatever the frames show.
    padding: fraction of the box side added on each side of the square crop.
    shift_y: the crop centre moves down by this fraction of the box side (Haar boxes cut the chin; the mouth matters).
    crop_size: side of the square face crop in pixels (96/128/256/512 are the usual sizes).
    """

    backend: str = "haar"
    boxes_file: Optional[str] = None
    mediapipe_model: Optional[str] = None
    s3fd_model: Optional[str] = None
    s3fd_scale: float = 0.25
    detect_max_side: int = 320
    # Measured on the five sample videos (benchmarks/detect_every.py, Haar at 320 px; benchmarks/RESULTS.md): every
    # frame, whole frame costs 18-28 ms/frame, a fifth of CPU inference. Every 2nd frame, searched near the face:
    # 1.9-3.8 ms/frame, crop centres within 0.16-0.65 % of the crop side of the every-frame, whole-frame track on
    # average (p95 <= 1.5 %, sides <= 1.4 %), about the size of that track's own frame-to-frame motion (0.28-0.57 %).
    detect_every: int = 2
    detect_near: bool = True
    min_face_frac: float = 0.08
    face_index: int = 0
    smooth_window: int = 5
    miss_policy: str = "interpolate"
    max_gap_seconds: float = 0.4
    padding: float = 0.25
    shift_y: float = 0.1
    crop_size: int = 256

    def max_gap_frames(self, fps: float) -> int:
        """``max_gap_seconds`` in frames at ``fps``."""
        return int(math.floor(self.max_gap_seconds * fps + 1e-6))

    def __post_init__(self) -> None:
        # Runs when OmegaConf builds the object too, so a bad value fails at config time with one line.
        if self.backend not in BACKENDS:
            raise ConfigError(f"face.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.miss_policy not in MISS_POLICIES:
            raise ConfigError(
                f"face.miss_policy must be one of {', '.join(MISS_POLICIES)}, got {self.miss_policy!r}"
            )
        _at_least("detect_max_side", self.detect_max_side, 32)
        if not (math.isfinite(self.s3fd_scale) and 0.0 < self.s3fd_scale <= 4.0):
            raise ConfigError(f"face.s3fd_scale must be in (0, 4], got {self.s3fd_scale}")
        _at_least("detect_every", self.detect_every, 1)
        _at_least("face_index", self.face_index, 0)
        _at_least("smooth_window", self.smooth_window, 1)
        _at_least("crop_size", self.crop_size, 17)
        if not (math.isfinite(self.min_face_frac) and 0.0 <= self.min_face_frac < 1.0):
            raise ConfigError(f"face.min_face_frac must be in [0, 1), got {self.min_face_frac}")
        if not (math.isfinite(self.max_gap_seconds) and self.max_gap_seconds >= 0.0):
            raise ConfigError(f"face.max_gap_seconds must be >= 0, got {self.max_gap_seconds}")
        if not (math.isfinite(self.padding) and 0.0 <= self.padding <= 2.0):
            raise ConfigError(f"face.padding must be in [0, 2], got {self.padding}")
        if not (math.isfinite(self.shift_y) and -1.0 <= self.shift_y <= 1.0):
            raise ConfigError(f"face.shift_y must be in [-1, 1], got {self.shift_y}")


def detection_side(cfg: FaceConfig) -> Optional[int]:
    """Long side of the frames the detector is given: ``detect_max_side``, or None (full frames) for S3FD, which
    scales the source frame itself by ``s3fd_scale`` as run_pipeline.py does."""
    return None if cfg.backend == "s3fd" else cfg.detect_max_side


def _at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"face.{name} must be >= {low}, got {value}")
