"""Audio decoding: any container PyAV reads (wav, mp3, aac in mp4, any rate, any layout) → mono float32.

Several channels are averaged, ``(L + R) / 2`` for stereo, as ``librosa.load(mono=True)`` (Wav2Lip) and
``ffmpeg -ac 1`` to 16-bit PCM (syncnet_python) do; ffmpeg's float rematrix would give ``0.707 (L + R)``, 3 dB louder,
which moves the mel and the MFCCs. The mono signal is then resampled by ffmpeg's resampler (PyAV).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from talkfreq.errors import MediaError
from talkfreq.io.media import open_media, probe


def load_audio(
    path: str | Path,
    *,
    sample_rate: int = 16000,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode the first audio stream of ``path`` to mono float32 in [-1, 1] at ``sample_rate``.

    ``offset`` (s) moves the start: positive skips that much audio, negative prepends silence — how prepare puts
    audio on the video's timeline when the two streams start at different times. ``duration`` (s) trims or pads
    with silence to exactly ``round(duration * sample_rate)`` samples.

    Returns:
        (L,) float32.
    """
    p = Path(path)
    with open_media(p) as container:
        if not container.streams.audio:
            raise MediaError(f"{p}: no audio track")
        stream = container.streams.audio[0]
        # the declared duration excludes the encoder's tail padding (AAC rounds up to 1024-sample frames)
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        planar = av.AudioResampler(format="fltp")  # the stream's own layout and rate, as float planes
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []

        def push(mono: av.AudioFrame | None) -> None:
            for out in resampler.resample(mono):
                chunks.append(out.to_ndarray().reshape(-1))

        try:
            for frame in container.decode(stream):
                for f in planar.resample(frame):
                    push(_downmix(f))
            push(None)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{p}: audio stream cannot be decoded ({exc.strerror or exc})") from exc
    wav = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if wav.size == 0:
        raise MediaError(f"{p}: audio track is empty")
    if declared:
        wav = wav[: int(round(declared * sample_rate))]
    shift = int(round(offset * sample_rate))
    if shift > 0:
        wav = wav[shift:]
    elif shift < 0:
        wav = np.concatenate([np.zeros(-shift, np.float32), wav])
    if duration is not None:
        wav = fit_length(wav, int(round(duration * sample_rate)))
    return wav


def _downmix(frame: av.AudioFrame) -> av.AudioFrame:
    """A float-planar frame -> a mono float frame holding the mean of its channels (see the module docstring)."""
    mono = frame.to_ndarray().astype(np.float32, copy=False).mean(axis=0, dtype=np.float32)
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[None]), format="flt", layout="mono")
    out.sample_rate = frame.sample_rate
    return out


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``wav`` (L,) to exactly ``n`` samples."""
    if wav.shape[0] >= n:
        return wav[:n]
    return np.concatenate([wav, np.zeros(n - wav.shape[0], wav.dtype)])


def is_silent(wav: np.ndarray, *, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of ``wav`` is below ``threshold_db`` dBFS (a silent or empty driving audio)."""
    if wav.size == 0:
        return True
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-12)) < threshold_db


def load_video_audio(path: str | Path, *, sample_rate: int = 16000, duration: float | None = None) -> np.ndarray:
    """The audio track of a video on the video's timeline: sample 0 lies under the first video frame.

    Streams may start at different times (a VFR phone clip's video starts 33 ms after its audio), so the audio is
    shifted by ``video_start - audio_start``; ``duration`` fits it to exactly that many seconds (N frames / fps).
    """
    info = probe(path)
    return load_audio(path, sample_rate=sample_rate, offset=info.video_start - info.audio_start, duration=duration)
