"""Streaming video decode on a constant-frame-rate timeline, and an atomic h264 + AAC writer (PyAV).

Memory is bounded: the reader holds at most two decoded frames, the writer none, whatever the video's length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from talkfreq.errors import MediaError, TalkfreqError, is_disk_full
from talkfreq.io.media import open_media

# sample rates ffmpeg's AAC encoder takes; :func:`aac_rate` moves any other to 48 kHz
AAC_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})


class VideoReader:
    """Frames of ``path`` re-timed to ``fps`` (None keeps the source's own frames).

    Re-timing is by timestamps, not by counting: output frame ``k`` (time ``k / fps`` from the first video frame)
    shows the source frame whose timestamp is nearest, ties going to the earlier one. So a 30 fps source drops every
    sixth frame, a variable-frame-rate source lands each output frame on the right picture, and the clip's duration
    — last timestamp plus the last frame's own duration — is kept: ``len == round(duration * fps)``. Audio put on
    the same origin (``offset=video_start``, see :func:`talkfreq.io.audio.load_audio`) stays aligned.

    ``max_side`` downscales while decoding (swscale), for passes such as face detection that want small frames.
    """

    def __init__(self, path: str | Path, *, fps: float | None = 25.0, max_side: int | None = None):
        self.path = Path(path)
        self.fps = fps
        with open_media(self.path) as c:
            if not c.streams.video:
                raise MediaError(f"{self.path}: no video stream")
            s = c.streams.video[0]
            self.source_width = s.codec_context.width
            self.source_height = s.codec_context.height
            self.source_fps = float(s.average_rate) if s.average_rate else 0.0
            self.video_start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
            dur = float(s.duration * s.time_base) if s.duration else 0.0
            if not dur and c.duration:
                dur = float(c.duration) / av.time_base - self.video_start
            self.duration_hint = dur
        if not self.source_width or not self.source_height:
            raise MediaError(f"{self.path}: video stream has no frame size")
        scale = 1.0
        if max_side and max(self.source_width, self.source_height) > max_side:
            scale = max_side / max(self.source_width, self.source_height)
        # even sizes: swscale and yuv420p want them, and detection does not care about one pixel
        self.width = max(2, int(round(self.source_width * scale / 2)) * 2) if scale != 1.0 else self.source_width
        self.height = max(2, int(round(self.source_height * scale / 2)) * 2) if scale != 1.0 else self.source_height
        self.scale = (self.width / self.source_width, self.height / self.source_height)

    def __len__(self) -> int:
        """Frame count estimated from the headers (for progress bars); iteration gives the exact count."""
        rate = self.fps or self.source_fps or 25.0
        return max(0, int(round(self.duration_hint * rate)))

    def _decoded(self) -> Iterator[tuple[float, float, np.ndarray]]:
        """(time from the first frame, frame duration, RGB frame) for each decoded source frame."""
        with open_media(self.path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            tb = float(s.time_base) if s.time_base else 0.0
            default_dur = 1.0 / self.source_fps if self.source_fps else 1.0 / 25.0
            t0: float | None = None
            i = 0
            try:
                for frame in c.decode(s):
                    t = frame.time if frame.time is not None else i * default_dur
                    if t0 is None:
                        t0 = t
                    d = frame.duration * tb if getattr(frame, "duration", None) and tb else default_dur
                    img = frame.to_ndarray(format="rgb24", width=self.width, height=self.height)
                    yield t - t0, d, img
                    i += 1
            except av.error.FFmpegError as exc:
                if i == 0:
                    raise MediaError(f"{self.path}: video cannot be decoded ({exc.strerror or exc})") from exc
                # a truncated tail keeps what decoded; the timeline simply ends there
            if i == 0:
                raise MediaError(f"{self.path}: video stream holds no frames")

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield (H, W, 3) uint8 RGB frames on the output timeline."""
        if self.fps is None:
            for _, _, img in self._decoded():
                yield img
            return
        step = 1.0 / self.fps
        eps = 1e-6
        k = 0
        prev: tuple[float, float, np.ndarray] | None = None
        for cur in self._decoded():
            if prev is not None:
                boundary = 0.5 * (prev[0] + cur[0])
                while k * step <= boundary + eps:
                    yield prev[2]
                    k += 1
            prev = cur
        assert prev is not None
        n_total = int(round((prev[0] + prev[1]) * self.fps))
        while k < n_total:
            yield prev[2]
            k += 1


def _even(n: int) -> int:
    return n + (n % 2)


def aac_rate(rate: int | None) -> int:
    """The sample rate to mux audio of ``rate`` Hz at: itself when AAC can encode it, else 48 kHz (resample the
    audio to it, e.g. with ``load_audio(..., sample_rate=aac_rate(rate))``). None (unknown) gives 16 kHz."""
    rate = int(rate or 16000)
    return rate if rate in AAC_RATES else 48000


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temp_files(parent: Path, stem: str, suffix: str) -> list[Path]:
    """Remove the temporary files of ``VideoWriter``s for ``parent/stem+suffix`` whose process is gone (killed with
    SIGKILL, or a machine that went down); the running ones are left alone. Returns what was removed."""
    removed = []
    for p in parent.glob(f".{stem}.tmp-*{suffix}"):
        pid = p.name[len(f".{stem}.tmp-"): len(p.name) - len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


class VideoWriter:
    """Write RGB frames as h264 (yuv420p) with an optional AAC audio track, atomically.

    The file is written under a temporary name in the output folder and renamed when the ``with`` block ends
    without an error; on an error the temporary file is removed, so a failed run never leaves a broken mp4.
    Audio is interleaved as frames arrive (each video frame releases the audio up to its end time).

    Args:
        path: output .mp4.
        fps: frame rate of the output timeline.
        width, height: frame size; odd sizes are padded by one pixel (h264 in yuv420p, what players take, needs
            even sizes): ``out_width`` / ``out_height`` say what is written.
        audio: (L,) or (L, C) float32 in [-1, 1] at ``sample_rate``, or None for a silent video.
        crf, preset: libx264 quality/speed (18/"veryfast": visually lossless for face crops).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float,
        width: int,
        height: int,
        audio: np.ndarray | None = None,
        sample_rate: int = 16000,
        crf: int = 18,
        preset: str = "veryfast",
        audio_bitrate: int = 128_000,
    ):
        self.path = Path(path)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise TalkfreqError(f"{self.path}: output folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise TalkfreqError(f"{self.path}: output folder {parent} cannot be written")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.width, self.height = int(width), int(height)
        self.out_width, self.out_height = _even(self.width), _even(self.height)
        self.sample_rate = int(sample_rate)
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            audio = audio[:, None] if audio.ndim == 1 else audio
            if audio.ndim != 2 or audio.shape[1] not in (1, 2):
                raise ValueError(f"audio must be (L,) or (L, 1|2), got {audio.shape}")
        self.audio = audio
        self._tmp = parent / f".{self.path.stem}.tmp-{os.getpid()}{self.path.suffix or '.mp4'}"
        self._crf, self._preset, self._abr = crf, preset, audio_bitrate
        self._container = None
        self.frames_written = 0
        self._audio_pos = 0

    @property
    def padded(self) -> bool:
        """The written size differs from the frames' (odd width or height, padded by one pixel)."""
        return (self.out_width, self.out_height) != (self.width, self.height)

    def _disk_full(self, exc: OSError) -> TalkfreqError:
        return TalkfreqError(f"{self.path}: no space left on the device while writing the video "
                             f"({self.frames_written} frames written); nothing was saved, free some space and run "
                             f"again")

    def _mux(self, packets) -> None:
        try:
            for pkt in packets:
                self._container.mux(pkt)
        except OSError as exc:
            if is_disk_full(exc):
                raise self._disk_full(exc) from exc
            raise

    def __enter__(self) -> VideoWriter:
        # a run killed without a chance to clean up (SIGKILL) left its temporary file: the next run removes it
        remove_stale_temp_files(self._tmp.parent, self.path.stem, self._tmp.suffix)
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise self._disk_full(exc) from exc
            raise
        vs = self._container.add_stream("libx264", rate=self.fps)
        vs.width, vs.height = self.out_width, self.out_height
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(self._crf), "preset": self._preset}
        self._v = vs
        self._a = None
        if self.audio is not None:
            layout = "mono" if self.audio.shape[1] == 1 else "stereo"
            a = self._container.add_stream("aac", rate=self.sample_rate, layout=layout)
            a.bit_rate = self._abr
            self._a = a
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {frame.shape[:2]}, writer expects {(self.height, self.width)}")
        if (frame.shape[0] % 2) or (frame.shape[1] % 2):
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
        self._mux(self._v.encode(vf))
        self.frames_written += 1
        self._push_audio(until=int(round(self.frames_written / float(self.fps) * self.sample_rate)))

    def _push_audio(self, until: int) -> None:
        if self._a is None:
            return
        fsize = self._a.codec_context.frame_size or 1024
        total = self.audio.shape[0]
        until = min(until, total)
        while self._audio_pos + fsize <= until or (until == total and self._audio_pos < total):
            # ffmpeg's aac encoder accepts a short last frame, so the track ends where the audio does
            chunk = self.audio[self._audio_pos : self._audio_pos + fsize]
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk.T), format="fltp", layout=self._a.layout.name
            )
            af.sample_rate = self.sample_rate
            af.pts = self._audio_pos
            af.time_base = Fraction(1, self.sample_rate)
            self._mux(self._a.encode(af))
            self._audio_pos += chunk.shape[0]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._mux(self._v.encode(None))
                if self._a is not None:
                    self._push_audio(until=self.audio.shape[0])
                    self._mux(self._a.encode(None))
            self._container.close()
        except BaseException as err:
            self._tmp.unlink(missing_ok=True)
            if exc_type is not None:  # closing a file that already failed: the first error is the one to report
                return
            if isinstance(err, OSError) and is_disk_full(err):
                raise self._disk_full(err) from err
            raise
        if exc_type is not None or self.frames_written == 0:
            self._tmp.unlink(missing_ok=True)
            if exc_type is None:
                raise TalkfreqError(f"{self.path}: no frames were written; nothing saved")
            return
        os.replace(self._tmp, self.path)
