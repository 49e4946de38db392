"""Wav2Lip mel spectrogram (torch reimplementation) and per-video-frame mel windows."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from talkfreq.audio.mel import (
    MelConfig,
    mel_center_frequencies,
    mel_filterbank,
    mel_index,
    mel_window,
    melspectrogram,
)
from talkfreq.errors import TalkfreqError

SR = 16000
MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SPEECH_WAV = MEDIA / "audio" / "edtalk_mouth_source.wav"


def _sine(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _read_pcm16(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


# --- no librosa needed ------------------------------------------------------------------------------------------


def test_frame_count_is_80_per_second():
    mel = melspectrogram(_noise(8.0))
    assert mel.shape == (80, 641) and mel.dtype == np.float32
    # Not a multiple of the hop: T = 1 + L // hop (Wav2Lip's librosa count).
    assert melspectrogram(_noise(1.0)[:16199]).shape == (80, 81)


def test_range_and_silence():
    mel = melspectrogram(_noise(2.0) * 100)  # far beyond full scale, so the top clips
    assert mel.min() >= -4.0 and mel.max() <= 4.0
    assert np.isclose(mel.max(), 4.0)
    silent = melspectrogram(np.zeros(SR, dtype=np.float32))
    np.testing.assert_array_equal(silent, np.full((80, 81), -4.0, dtype=np.float32))


def test_sine_peaks_in_nearest_band():
    mel = melspectrogram(_sine(1000.0, 1.0))
    centres = mel_center_frequencies()
    expected = int(np.argmin(np.abs(centres - 1000.0)))
    # Skip the edge frames, which see the reflect padding.
    peaks = np.argmax(mel[:, 5:-5], axis=0)
    assert np.all(peaks == expected), (expected, np.unique(peaks))


def test_torch_and_batched_input_match_numpy():
    a, b = _noise(1.0, seed=1), _noise(1.0, seed=2)
    ref = melspectrogram(a)
    single = melspectrogram(torch.from_numpy(a))
    assert isinstance(single, torch.Tensor) and single.shape == (80, 81)
    np.testing.assert_allclose(single.numpy(), ref, atol=1e-5)
    batch = melspectrogram(torch.from_numpy(np.stack([a, b])))
    assert batch.shape == (2, 80, 81)
    np.testing.assert_allclose(batch[0].numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(batch[1].numpy(), melspectrogram(b), atol=1e-5)


def test_bad_input_errors():
    with pytest.raises(TalkfreqError, match="empty"):
        melspectrogram(np.zeros(0, dtype=np.float32))
    with pytest.raises(TalkfreqError, match="32768"):
        melspectrogram(np.zeros(1000, dtype=np.int16))
    # Shorter than n_fft // 2: zero padding instead of reflect, still one frame per hop.
    assert melspectrogram(_noise(0.02)).shape == (80, 2)


def test_filterbank_shape_and_slaney_area():
    fb = mel_filterbank()
    assert fb.shape == (80, 401)
    assert np.all(fb >= 0) and np.all(fb.sum(axis=1) > 0)
    centres = mel_center_frequencies()
    assert centres[0] > 55.0 and centres[-1] < 7600.0 and np.all(np.diff(centres) > 0)


def test_mel_index_wav2lip_convention():
    assert [mel_index(i, fps=25.0) for i in (0, 1, 2, 199)] == [0, 3, 6, 636]
    assert mel_index(30, fps=30.0) == 80
    # Another hop: 100 mel frames per second.
    assert mel_index(25, fps=25.0, cfg=MelConfig(hop_length=160)) == 100


@pytest.mark.parametrize("frames", [5_000, pytest.param(100_000, marks=pytest.mark.heavy)])
def test_mel_index_equals_the_originals(frames):
    i = np.arange(frames)
    # syncnet_python pairs video frame i with MFCC columns 4i .. 4i+19, exactly (integer 4 * vframe)
    from talkfreq.audio.mfcc import MFCC_WINDOW

    mfcc_starts = np.array([mel_index(k, fps=25.0, cfg=MFCC_WINDOW) for k in i])
    np.testing.assert_array_equal(mfcc_starts, 4 * i)
    # Wav2Lip: inference.py's int(i * (80. / fps)) and the training loaders' int(80. * (i / float(fps)))
    for fps in (25.0, 30.0, 29.97):
        ours = np.array([mel_index(k, fps=fps) for k in i])
        np.testing.assert_array_equal(ours, [int(k * (80.0 / fps)) for k in i])
        np.testing.assert_array_equal(ours, [int(80.0 * (k / fps)) for k in i])


def _wav2lip_inference_chunks(mel: np.ndarray, fps: float, step: int = 16) -> list[np.ndarray]:
    """Wav2Lip inference.py's mel_chunks loop, restated."""
    chunks, i = [], 0
    while True:
        start = int(i * (80.0 / fps))
        if start + step > mel.shape[1]:
            chunks.append(mel[:, mel.shape[1] - step:])
            return chunks
        chunks.append(mel[:, start:start + step])
        i += 1


def test_mel_window_edges_of_200_frame_clip():
    fps = 25.0
    mel = melspectrogram(_noise(8.0))  # 200 video frames at 25 fps, 641 mel frames
    first = mel_window(mel, 0, fps=fps)
    assert first.shape == (80, 16)
    np.testing.assert_array_equal(first, mel[:, :16])
    # as Wav2Lip's inference: a window past the end is the last 16 columns
    np.testing.assert_array_equal(mel_window(mel, 199, fps=fps), mel[:, -16:])
    chunks = _wav2lip_inference_chunks(mel, fps)
    assert len(chunks) == 197  # the original makes 197 of the 200 frames; ours repeats its last window
    for i in range(200):
        np.testing.assert_array_equal(mel_window(mel, i, fps=fps), chunks[min(i, len(chunks) - 1)])
    # under one window of audio: the last column repeats (the original fails there)
    short = mel[:, :5]
    np.testing.assert_array_equal(mel_window(short, 3, fps=fps)[:, 5:], np.repeat(short[:, 4:5], 11, axis=1))


# --- against librosa (test-only dependency) -------------------------------------------------------------------


def _wav2lip_reference(wav: np.ndarray, librosa) -> np.ndarray:
    """Wav2Lip's audio.melspectrogram with librosa/scipy in float64 (pad_mode pinned to Wav2Lip-era 'reflect')."""
    from scipy import signal

    basis = librosa.filters.mel(sr=SR, n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0)
    y = signal.lfilter([1, -0.97], [1], wav.astype(np.float64))
    spec = np.abs(librosa.stft(y=y, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect"))
    db = 20 * np.log10(np.maximum(1e-5, basis @ spec)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0)


def test_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=SR, n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0)  # float32
    # Ours is float64; the difference is librosa's float32 rounding (weights peak ~0.027).
    np.testing.assert_allclose(mel_filterbank(), ref, atol=1e-7, rtol=0)


@pytest.mark.heavy
@pytest.mark.parametrize("kind", ["noise", "chirp"])
def test_pipeline_matches_librosa(kind):
    librosa = pytest.importorskip("librosa")
    if kind == "noise":
        wav = _noise(3.0)
    else:
        t = np.arange(3 * SR) / SR
        wav = (0.3 * np.sin(2 * np.pi * (100 + 1200 * t) * t)).astype(np.float32)
    ref = _wav2lip_reference(wav, librosa)
    ours = melspectrogram(wav)
    assert ref.shape == ours.shape  # Wav2Lip's frame count, 1 + L // hop
    # float32 STFT vs float64 on the +-4 scale: measured max |diff| 2e-5 (noise), 1.6e-4 (chirp), 5e-5 (speech);
    # 1e-3 (1/8000 of the 8-wide range) leaves room for other FFT/BLAS builds.
    np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=0)


# --- real media ------------------------------------------------------------------------------------------------


@pytest.mark.heavy
@pytest.mark.media
def test_real_speech_file():
    if not SPEECH_WAV.is_file():
        pytest.skip(f"{SPEECH_WAV} not present")
    wav = _read_pcm16(SPEECH_WAV)
    mel = melspectrogram(wav)
    assert mel.shape == (80, 1 + len(wav) // 200)
    assert -4.0 <= mel.min() and mel.max() <= 4.0
    # Speech, not silence or clipping: a wide spread of levels, most energy in the lower bands.
    assert mel.std() > 0.5 and mel.max() > 0.0
    assert mel[:40].mean() > mel[60:].mean()
    try:
        import librosa
    except ImportError:
        return
    ref = _wav2lip_reference(wav, librosa)
    np.testing.assert_allclose(mel, ref, atol=1e-3, rtol=0)
