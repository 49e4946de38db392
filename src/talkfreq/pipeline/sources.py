"""Where ``talkfreq infer`` gets its frames: a portrait image, or a video streamed on the output timeline.

- :func:`read_image`: any image cv2 reads (png/jpg, grey, RGBA, 16-bit) -> (H, W, 3) uint8 RGB;
- :func:`image_face_box`: the crop box of the chosen face in a still (one-line error when there is none);
- :func:`video_frames`: the dubbing frames. A video longer than the audio is cut to it; a shorter one plays
  forward-backward (ping-pong: 0, 1, ..., M-1, M-2, ..., 1, 0, 1, ...; ours, to avoid the jump cut of a loop).
  Playing backward needs frames already decoded; they are kept in a :class:`FrameCache` file, written as the
  forward pass decodes them and only when ping-pong is needed, so memory stays at one batch whatever the length.
  The file is raw RGB (frames x H x W x 3 bytes: 3 GB for 20 s of 1080x1920) in the temp folder, never the output's
  folder, and has no name on disk (:func:`check_cache_space` says before the run whether it fits).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from talkfreq.errors import MediaError, TalkfreqError, is_disk_full, require_file
from talkfreq.face import FaceConfig, make_detector, track_faces

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: str | Path) -> bool:
    """True for a still-image file name (the face input of one-shot); videos are everything else."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file.

    Grey becomes RGB; 16-bit keeps its high byte; an alpha channel is composited over white (ours: a cut-out
    portrait's transparent background has arbitrary colour values, white is what viewers usually saw).
    """
    p = require_file(path, "face image")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise MediaError(f"{p}: not an image file OpenCV can read")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise MediaError(f"{p}: unsupported image sample type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        img = np.rint(img[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)


def image_face_box(image: np.ndarray, *, cfg: FaceConfig, source: str,
                   fixed_box: Sequence[float] | None = None) -> np.ndarray:
    """(4,) float64 square crop box of face ``cfg.face_index`` in ``image`` (H, W, 3), or of ``fixed_box``."""
    h, w = image.shape[:2]
    if fixed_box is not None:
        dets = [np.asarray(fixed_box, np.float32).reshape(1, 4)]
        cfg = replace(cfg, backend="boxes")  # user boxes are taken as given by the tracker
    else:
        dets = [make_detector(cfg).detect(image, index=0)]
    track = track_faces(dets, cfg=cfg, frame_size=(w, h))
    if not track.valid[0]:
        which = "a face" if cfg.face_index == 0 else f"face {cfg.face_index} (0 = largest)"
        raise MediaError(f"{source}: no face found in the image ({which}); give one with --box x0,y0,x1,y1")
    return track.crop_boxes[0].astype(np.float64)


def pingpong_index(k: int, n_src: int) -> int:
    """Source frame of output frame ``k`` when ``n_src`` frames play forward-backward."""
    if n_src <= 1:
        return 0
    period = 2 * (n_src - 1)
    j = k % period
    return j if j < n_src else period - j


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.0f} MB"


def check_cache_space(directory: str | Path | None, *, frames: int, shape: tuple[int, int, int]) -> None:
    """One-line error, before any work, when a :class:`FrameCache` of ``frames`` frames of ``shape`` would not fit
    in ``directory`` (None: the temp folder) with 5 % of the device to spare."""
    where = Path(directory or tempfile.gettempdir())
    need = int(frames) * int(np.prod(shape))
    try:
        usage = shutil.disk_usage(where)
    except OSError as exc:
        raise TalkfreqError(f"cannot use {where} for the frame cache ({exc.strerror or exc}); set cache_dir=") from exc
    if need > usage.free - 0.05 * usage.total:
        raise TalkfreqError(f"the video is shorter than the audio and plays forward-backward from a frame cache of "
                            f"{_gb(need)} ({frames} frames of {shape[1]}x{shape[0]}), but {where} has "
                            f"{_gb(usage.free)} free; set cache_dir= to a folder with more space, or cut the audio")


class FrameCache:
    """Fixed-size RGB frames in a temporary file: ``write`` in order, ``read(i)`` in any order.

    The file has no name on disk (an unlinked temporary file, in ``directory`` or the temp folder): however the
    process ends, even killed outright, its space is given back and nothing is left to clean. Reads use ``pread``
    into a fresh array rather than a memmap: mapped pages count towards the process's resident memory, and over a
    long ping-pong they would grow it to the file's size.
    """

    def __init__(self, *, shape: tuple[int, int, int], directory: str | Path | None):
        self.shape = tuple(int(v) for v in shape)
        self.nbytes = int(np.prod(self.shape))
        self.directory = Path(directory or tempfile.gettempdir())
        try:
            self._file = tempfile.TemporaryFile(prefix=".talkfreq-frames-", suffix=".rgb", dir=self.directory)
        except OSError as exc:
            raise TalkfreqError(f"cannot create the frame cache in {self.directory} ({exc.strerror or exc}); "
                                f"set cache_dir=") from exc
        self.fd, self.count = self._file.fileno(), 0

    def write(self, frame: np.ndarray) -> None:
        data = np.ascontiguousarray(frame, np.uint8)
        if data.shape != self.shape:
            raise ValueError(f"frame is {data.shape}, cache holds {self.shape}")
        try:
            os.pwrite(self.fd, data.tobytes(), self.count * self.nbytes)
        except OSError as exc:
            if is_disk_full(exc):
                raise TalkfreqError(f"no space left in {self.directory} for the forward-backward frame cache "
                                    f"(after {self.count} frames, {_gb(self.count * self.nbytes)}); set cache_dir= "
                                    f"to a folder with more space") from exc
            raise
        self.count += 1

    def read(self, i: int) -> np.ndarray:
        if not 0 <= i < self.count:
            raise IndexError(f"frame {i} not in the cache ({self.count} frames)")
        buf = os.pread(self.fd, self.nbytes, i * self.nbytes)
        return np.frombuffer(buf, np.uint8).reshape(self.shape).copy()

    def close(self) -> None:
        if self.fd >= 0:
            self._file.close()
            self.fd = -1


def video_frames(video: Path, *, fps: float, n_out: int, n_src: int, cache_dir: str | Path | None
                 ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(output index k, source index, (H, W, 3) uint8 frame) for k = 0 .. n_out - 1, at full size.

    ``n_src``: the video's frame count on the ``fps`` timeline (from the box pass). ``n_out <= n_src`` streams the
    first ``n_out`` frames; otherwise the video plays forward-backward (:func:`pingpong_index`) from a
    :class:`FrameCache`, removed when the iterator ends or is closed.
    """
    from talkfreq.io import VideoReader

    reader = iter(VideoReader(video, fps=fps))
    cache: FrameCache | None = None
    last: np.ndarray | None = None
    try:
        k = 0
        for frame in reader:
            if k >= n_out:
                break
            if n_out > n_src:
                if cache is None:
                    cache = FrameCache(shape=frame.shape, directory=cache_dir)
                cache.write(frame)
            last = frame
            yield k, k, frame
            k += 1
        if k >= n_out:
            return
        if last is None:
            raise MediaError(f"{video}: video stream holds no frames")
        decoded = k  # normally n_src; a decoder that stops short only moves the turning point
        while k < n_out:
            if cache is None:  # the stream ended a frame or two before the box pass said: hold the last frame
                yield k, decoded - 1, last
            else:
                src = pingpong_index(k, decoded)
                yield k, src, cache.read(src)
            k += 1
    finally:
        if cache is not None:
            cache.close()
