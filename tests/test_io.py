"""PyAV IO: constant-rate re-timing of CFR/30 fps/VFR sources, audio loading from any container, atomic writer."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import media
from talkfreq.errors import MediaError, TalkfreqError
from talkfreq.io import VideoReader, VideoWriter, load_audio, load_video_audio, probe


def _write(path, n=50, fps=25.0, size=(96, 128), audio=None, sr=16000):
    with VideoWriter(path, fps=fps, width=size[1], height=size[0], audio=audio, sample_rate=sr) as w:
        for i in range(n):
            w.write(np.full((*size, 3), (i * 5) % 256, np.uint8))


@pytest.mark.parametrize(
    "rel",
    ["video/videoretalking_face1_vfr.mp4", "video/videoretalking_face4.mp4", "video/sadtalker_WDA_KatieHill_000.mp4"],
)
def test_reader_retimes_to_25fps_with_duration_kept(rel):
    path = media(rel)
    info = probe(path)
    reader = VideoReader(path, fps=25.0, max_side=64)
    n = sum(1 for _ in reader)
    assert abs(n - (info.duration - info.video_start) * 25) <= 1  # VFR: the video starts 33 ms into the file
    wav = load_video_audio(path, duration=n / 25)
    assert wav.shape[0] == round(n / 25 * 16000)  # audio on the video's timeline, exactly as long


def test_reader_picks_nearest_frame_by_timestamp(tmp_path):
    # a 30 fps video whose frame i has brightness 4*i: output frame k at t=k/25 must show source round(k*30/25)
    path = tmp_path / "ramp30.mp4"
    with VideoWriter(path, fps=30, width=64, height=64) as w:
        for i in range(60):
            w.write(np.full((64, 64, 3), 4 * i, np.uint8))
    frames = list(VideoReader(path, fps=25))
    assert len(frames) == 50
    for k, f in enumerate(frames):
        src = int(np.floor(k * 30 / 25 + 0.5 - 1e-9))  # nearest, ties to the earlier frame
        assert abs(float(f.mean()) - 4 * src) < 2.5, (k, f.mean(), src)


def test_reader_native_rate_and_downscale(tmp_path):
    path = tmp_path / "a.mp4"
    _write(path, n=10, size=(100, 200))
    r = VideoReader(path, fps=None, max_side=50)
    frames = list(r)
    assert len(frames) == 10 and frames[0].shape == (r.height, r.width, 3) == (24, 50, 3)


@pytest.mark.parametrize(
    "rel,seconds",
    [
        ("audio/vexpress_AOC_aud.mp3", 4.574),
        ("audio/videoretalking_audio2.wav", 5.0),
        ("audio/sadtalker_RD_Radio40_000.wav", 8.0),
        ("audio/iplap_audio2.wav", 21.3),
    ],
)
def test_load_audio_any_container_to_16k_mono(rel, seconds):
    wav = load_audio(media(rel))
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(wav.shape[0] / 16000 - seconds) < 0.05
    assert 0.01 < np.abs(wav).max() <= 1.0


def test_load_audio_from_48k_stereo_aac_in_mp4():
    wav = load_audio(media("video/edtalk_pose_source2.mp4"), duration=10.0)
    assert wav.shape == (160000,)


def test_writer_roundtrip_audio_and_frames(tmp_path):
    sr = 16000
    t = np.arange(int(2.01 * sr)) / sr
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "out.mp4"
    _write(path, n=50, audio=tone)
    info = probe(path)
    assert info.has_audio and info.width == 128 and info.height == 96
    back = load_audio(path)
    assert abs(back.shape[0] - tone.shape[0]) <= 1
    assert np.corrcoef(back[2000:30000], tone[2000:30000])[0, 1] > 0.99  # no offset introduced by AAC priming
    frames = list(VideoReader(path))
    assert len(frames) == 50 and abs(float(frames[20].mean()) - 100) < 3


def test_writer_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=25, width=32, height=32) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_unwritable_folder(tmp_path):
    with pytest.raises(TalkfreqError, match="does not exist"):
        VideoWriter(tmp_path / "nope" / "x.mp4", fps=25, width=32, height=32)


def test_bad_media_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MediaError, match="junk.mp4: not a video or audio file"):
        VideoReader(junk)
    silent = tmp_path / "silent.mp4"
    _write(silent, n=5)
    with pytest.raises(MediaError, match="silent.mp4: no audio track"):
        load_audio(silent)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.wav"):
        load_audio(empty)


def test_reader_memory_does_not_hold_frames():
    # the reader is a generator over a live decoder: iterating part of a long clip does not decode the rest
    path = media("video/edtalk_pose_source2.mp4")
    it = iter(VideoReader(path, fps=25))
    first = [next(it) for _ in range(5)]
    assert all(f.shape == (256, 256, 3) for f in first)


def _stereo_wav(path, left: np.ndarray, right: np.ndarray, sr: int) -> None:
    import wave

    pcm = np.stack([left, right], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.ascontiguousarray(pcm.astype("<i2")).tobytes())


def test_stereo_downmix_is_the_mean_of_the_channels(tmp_path):
    # Channels that differ (a tone left, noise right): (L + R) / 2 as librosa.load(mono=True) and ffmpeg -ac 1
    # (16-bit) give it; ffmpeg's float rematrix would give 0.707 (L + R).
    sr = 16000
    rng = np.random.default_rng(0)
    t = np.arange(sr) / sr
    left = np.round(12000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    right = rng.integers(-9000, 9000, sr).astype(np.int16)
    _stereo_wav(tmp_path / "st.wav", left, right, sr)
    wav = load_audio(tmp_path / "st.wav", sample_rate=sr)
    expected = (left.astype(np.float64) + right) / 2 / 32768.0
    np.testing.assert_allclose(wav, expected, atol=1e-6, rtol=0)
    librosa = pytest.importorskip("librosa")
    ref, _ = librosa.load(str(tmp_path / "st.wav"), sr=None, mono=True)
    np.testing.assert_allclose(wav, ref, atol=1e-6, rtol=0)


def test_stereo_downmix_then_resample_keeps_the_level(tmp_path):
    # 48 kHz stereo, same tone in both channels at different levels: the 16 kHz mono has the mean's amplitude.
    sr = 48000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 440 * t)
    _stereo_wav(tmp_path / "st48.wav", np.round(16000 * tone), np.round(8000 * tone), sr)
    wav = load_audio(tmp_path / "st48.wav", sample_rate=16000)
    assert wav.shape == (16000,)
    amp = np.sqrt(2) * np.sqrt(np.mean(wav[1000:-1000].astype(np.float64) ** 2))
    assert abs(amp - 12000 / 32768) < 2e-3
