"""Opening and probing media files with PyAV, with one-line errors for everything a user can get wrong."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from talkfreq.errors import MediaError, TalkfreqError, require_file


def open_media(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading or raise :class:`MediaError` naming the file and the problem."""
    p = require_file(path, "media file")
    try:
        return av.open(str(p), mode="r")
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        raise MediaError(f"{p}: not a video or audio file PyAV can read") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(f"{p}: cannot open media ({exc.strerror or exc})") from exc


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, in seconds and pixels (times are the streams' own, before any re-timing)."""

    path: Path
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0  # the video stream's average rate; VFR files have no single true rate
    duration: float = 0.0  # the container's duration (s)
    video_start: float = 0.0
    audio_start: float = 0.0
    audio_rate: int = 0
    audio_channels: int = 0


def _start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def probe(path: str | Path) -> MediaInfo:
    """Read the headers of ``path`` (no decoding)."""
    p = Path(path)
    with open_media(p) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        duration = float(c.duration) / av.time_base if c.duration else 0.0
        if not duration:
            s = v or a
            if s is not None and s.duration is not None:
                duration = float(s.duration * s.time_base)
        return MediaInfo(
            path=p,
            has_video=v is not None,
            has_audio=a is not None,
            width=v.codec_context.width if v else 0,
            height=v.codec_context.height if v else 0,
            fps=float(v.average_rate) if v is not None and v.average_rate else 0.0,
            duration=duration,
            video_start=_start(v) if v else 0.0,
            audio_start=_start(a) if a else 0.0,
            audio_rate=a.codec_context.sample_rate if a else 0,
            audio_channels=a.codec_context.channels if a else 0,
        )


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
