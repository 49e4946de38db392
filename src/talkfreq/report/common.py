"""Pieces shared by ``talkfreq evaluate`` and ``talkfreq compare-video``: input checks, the reference's face track,
close-up regions, and reading several videos in lock-step on one timeline.

**Timeline.** Every video is read on the same constant-frame-rate timeline (:data:`TIMELINE_FPS`, the rate every
talkfreq model and the prepared data use), frame ``k`` at ``k / fps`` seconds from each video's first frame, and all
are cut to the shortest (the caller says so in its report).

**One set of boxes.** Faces are detected once, on the reference (the real video); every video is cropped with the
reference's boxes, scaled to its own frame size. So all crops show the same region of the picture, and a candidate
that moved or lost the face is penalised instead of re-framed.

**Regions** (:class:`RegionConfig`) are fractions ``(x0, y0, x1, y1)`` of the square face crop of
:class:`~talkfreq.face.FaceConfig` (padding 0.25 on each side, centre moved down by 0.1 of the face box). With those
defaults the face box spans about 0.17-0.83 of the crop across and 0.10-0.77 down, the lips sit near 0.6 and the
top of the head near 0.05 (measured on synth faces and on the sample videos). ``mouth`` is the lower-middle part -
lips, their corners and the top of the chin, where a lip-sync generator repaints; ``hair`` is the top band - the
fine texture a generator tends to blur. Change them together with ``face.padding`` / ``face.shift_y``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkfreq.errors import ConfigError, MediaError, TalkfreqError, require_file
from talkfreq.face import FaceConfig
from talkfreq.face.config import MOUTH_REGION, fraction_box

TIMELINE_FPS = 25.0  # default timeline of evaluate and compare-video (talkfreq's models work at 25 fps)
REFERENCE_NAME = "real"  # the reference's row name and tile label
REGION_NAMES = ("mouth", "hair")


@dataclass
class RegionConfig:
    """Close-up regions as fractions ``[x0, y0, x1, y1]`` of the square face crop (see the module docstring)."""

    mouth: list[float] = field(default_factory=lambda: list(MOUTH_REGION))
    hair: list[float] = field(default_factory=lambda: [0.15, 0.0, 0.85, 0.25])

    def __post_init__(self) -> None:
        for name in REGION_NAMES:
            b = [float(v) for v in getattr(self, name)]
            if len(b) != 4 or not (0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1):
                raise ConfigError(f"regions.{name} must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1 and "
                                  f"0 <= y0 < y1 <= 1 (fractions of the face crop), got {getattr(self, name)}")

    def fractions(self, name: str) -> tuple[float, float, float, float]:
        if name not in REGION_NAMES:
            raise ConfigError(f"unknown region {name!r}; choose from {', '.join(REGION_NAMES)}")
        x0, y0, x1, y1 = (float(v) for v in getattr(self, name))
        return x0, y0, x1, y1

    def crop_box(self, name: str, size: int) -> tuple[int, int, int, int]:
        """Pixel box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) of region ``name`` inside a ``size`` x ``size`` crop."""
        box = fraction_box(self.fractions(name), size)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ConfigError(f"region {name} is empty in a {size}-px crop; use a larger face.crop_size")
        return box

    def frame_box(self, name: str, crop_box: np.ndarray) -> np.ndarray:
        """(4,) float frame box of region ``name`` for the face crop box ``crop_box`` [x0, y0, x1, y1] (frame px)."""
        fx0, fy0, fx1, fy1 = self.fractions(name)
        x0, y0, x1, y1 = (float(v) for v in crop_box)
        w, h = x1 - x0, y1 - y0
        return np.array([x0 + fx0 * w, y0 + fy0 * h, x0 + fx1 * w, y0 + fy1 * h])


def parse_candidate(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (name, path); a one-line error for anything else."""
    name, sep, path = spec.partition("=")
    name = name.strip()
    if not sep or not name or not path:
        raise TalkfreqError(f"candidate {spec!r} must be NAME=PATH (e.g. wav2lip=out/wav2lip.mp4)")
    return name, Path(path)


def check_inputs(reference: str | Path, candidates: Mapping[str, str | Path]) -> tuple[Path, dict[str, Path]]:
    """Validate the inputs before any work: the files exist and the names are unique and not the reference's."""
    ref = require_file(reference, "reference video")
    if not candidates:
        raise TalkfreqError("no candidate videos given (NAME=PATH)")
    out: dict[str, Path] = {}
    for name, path in candidates.items():
        name = str(name).strip()
        if not name:
            raise TalkfreqError(f"candidate {path}: empty name")
        if name == REFERENCE_NAME:
            raise TalkfreqError(f"candidate name {name!r} is reserved for the reference; pick another")
        if any(c in name for c in ",\n\r"):
            raise TalkfreqError(f"candidate name {name!r} must not contain commas or line breaks")
        out[name] = require_file(path, f"candidate video {name!r}")
    return ref, out


@dataclass
class FaceTrackBoxes:
    """The reference's face crop boxes on the timeline: ``boxes`` (N, 4) in reference pixels, every row finite
    (frames without a face hold the nearest face's box), ``valid`` (N,) True where a face was found or filled."""

    boxes: np.ndarray
    valid: np.ndarray
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.boxes)

    def scaled(self, width: int, height: int) -> np.ndarray:
        """(N, 4) boxes in the pixels of a video of size ``width`` x ``height`` (a candidate at another size)."""
        b = self.boxes.copy()
        b[:, [0, 2]] *= width / self.width
        b[:, [1, 3]] *= height / self.height
        return b

    def median_side(self) -> float:
        """Median crop-box side over the valid frames, in reference pixels."""
        b = self.boxes[self.valid]
        return float(np.median(b[:, 2] - b[:, 0]))


def hold_fill(boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, 4) boxes where invalid rows take the nearest valid row's box (earlier one on ties)."""
    idx = np.flatnonzero(valid)
    if not len(idx):
        raise ValueError("no valid box to fill from")
    pos = np.arange(len(boxes))
    right = np.clip(np.searchsorted(idx, pos), 0, len(idx) - 1)
    left = np.clip(right - 1, 0, len(idx) - 1)
    nearest = np.where(np.abs(idx[left] - pos) <= np.abs(idx[right] - pos), idx[left], idx[right])
    return np.asarray(boxes, np.float64)[nearest]


def reference_track(reference: Path, *, face: FaceConfig, fps: float, progress=None) -> FaceTrackBoxes:
    """One detection pass on the reference (:func:`talkfreq.face.boxes.detect_boxes`); a one-line error when
    it shows no face at all."""
    from talkfreq.face.boxes import detect_boxes
    from talkfreq.io import probe

    info = probe(reference)
    if not info.has_video:
        raise MediaError(f"{reference}: no video stream")
    boxes, valid, n = detect_boxes(reference, cfg=face, fps=fps, progress=progress)
    valid = np.asarray(valid, bool) & np.isfinite(boxes).all(axis=1)
    if n == 0 or not valid.any():
        raise MediaError(f"{reference}: no face found in the reference video (face.backend={face.backend})")
    return FaceTrackBoxes(boxes=hold_fill(boxes, valid), valid=valid, width=info.width, height=info.height)


class LockStep:
    """Read several videos frame by frame on one timeline, cut to the shortest (and to ``limit`` frames).

    ``names`` keep the mapping's order; ``sizes[name]`` is (width, height); ``expected[name]`` the header's frame
    count (approximate). After iterating, ``frames`` is the number yielded and ``ended_by`` the video (or
    ``limit_name``) that ended the stream. Memory: one frame per video plus the readers' two.
    """

    def __init__(self, paths: Mapping[str, Path], *, fps: float, limit: int | None = None,
                 limit_name: str = "the frame limit"):
        from talkfreq.io import VideoReader

        self.readers = {name: VideoReader(p, fps=fps) for name, p in paths.items()}
        self.names = list(self.readers)
        self.sizes = {n: (r.source_width, r.source_height) for n, r in self.readers.items()}
        self.expected = {n: len(r) for n, r in self.readers.items()}
        self.limit, self.limit_name = limit, limit_name
        self.frames = 0
        self.ended_by: str | None = None

    def estimate(self) -> int:
        """Frames the stream will yield, from the headers (for progress bars; iteration gives the exact count)."""
        n = min(self.expected.values()) if self.expected else 0
        return min(n, self.limit) if self.limit is not None else n

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield ``{name: (H, W, 3) uint8 RGB frame}`` per timeline frame."""
        its = {n: iter(r) for n, r in self.readers.items()}
        self.frames = 0
        while True:
            if self.limit is not None and self.frames >= self.limit:
                self.ended_by = self.limit_name
                return
            out = {}
            for n, it in its.items():
                frame = next(it, None)
                if frame is None:
                    self.ended_by = n
                    return
                out[n] = frame
            self.frames += 1
            yield out

    def batches(self, size: int) -> Iterator[tuple[int, dict[str, list[np.ndarray]]]]:
        """Yield ``(first frame index, {name: list of <= size frames})``."""
        start, buf = 0, {n: [] for n in self.names}
        for frames in self:
            for n, f in frames.items():
                buf[n].append(f)
            if len(buf[self.names[0]]) == size:
                yield start, buf
                start, buf = start + size, {n: [] for n in self.names}
        if buf[self.names[0]]:
            yield start, buf

    def truncation_note(self) -> str | None:
        """A sentence when the videos' lengths differ (by more than a frame of header rounding), else None."""
        if len(set(self.expected.values())) <= 1 or max(self.expected.values()) - self.frames <= 1:
            return None
        lengths = ", ".join(f"{n} ~{k}" for n, k in self.expected.items())
        return (f"videos differ in length ({lengths} frames); all were cut to {self.frames} frames "
                f"(the length of {self.ended_by})")
