"""Wav2Lip's mel spectrogram, in torch only, and the per-video-frame mel windows that drive lip sync.

:func:`melspectrogram` reproduces Wav2Lip's ``audio.melspectrogram`` (``hparams.py`` defaults, carried here by
:class:`MelConfig`):

1. pre-emphasis ``y[n] = x[n] - k * x[n-1]`` (``scipy.signal.lfilter([1, -k], [1], x)``, so ``y[0] = x[0]``);
2. STFT, periodic Hann window, ``center=True`` with *reflect* padding (librosa <= 0.9, which Wav2Lip used;
   librosa 0.10 changed the default to zero padding), magnitude;
3. Slaney mel filterbank (``librosa.filters.mel`` defaults: ``htk=False, norm='slaney'``), built by
   :func:`mel_filterbank`;
4. ``20 * log10(max(1e-5, x)) - ref_level_db`` (1e-5 is ``10 ** (min_level_db / 20)``);
5. symmetric normalisation to ``[-max_abs_value, max_abs_value]`` with clipping.

Frame count: Wav2Lip's, librosa's centred STFT: ``T = 1 + L // hop`` (8 s of audio -> 641 frames at the defaults).
Mel frame ``j`` is centred on sample ``j * hop``.

Windows (:func:`mel_window`) follow Wav2Lip's ``inference.py``: video frame ``i`` takes the ``frames_per_window``
columns from ``int(i * (mel_fps / fps))``; a window that would run past the end is the last ``frames_per_window``
columns instead. (The original then stops and cuts the video to the windows it made, so its last ~3 frames at 25 fps
are not generated; talkfreq gives those frames the same last window, so frames the original makes are identical.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from talkfreq.errors import TalkfreqError


@dataclass
class MelConfig:
    """Mel-spectrogram settings; defaults are Wav2Lip's ``hparams.py``."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    frames_per_window: int = 16  # mel frames per video-frame window: 16 / 80 Hz = 0.2 s


# Slaney's auditory-toolbox mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, hz)


def _mel_edges(cfg: MelConfig) -> np.ndarray:
    """(n_mels + 2,) Hz: band edges equally spaced on the Slaney mel scale between fmin and fmax."""
    lo, hi = _hz_to_mel(np.array([cfg.fmin, cfg.fmax]))
    return _mel_to_hz(np.linspace(lo, hi, cfg.n_mels + 2))


def mel_center_frequencies(*, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """(n_mels,) float64 Hz: the peak frequency of each mel band's triangle."""
    return _mel_edges(cfg)[1:-1]


@functools.lru_cache(maxsize=8)
def _filterbank_cached(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    cfg = MelConfig(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges = _mel_edges(cfg)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney normalisation: each triangle has unit area in Hz, so wide high bands are not louder than narrow ones.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def mel_filterbank(*, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float64: ``librosa.filters.mel(htk=False, norm='slaney')`` reimplemented.

    Triangles with peaks at :func:`mel_center_frequencies`, feet at the neighbouring peaks, area-normalised.
    Read-only (cached); copy before editing.
    """
    if cfg.fmax > cfg.sample_rate / 2:
        raise TalkfreqError(
            f"mel config: fmax={cfg.fmax} is above the Nyquist frequency {cfg.sample_rate / 2}; lower mel.fmax"
        )
    return _filterbank_cached(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.fmin), float(cfg.fmax))


def melspectrogram(wav: np.ndarray | torch.Tensor, *, cfg: MelConfig = MelConfig()) -> np.ndarray | torch.Tensor:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio.

    ``wav``: (L,) numpy or torch float audio in [-1, 1], or (B, L) torch / numpy for a batch.
    Returns float32 (n_mels, T) - or (B, n_mels, T) for batched input - with ``T = 1 + L // hop_length`` (Wav2Lip's
    count) and values in ``[-max_abs_value, max_abs_value]``.
    numpy input gives a numpy array; torch input gives a tensor on the input's device (ours: so a training step
    can compute mels on the GPU). Computed in float32; matches the librosa/scipy pipeline within 1e-3 in normalised
    units (measured max 5e-5 on 10 s of speech; tests/test_audio_mel.py).
    Audio shorter than ``n_fft // 2 + 1`` samples cannot be reflect-padded; it is zero-padded instead (ours).
    """
    as_numpy = not isinstance(wav, torch.Tensor)
    x = torch.as_tensor(np.asarray(wav) if as_numpy else wav)
    if x.ndim not in (1, 2):
        raise TalkfreqError(f"audio must be 1-D (samples) or 2-D (batch, samples), got shape {tuple(x.shape)}")
    if not (x.is_floating_point()):
        # Integer PCM cast to float would be 32768x too loud and clip everything to +max_abs_value.
        raise TalkfreqError(f"audio must be float in [-1, 1], got {x.dtype}; divide PCM16 samples by 32768")
    if x.shape[-1] == 0:
        raise TalkfreqError("audio is empty (0 samples); check that the input file has an audio track")
    batched = x.ndim == 2
    x = x.reshape(-1, x.shape[-1]).to(torch.float32)

    # Pre-emphasis as lfilter([1, -k], [1]): the first sample passes through unchanged.
    y = torch.cat([x[:, :1], x[:, 1:] - cfg.preemphasis * x[:, :-1]], dim=1)

    pad_mode = "reflect" if y.shape[-1] > cfg.n_fft // 2 else "constant"
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float32, device=y.device)
    spec = torch.stft(
        y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
        center=True, pad_mode=pad_mode, return_complex=True,
    ).abs()  # (B, n_fft // 2 + 1, 1 + L // hop)

    basis = torch.from_numpy(mel_filterbank(cfg=cfg).astype(np.float32)).to(y.device)
    mel = torch.matmul(basis, spec)  # (B, n_mels, T)
    min_level = 10.0 ** (cfg.min_level_db / 20.0)
    db = 20.0 * torch.log10(torch.clamp(mel, min=min_level)) - cfg.ref_level_db
    m = cfg.max_abs_value
    out = torch.clamp(2 * m * (db - cfg.min_level_db) / (-cfg.min_level_db) - m, -m, m)
    if not batched:
        out = out[0]
    return out.cpu().numpy() if as_numpy else out


def mel_index(frame_index: int, *, fps: float, cfg: MelConfig = MelConfig()) -> int:
    """First mel frame of video frame ``frame_index``'s window: Wav2Lip's ``int(i * (80 / fps))`` (inference.py).

    80 generalises to feature frames per second, ``sample_rate / hop_length``. The multiplier is computed first, as
    the original does: at 100 MFCC frames/s and 25 fps it is exactly 4.0, so window ``i`` starts at ``4 i`` as in
    syncnet_python (``int(100 * (i / 25))`` would truncate to ``4 i - 1`` for some ``i``). For Wav2Lip's 80 mel
    frames/s this equals both ``int(80 * (i / fps))`` (its training code) and ``floor(80 i / fps)`` (tested).
    """
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    if fps <= 0:
        raise TalkfreqError(f"video frame rate must be positive, got fps={fps}; check the video's metadata")
    return int(frame_index * ((cfg.sample_rate / cfg.hop_length) / float(fps)))


def mel_window(
    mel: np.ndarray, frame_index: int, *, fps: float, cfg: MelConfig = MelConfig()
) -> np.ndarray:
    """(n_mels, frames_per_window) mel window for video frame ``frame_index``, from ``mel`` (n_mels, T).

    The window starts at :func:`mel_index`. Where it runs past the end of the audio it is the last
    ``frames_per_window`` columns, as Wav2Lip's inference takes it; a spectrogram shorter than one window (under
    0.2 s of audio) is padded by repeating its last column (ours: the original fails there).
    """
    mel = np.asarray(mel)
    if mel.ndim != 2 or mel.shape[1] == 0:
        raise TalkfreqError(f"mel spectrogram must have shape (n_mels, T>0), got {mel.shape}; is the audio empty?")
    start = min(mel_index(frame_index, fps=fps, cfg=cfg), max(mel.shape[1] - cfg.frames_per_window, 0))
    cols = np.clip(np.arange(start, start + cfg.frames_per_window), 0, mel.shape[1] - 1)
    return mel[:, cols]
