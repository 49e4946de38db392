"""The audio front end of the original SyncNet (``syncnet_v2``): 13 MFCCs at 100 frames/s, as syncnet_python makes
them.

What joonson/syncnet_python ``SyncNetInstance.evaluate`` does, and what :func:`syncnet_mfcc` reproduces:

* ffmpeg writes the clip's audio as 16 kHz mono ``pcm_s16le`` and ``scipy.io.wavfile.read`` loads it as int16, so the
  MFCCs see sample values in -32768..32767, not [-1, 1] (the scale moves coefficient 0, the log frame energy);
* ``python_speech_features.mfcc(audio, 16000)`` with its defaults: 25 ms frames every 10 ms, no window function,
  pre-emphasis 0.97, 512-point FFT, 26 mel filters from 0 to 8 kHz, DCT-II (ortho), 13 cepstra, lifter 22, and
  coefficient 0 replaced by the log frame energy;
* the (frames, 13) result is transposed to (13, frames); video frame ``i`` (25 fps) is paired with MFCC columns
  ``4 i .. 4 i + 19`` (0.2 s), which is :func:`talkfreq.audio.mel.mel_window` with :data:`MFCC_WINDOW`.

The MFCCs come from the ``python_speech_features`` package itself, the reference implementation; only the float ->
int16 step (ffmpeg's rounding: nearest, ties to even, clipped) is ours.
"""

from __future__ import annotations

import numpy as np

from talkfreq.audio.mel import MelConfig

__all__ = ["MFCC_RATE", "MFCC_WINDOW", "N_MFCC", "syncnet_mfcc", "to_int16_scale"]

SYNCNET_SAMPLE_RATE = 16000  # syncnet_python resamples every clip to 16 kHz
N_MFCC = 13
MFCC_HOP = 160  # python_speech_features' 10 ms step at 16 kHz
MFCC_RATE = SYNCNET_SAMPLE_RATE // MFCC_HOP  # 100 MFCC frames per second
# Windowing of the MFCC sequence for mel_window: 100 frames/s (sample_rate / hop_length), 20 frames = 0.2 s per
# 5-video-frame window, so window i starts at int(i * (100 / 25)) = 4 i exactly, as in the original. Only these
# three fields are read by mel_window; the others are the mel defaults and mean nothing here.
MFCC_WINDOW = MelConfig(sample_rate=SYNCNET_SAMPLE_RATE, hop_length=MFCC_HOP, frames_per_window=20)


def to_int16_scale(wav: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> float64 values on the int16 grid, as ffmpeg's ``pcm_s16le`` writes them."""
    return np.clip(np.rint(np.asarray(wav, np.float64) * 32768.0), -32768, 32767)


def syncnet_mfcc(wav: np.ndarray, *, sample_rate: int = SYNCNET_SAMPLE_RATE) -> np.ndarray:
    """(13, M) float32 MFCCs of mono float audio in [-1, 1] at 16 kHz, as syncnet_v2 was trained on (see the module
    docstring); M = 1 + ceil((L - 400) / 160) for L >= 400 samples."""
    import python_speech_features

    wav = np.asarray(wav)
    if wav.ndim != 1 or wav.size == 0:
        raise ValueError(f"expected non-empty mono audio (L,), got shape {wav.shape}")
    if sample_rate != SYNCNET_SAMPLE_RATE:
        raise ValueError(f"syncnet_v2's MFCCs are defined at {SYNCNET_SAMPLE_RATE} Hz, got {sample_rate} Hz audio")
    feats = python_speech_features.mfcc(to_int16_scale(wav), SYNCNET_SAMPLE_RATE)
    return np.ascontiguousarray(feats.T, dtype=np.float32)
