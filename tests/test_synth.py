"""Procedural talking-face data: determinism, file layout, detectability, lip-sync truth and detail texture."""

from __future__ import annotations

import json
from dataclasses import replace

import av
import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from talkfreq.data.synth import (
    VOWELS,
    SynthConfig,
    check_config,
    make_identity,
    render_clip,
    speech_audio,
    synthesize,
)
from talkfreq.data.synth_render import head_matrix, render_frame
from talkfreq.errors import ConfigError

CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def haar_boxes(frame: np.ndarray) -> np.ndarray:
    grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    return np.asarray(CASCADE.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)).reshape(-1, 4)


def frame_rms(audio: np.ndarray, n: int, fps: float, sr: int) -> np.ndarray:
    """RMS of the audio in a one-frame window centred on each frame time i / fps: (n,)."""
    hop = sr / fps
    return np.array([np.sqrt(np.mean(audio[max(0, int(i * hop - hop / 2)): int(i * hop + hop / 2)] ** 2))
                     for i in range(n)])


def high_freq_fraction(grey: np.ndarray) -> float:
    """Share of spectral energy beyond half the Nyquist frequency along either axis."""
    spec = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(grey.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(grey.shape[1]))[None, :]
    return float(spec[(fx > 0.25) | (fy > 0.25)].sum() / spec.sum())


def test_config_is_structured_and_checked():
    conf = OmegaConf.structured(SynthConfig)
    assert conf.frame_size == 256 and conf.identities == 3
    with pytest.raises(ConfigError, match="seconds"):
        check_config(SynthConfig(seconds=0))
    with pytest.raises(ConfigError, match="detail"):
        check_config(SynthConfig(detail=2.0))


def test_same_seed_same_frames_and_audio():
    cfg = SynthConfig(seconds=1.0, frame_size=96)
    a = render_clip(cfg=cfg, identity=make_identity(index=1, size=96, seed=0), clip=1)
    b = render_clip(cfg=cfg, identity=make_identity(index=1, size=96, seed=0), clip=1)
    np.testing.assert_array_equal(a.audio, b.audio)
    for k in (0, 12, 24):
        np.testing.assert_array_equal(a.frame(k), b.frame(k))
    np.testing.assert_array_equal(np.stack(list(a.frames())), np.stack(list(b.frames())))
    other = render_clip(cfg=replace(cfg, seed=1), identity=make_identity(index=1, size=96, seed=1), clip=1)
    assert not np.array_equal(a.audio, other.audio)
    assert not np.array_equal(a.frame(0), other.frame(0))


@pytest.mark.parametrize("seconds,fps,sr", [(1.3, 30.0, 16000), (1.01, 29.97, 22050)])
def test_exact_lengths(seconds, fps, sr):
    cfg = SynthConfig(seconds=seconds, fps=fps, sample_rate=sr, frame_size=64)
    clip = render_clip(cfg=cfg, identity=make_identity(index=0, size=64), clip=0)
    assert len(clip) == round(seconds * fps) == len(list(clip.frames()))
    assert clip.audio.shape == (round(seconds * sr),) and clip.audio.dtype == np.float32
    for key in ("openness", "mouth_width", "vowel"):
        assert clip.truth[key].shape == (len(clip),)
    assert clip.truth["mouth_center"].shape == (len(clip), 2) and clip.truth["face_box"].shape == (len(clip), 4)


def test_written_clip_decodes_with_audio_and_truth(tmp_path):
    cfg = SynthConfig(identities=1, clips_per_identity=1, seconds=2.0, frame_size=128)
    calls = []
    paths = synthesize(cfg=cfg, out=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert paths == [tmp_path / "id00" / "id00_c00.mp4"] and calls[-1] == (50, 50)
    meta = json.loads((tmp_path / "synth.json").read_text())
    assert meta["config"]["frame_size"] == 128 and meta["clips"] == ["id00/id00_c00.mp4"]
    truth = np.load(tmp_path / "id00" / "id00_c00.truth.npz")
    assert str(truth["identity"]) == "id00" and float(truth["fps"]) == 25.0 and int(truth["sample_rate"]) == 16000
    assert truth["openness"].shape == (50,) and truth["audio"].shape == (32000,)
    with av.open(str(paths[0])) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert vs.codec_context.name == "h264" and aus.codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    assert len(frames) == 50 and frames[0].shape == (128, 128, 3)
    with av.open(str(paths[0])) as c:
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - 2.0) <= 1 / 25
        samples = sum(f.samples for f in c.decode(a))
    assert abs(samples - 32000) <= 2048  # the encoder's priming and last-frame padding only
    hits = sum(len(haar_boxes(f)) > 0 for f in frames)
    assert hits >= 0.95 * len(frames)
    assert not list(tmp_path.rglob("*.tmp*"))


@pytest.mark.heavy
def test_haar_finds_every_identity_where_the_truth_says():
    cfg = SynthConfig(seconds=1.6, frame_size=256)
    for i in range(3):
        clip = render_clip(cfg=cfg, identity=make_identity(index=i, size=256), clip=0)
        found = 0
        for k, frame in enumerate(clip.frames()):
            boxes = haar_boxes(frame)
            if len(boxes):
                found += 1
                x, y, w, h = boxes[np.argmax(boxes[:, 2])]
                x0, y0, x1, y1 = clip.truth["face_box"][k]
                assert x0 < x + w / 2 < x1 and y0 < y + h / 2 < y1, "detection away from the rendered face"
        assert found >= 0.95 * len(clip), f"id{i:02d}: face found on {found}/{len(clip)} frames"


def test_openness_is_a_function_of_the_audio():
    cfg = SynthConfig(seconds=8.0, frame_size=64)
    clip = render_clip(cfg=cfg, identity=make_identity(index=2, size=64), clip=0)
    op, vow = clip.truth["openness"], clip.truth["vowel"]
    rms = frame_rms(clip.audio, len(clip), cfg.fps, cfg.sample_rate)
    silent = rms < 0.01
    assert 0.15 < silent.mean() < 0.7, "clips need both pauses and speech"
    assert op[silent].max() < 0.02, "mouth must stay shut in pauses"
    assert np.all(op[vow < 0] == 0) and op.min() >= 0 and op.max() <= 1
    assert np.corrcoef(op, rms)[0, 1] > 0.8
    level = 20 * np.log10(np.sqrt(np.mean(clip.audio ** 2)))
    assert -21.5 < level < -18.5 and np.abs(clip.audio).max() < 1.0


def test_vowel_formants_are_where_the_table_puts_them():
    sp = speech_audio(seconds=12.0, sample_rate=16000, seed=3, f0=120.0)
    band = {}
    for t0, t1, v, _ in sp.syllables:
        seg = sp.audio[int((t0 + 0.3 * (t1 - t0)) * 16000): int((t1 - 0.3 * (t1 - t0)) * 16000)]
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 4096)) ** 2
        f = np.fft.rfftfreq(4096, 1 / 16000)
        band.setdefault(VOWELS[int(v)], []).append(spec[(f > 1900) & (f < 2700)].sum() / spec[f < 1000].sum())
    # /i/ has F2 near 2300 Hz, /u/ none above 1 kHz
    assert np.mean(band["i"]) > 5 * np.mean(band["u"])


def test_detail_knob_controls_high_frequency_texture():
    cfg = SynthConfig(seconds=0.2, frame_size=256, head_motion=0.0)
    for i in range(3):
        fracs, grey = [], []
        for detail in (1.0, 0.0):
            clip = render_clip(cfg=cfg, identity=make_identity(index=i, size=256, detail=detail), clip=0)
            x0, y0, x1, y1 = clip.truth["face_box"][0]
            g = cv2.cvtColor(clip.frame(0), cv2.COLOR_RGB2GRAY).astype(np.float64)
            g = g[int(y0) - 10: int(y1), int(x0): int(x1)]  # face and the hair above it
            fracs.append(high_freq_fraction(g))
            grey.append(g)
        assert fracs[0] > 2 * fracs[1], (i, fracs)
        # the same face underneath: blurred, the detailed and the plain face agree to a few grey levels
        low = [cv2.GaussianBlur(g, (0, 0), 2.5) for g in grey]
        assert np.median(np.abs(low[0] - low[1])) < 3.0


def test_mouth_pixels_follow_openness_and_truth_positions():
    ident = make_identity(index=1, size=256)
    m = head_matrix(ident.geom, tx=6.0, ty=-4.0, rot=5.0, scale=1.03)
    shut = render_frame(ident, openness=0.0, width=1.0, blink=0.0, matrix=m).astype(np.int32)
    wide = render_frame(ident, openness=1.0, width=1.0, blink=0.0, matrix=m).astype(np.int32)
    changed = np.abs(wide - shut).sum(-1) > 30
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 150
    # only the mouth moved: the changed pixels sit around the mouth, below the eyes
    g = ident.geom
    mouth = m @ np.array([g.cx, g.mouth_y, 1.0])
    assert np.abs(xs - mouth[0]).max() < 1.3 * g.mouth_hw * 1.03 and ys.min() > m[1] @ [g.cx, g.nose_y, 1.0]
    # the truth of a rendered clip puts the opening (dark cavity + grey teeth) where the pixels are
    cfg = SynthConfig(seconds=4.0, frame_size=256)
    for i in range(3):
        clip = render_clip(cfg=cfg, identity=make_identity(index=i, size=256), clip=0)
        k = int(np.argmax(clip.truth["openness"]))
        (mx, my), half = clip.truth["mouth_center"][k], 0.45 * clip.truth["mouth_width"][k]
        f = clip.frame(k).astype(np.int32)
        yy, xx = np.mgrid[0:256, 0:256]
        near = (np.abs(xx - mx) < half) & (np.abs(yy - my) < 20)
        cavity = (f.sum(-1) < 150) & (f[..., 0] > f[..., 1])
        teeth = (np.ptp(f, axis=-1) < 30) & (f.min(-1) > 90)
        cy, cx = np.argwhere(near & (cavity | teeth)).mean(0)
        assert np.hypot(cx - mx, cy - my) < 2.0, (i, cx - mx, cy - my)


def test_static_head_when_motion_is_zero():
    cfg = SynthConfig(seconds=1.0, frame_size=64, head_motion=0.0)
    clip = render_clip(cfg=cfg, identity=make_identity(index=0, size=64), clip=0)
    assert np.ptp(clip.truth["face_box"], axis=0).max() == 0
    assert np.ptp(clip.truth["mouth_width"][clip.truth["vowel"] < 0]) == 0
