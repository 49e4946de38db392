"""Pieces shared by the streaming pipelines (``talkfreq refine`` and ``talkfreq infer``).

- :class:`StreamConfig`: the settings both commands share (batch, paste region and feather, refiner smoothing,
  device, encoder quality, faces), each default written once, here;
- :func:`resolve_device`, :func:`check_output`: one-line errors before any work starts;
- :func:`detect_boxes`: the face-box pass (detection on small frames, then tracking, miss filling, smoothing);
- :class:`StageTimer`: wall-time accumulators per pipeline stage, for the summary and the benchmark (thread-safe: with
  overlap the stages are timed inside the worker threads, so their seconds can add up to more than the wall time).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, TypeVar

import numpy as np
import torch

from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.face import FaceConfig, detect_clip, detection_side, make_detector, track_faces
from talkfreq.pipeline.stream import prefetched
from talkfreq.pipeline.accel import AccelConfig
from talkfreq.pipeline.paste import REGIONS

Progress = Callable[[str, int, Optional[int]], None]  # (stage, frames done, total or None)
T = TypeVar("T")


@dataclass
class StreamConfig:
    """Settings shared by ``refine`` and ``infer`` (CLI options override these; ``face.*`` as in ``prepare``)."""

    batch_size: int = 8  # face crops per forward pass: memory is bounded by one batch of frames
    region: str = "face"  # face | lower (see talkfreq.pipeline.paste)
    feather: float = 0.03  # mask edge sigma as a fraction of the crop side
    temporal_smoothing: Optional[float] = None  # refiner latent alpha in [0, 1); None: the model's inference.json
    fidelity: Optional[float] = None  # refiner output back towards its input, 0-1 (1: unchanged); None: the model's
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    crf: int = 18
    # max_gap_seconds 0.2 (prepare: 0.4): a face gone for longer is not guessed at, because pasting a generated crop
    # over a frame without the face would draw one there
    face: FaceConfig = field(default_factory=lambda: FaceConfig(max_gap_seconds=0.2))
    accel: AccelConfig = field(default_factory=AccelConfig)  # dtype, channels-last, compile, threads, overlap

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.region is not None and self.region not in REGIONS:
            raise ConfigError(f"region must be one of {', '.join(REGIONS)}, got {self.region!r}")
        if self.temporal_smoothing is not None and not 0.0 <= self.temporal_smoothing < 1.0:
            raise ConfigError(f"temporal smoothing alpha must be in [0, 1), got {self.temporal_smoothing}")
        if self.fidelity is not None and not 0.0 <= self.fidelity <= 1.0:
            raise ConfigError(f"fidelity must be in [0, 1], got {self.fidelity}")
        if not 0.0 <= self.feather <= 0.1:
            raise ConfigError(f"feather must be in [0, 0.1] (fraction of the crop side), got {self.feather}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a torch device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TalkfreqError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def check_output(out: Path, *, inputs: Sequence[Path] = ()) -> None:
    """One-line error unless ``out`` is an .mp4 path that can be created and is none of ``inputs``."""
    parent = out.parent if str(out.parent) else Path(".")
    for src in inputs:
        if out.resolve() == Path(src).resolve():
            raise TalkfreqError(f"{out}: the output must not be an input file")
    if out.suffix.lower() != ".mp4":
        raise TalkfreqError(f"{out}: the output must be an .mp4 file")
    if out.is_dir():
        raise TalkfreqError(f"{out}: is a folder; give an .mp4 file path")
    if parent.exists() and not parent.is_dir():
        raise TalkfreqError(f"{out}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise TalkfreqError(f"{out}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise TalkfreqError(f"{out}: output folder {parent} cannot be written")


class StageTimer:
    """Wall-time accumulators: ``with timer("stage1"): ...`` adds the block's seconds to ``timer.seconds["stage1"]``."""

    def __init__(self, stages: Iterable[str]):
        self.seconds: dict[str, float] = dict.fromkeys(stages, 0.0)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            with self._lock:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + dt

    def iterate(self, items: Iterable[T], stage: str) -> Iterator[T]:
        """``items`` with the time spent producing each one (decoding, for a reader) added to ``stage``."""
        it = iter(items)
        while True:
            with self(stage):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item


class _FixedBox:
    """A detector that finds the user's one box on every frame (``infer --box``)."""

    def __init__(self, box: Sequence[float]):
        self.box = np.append(np.asarray(box, np.float32).reshape(4), np.float32(1.0)).reshape(1, 5)

    def detect(self, frame: np.ndarray, *, index: int | None = None, near: np.ndarray | None = None) -> np.ndarray:
        return self.box.copy()


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
    from talkfreq.io import VideoReader

    timer = timer or StageTimer(("decode", "detect"))
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
