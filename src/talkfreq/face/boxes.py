"""The face-box pass over a video: detection on small frames, then tracking, miss filling and smoothing, giving the
crop box of every frame in source pixels (what the streaming pipelines crop and paste back with, and what
``evaluate`` crops every video with)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Optional, Protocol, TypeVar

import numpy as np

from talkfreq.face.config import FaceConfig, detection_side
from talkfreq.face.detect import detect_clip, make_detector
from talkfreq.face.track import track_faces
from talkfreq.io import VideoReader
from talkfreq.io.prefetch import prefetched

Progress = Callable[[str, int, Optional[int]], None]  # (stage, frames done, total or None)
T = TypeVar("T")


class StageTimer(Protocol):
    """What times the pass: ``with timer(stage): ...`` and ``timer.iterate(items, stage)``
    (:class:`talkfreq.pipeline.common.StageTimer`)."""

    def __call__(self, stage: str) -> AbstractContextManager[None]: ...

    def iterate(self, items: Iterable[T], stage: str) -> Iterable[T]: ...


class _FixedBox:
    """A detector that finds the user's one box on every frame (``infer --box``)."""

    def __init__(self, box: Sequence[float]):
        self.box = np.append(np.asarray(box, np.float32).reshape(4), np.float32(1.0)).reshape(1, 5)

    def detect(self, frame: np.ndarray, *, index: int | None = None, near: np.ndarray | None = None) -> np.ndarray:
        return self.box.copy()


class _Untimed:
    """A :data:`StageTimer` that keeps no times."""

    def __call__(self, stage: str) -> AbstractContextManager[None]:
        return nullcontext()

    def iterate(self, items: Iterable[T], stage: str) -> Iterable[T]:
        return items


class _Timed:
    """``detector`` whose calls count as the timer's ``detect`` seconds."""

    def __init__(self, detector, timer: StageTimer):
        self.detector, self.timer = detector, timer

    def detect(self, frame: np.ndarray, *, index: int | None = None, **hint) -> np.ndarray:
        with self.timer("detect"):
            return self.detector.detect(frame, index=index, **hint)


def detect_boxes(video: Path, *, cfg: FaceConfig, fps: float, progress: Progress | None = None,
                 fixed_box: Sequence[float] | None = None, timer: StageTimer | None = None
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Detection pass on small frames -> (crop boxes (N, 4) in source pixels, valid (N,), N frames).

    ``fixed_box`` (a face box ``[x0, y0, x1, y1]`` in source pixels) replaces the detector on every frame; it is
    squared and padded like a detection. The pass still decodes the video, for its exact frame count. ``timer``
    gets ``decode`` and ``detect`` seconds.
    """
    timer = timer or _Untimed()
    if fixed_box is not None:
        cfg = replace(cfg, backend="boxes")  # user boxes are taken as given by the tracker
        detector = _FixedBox(fixed_box)
    else:
        detector = make_detector(cfg)
    reader = VideoReader(video, fps=fps, max_side=detection_side(cfg))
    size = (reader.source_width, reader.source_height)
    total = len(reader) or None

    def on_frame(i: int) -> None:
        if progress and i % 10 == 9:
            progress("boxes", i + 1, total)

    # decoding (background thread) overlaps detection (this one): each is about half of the pass
    dets = detect_clip(_Timed(detector, timer), prefetched(timer.iterate(reader, "decode")), cfg=cfg,
                       scale=reader.scale, frame_size=size, on_frame=on_frame)
    with timer("detect"):
        track = track_faces(dets, cfg=cfg, frame_size=size, fps=fps)
    return track.crop_boxes.astype(np.float64), track.valid, len(dets)
