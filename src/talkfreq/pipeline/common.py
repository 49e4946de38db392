"""Pieces shared by the streaming pipelines (``talkfreq refine`` and ``talkfreq infer``).

- :class:`StreamConfig`: the settings both commands share (batch, paste region and feather, refiner smoothing,
  device, encoder quality, faces), each default written once, here;
- :class:`StageTimer`: wall-time accumulators per pipeline stage, for the summary and the benchmark (thread-safe: with
  overlap the stages are timed inside the worker threads, so their seconds can add up to more than the wall time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional, TypeVar

from talkfreq.errors import ConfigError
from talkfreq.face import FaceConfig
from talkfreq.pipeline.accel import AccelConfig
from talkfreq.pipeline.paste import REGIONS

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
