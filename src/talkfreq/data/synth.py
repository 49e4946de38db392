"""Procedural talking-face dataset with a known answer for lip sync and for detail (our own design).

It is the built-in data of the demo and of the tests: small enough to learn in minutes on a CPU, with ground truth
that real data never has. Layout (HFTK-style)::

    <out>/synth.json                      the SynthConfig used, the clip list (written last: marks a complete set)
    <out>/id00/id00_c00.mp4               h264 + AAC, written frame by frame through talkfreq.io.video.VideoWriter
    <out>/id00/id00_c00.truth.npz         ground truth (below)

**Audio** (:func:`speech_audio`): words of 1-3 syllables separated by pauses of 150-600 ms of real silence (a
-60 dBFS noise floor). A syllable s lasts 120-300 ms on [t0_s, t1_s], has a vowel v_s in ``aeiou``, a stress
A_s in [0.7, 1] and the envelope e_s(t) = A_s * tukey((t - t0_s) / (t1_s - t0_s)) (raised-cosine attack and release
over 30% of the syllable each, 1 in between). Its sound is a jittered glottal pulse train (F0 100-220 Hz per
speaker) through three formant resonators of the vowel, times e_s(t) and a vowel loudness; 35% of syllables are
preceded by an unvoiced noise burst (a consonant, mouth still closed). The clip is scaled to -20 dBFS RMS (less if
that would clip).

**Mouth** — the exact function, sampled at the frame time t_i = i / fps, e(t) = e_s(t) inside syllable s, else 0::

    openness(t_i)    = e(t_i) * J[v]                 J = {a: 1.0, e: 0.7, i: 0.45, o: 0.75, u: 0.4}
    width_factor(t_i) = 1 + e(t_i) * (W[v] - 1)      W = {a: 1.0, e: 1.12, i: 1.2, o: 0.82, u: 0.72}

so the mouth is shut (openness 0, width 1) during pauses and consonant bursts. The rendered lip gap is
openness * 0.06 * frame_size (canonical pixels, before head scale; the lower lip takes 70% of it), the mouth width
width_factor * the identity's neutral width.

**Picture** (:mod:`talkfreq.data.synth_render`): per identity a face ellipse about 0.43 x 0.57 of the frame side
(0.5 x 0.65 with the hair) on a dark textured gradient, drawn once with its detail texture and warped per frame by a
smooth head motion (:func:`head_track`); blinks every few seconds. ``detail=0`` renders the same faces without
the texture (its low-pass). OpenCV's Haar frontal-face cascade finds the face on every frame we have measured
(96-512 px, dozens of identities). Rendering runs at several hundred frames/s at 256 px on one core; frames of a
:class:`SynthClip` can also be rendered on demand (``clip.frame(i)``) without any video file.

**Truth** ``<clip>.truth.npz`` (N frames = round(seconds * fps), L samples = round(seconds * sample_rate)):
openness (N,), width_factor (N,), mouth_width (N,) lip-corner distance in frame pixels, mouth_center (N, 2) centre
of the lip opening in frame pixels, face_box (N, 4) [x0, y0, x1, y1] bounding box of the warped face ellipse in
frame pixels, vowel (N,) index into ``aeiou`` or -1 (silence), blink (N,), head (N, 4) [tx px, ty px, rot deg,
scale], syllables (K, 4) [t0, t1, vowel, stress], audio (L,) float32 clean audio, fps, sample_rate, identity (str).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from talkfreq.data.synth_render import VOWELS, Identity, head_matrix, make_identity, render_frame
from talkfreq.errors import ConfigError, require_writable_dir
from talkfreq.io.files import atomic_write, write_json

__all__ = ["SynthConfig", "SynthClip", "Speech", "synthesize", "render_clip", "make_identity", "speech_audio",
           "mouth_track", "head_track", "check_config", "VOWELS", "JAW", "WIDTH"]

JAW = {"a": 1.0, "e": 0.7, "i": 0.45, "o": 0.75, "u": 0.4}
WIDTH = {"a": 1.0, "e": 1.12, "i": 1.2, "o": 0.82, "u": 0.72}
# open vowels are louder in real speech too; tying loudness to the jaw keeps audio energy and openness coherent
_LOUD = {"a": 1.0, "e": 0.8, "i": 0.6, "o": 0.85, "u": 0.55}
# F1, F2, F3 in Hz (adult average; scaled per speaker by formant_scale)
_FORMANTS = {"a": (750, 1200, 2600), "e": (500, 1800, 2600), "i": (300, 2300, 3000), "o": (500, 900, 2500),
             "u": (320, 800, 2400)}
_BANDWIDTHS = (90.0, 110.0, 170.0)


@dataclass
class SynthConfig:
    """Settings of the procedural dataset. ``head_motion`` scales the smooth head translation/rotation/scale (0 =
    static); ``detail`` scales every high-frequency texture (0 = the same faces without hair strands, pores,
    wrinkles, moles, lashes or lip creases)."""

    identities: int = 3
    clips_per_identity: int = 2
    seconds: float = 4.0
    frame_size: int = 256
    fps: float = 25.0
    sample_rate: int = 16000
    seed: int = 0
    head_motion: float = 1.0
    detail: float = 1.0
    blinks_per_minute: float = 15.0


def check_config(cfg: SynthConfig) -> SynthConfig:
    """Raise a one-line ConfigError for values the renderer cannot honour; return ``cfg``."""
    bad = [(cfg.identities < 1, "identities must be >= 1"),
           (cfg.clips_per_identity < 1, "clips_per_identity must be >= 1"),
           (cfg.seconds <= 0, "seconds must be > 0"),
           (cfg.frame_size < 32, "frame_size must be >= 32"),  # below that the eyes are a pixel or two
           (cfg.fps <= 0, "fps must be > 0"),
           (cfg.sample_rate < 8000, "sample_rate must be >= 8000"),  # formants up to 3 kHz need it
           (cfg.head_motion < 0, "head_motion must be >= 0"),
           (not 0 <= cfg.detail <= 1, "detail must be in [0, 1]"),
           (cfg.blinks_per_minute < 0, "blinks_per_minute must be >= 0")]
    for is_bad, msg in bad:
        if is_bad:
            raise ConfigError(f"synth: {msg}")
    return cfg


@dataclass
class Speech:
    """``audio`` (L,) float32; ``syllables`` (K, 4) float64 rows [t0 s, t1 s, vowel index, stress]."""

    audio: np.ndarray
    syllables: np.ndarray
    sample_rate: int


def syllable_envelope(syllables: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """e(t) (T,) and the vowel index (T,) (-1 outside syllables) at times ``t`` (T,) seconds.

    ``syllables`` (K, 4) must be sorted and non-overlapping (as :func:`speech_audio` makes them).
    """
    t = np.asarray(t, np.float64)
    syl = np.asarray(syllables, np.float64).reshape(-1, 4)
    if len(syl) == 0:
        return np.zeros(t.shape), np.full(t.shape, -1, np.int64)
    k = np.clip(np.searchsorted(syl[:, 0], t, side="right") - 1, 0, len(syl) - 1)
    t0, t1, v, amp = syl[k].T
    x = (t - t0) / (t1 - t0)
    inside = (x > 0) & (x < 1)
    r = 0.3  # attack and release each take 30% of the syllable
    w = np.where(x < r, 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0, 1) / r),
                 np.where(x > 1 - r, 0.5 - 0.5 * np.cos(np.pi * np.clip(1 - x, 0, 1) / r), 1.0))
    return np.where(inside, amp * w, 0.0), np.where(inside, v.astype(np.int64), -1)


def _resonator(x: np.ndarray, f: float, bw: float, sr: int) -> np.ndarray:
    r = math.exp(-math.pi * bw / sr)
    c = 2 * r * math.cos(2 * math.pi * f / sr)
    return signal.lfilter([1 - c + r * r], [1, -c, r * r], x)


def speech_audio(*, seconds: float, sample_rate: int, seed: int, f0: float = 140.0,
                 formant_scale: float = 1.0) -> Speech:
    """Speech-like audio of exactly round(seconds * sample_rate) samples; see the module docstring."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4242]))
    sr = int(sample_rate)
    n = int(round(seconds * sr))
    syl: list[tuple[float, float, int, float]] = []
    t = rng.uniform(0.15, 0.45)
    while True:
        durs = rng.uniform(0.12, 0.30, rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        while len(durs) > 1 and t + durs.sum() > seconds - 0.12:
            durs = durs[:-1]  # a shorter last word rather than a silent tail
        if t + durs.sum() > seconds - 0.12:
            break
        for dur in durs:
            syl.append((t, t + dur, int(rng.integers(0, 5)), float(rng.uniform(0.7, 1.0))))
            t += dur
        t += rng.uniform(0.15, 0.6)
    out = np.zeros(n, np.float64)
    glottal = ([1.0], [1.0, -1.9 * 0.97, 0.97 * 0.97 * 0.9])  # ~-12 dB/oct source tilt above F0
    for t0, t1, v, amp in syl:
        i0, i1 = int(t0 * sr), min(n, int(math.ceil(t1 * sr)) + 1)
        m = i1 - i0
        # pulse train: F0 glides +-6% across the syllable, each period jittered by ~1.5%, amplitude shimmer 5%
        f_start = f0 * rng.uniform(0.88, 1.12)
        glide = rng.uniform(-0.06, 0.06)
        pulses = np.zeros(m + 2)
        pos = rng.uniform(0, sr / f_start)
        while pos < m:
            k = int(pos)
            a = 1.0 + 0.05 * rng.standard_normal()
            pulses[k] += a * (1 - (pos - k))
            pulses[k + 1] += a * (pos - k)
            f = f_start * (1 + glide * pos / m)
            pos += sr / f * (1 + 0.015 * rng.standard_normal())
        x = signal.lfilter(*glottal, pulses[:m])
        for f_hz, bw in zip(_FORMANTS[VOWELS[v]], _BANDWIDTHS):
            x = _resonator(x, min(f_hz * formant_scale, 0.45 * sr), bw, sr)
        x = np.diff(x, prepend=0.0)  # lip radiation
        x /= np.sqrt(np.mean(x[m // 4: 3 * m // 4] ** 2)) + 1e-12
        env, _ = syllable_envelope(np.array([[t0, t1, v, amp]]), (i0 + np.arange(m)) / sr)
        out[i0:i1] += x * env * _LOUD[VOWELS[v]]
        if rng.random() < 0.35:  # unvoiced consonant just before the vowel, mouth still closed
            dur = rng.uniform(0.03, 0.07)
            c1 = int(t0 * sr)
            c0 = max(0, c1 - int(dur * sr))
            lo, hi = rng.choice([(4000, 7000), (2000, 4500), (1500, 7000)])  # /s/, /sh/, /f/-like
            hi = min(hi, 0.45 * sr)
            band = signal.butter(2, [min(lo, 0.5 * hi), hi], btype="bandpass", fs=sr, output="sos")
            noise = signal.sosfilt(band, rng.standard_normal(c1 - c0 + 64))[64:]
            noise /= np.sqrt(np.mean(noise ** 2)) + 1e-12
            out[c0:c1] += noise * np.hanning(c1 - c0) * 0.3
    rms = np.sqrt(np.mean(out ** 2)) + 1e-12
    out *= 0.1 / rms
    peak = np.abs(out).max()
    if peak > 0.95:
        out *= 0.95 / peak
    out += rng.standard_normal(n) * 1e-3
    return Speech(audio=out.astype(np.float32), syllables=np.asarray(syl, np.float64).reshape(-1, 4),
                  sample_rate=sr)


def mouth_track(*, speech: Speech, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """openness (N,), width_factor (N,), vowel (N,) at frame times i / fps (see the module docstring)."""
    env, vow = syllable_envelope(speech.syllables, np.arange(n_frames) / fps)
    jaw = np.array([JAW[v] for v in VOWELS] + [0.0])[vow]
    wid = np.array([WIDTH[v] for v in VOWELS] + [1.0])[vow]
    return (env * jaw).astype(np.float32), (1 + env * (wid - 1)).astype(np.float32), vow.astype(np.int64)


def head_track(*, n_frames: int, fps: float, seed: int, head_motion: float, size: int,
               blinks_per_minute: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth head motion (N, 4) [tx px, ty px, rot deg, scale] and blink closure (N,) in [0, 1].

    Motion: a mean-reverting random walk (Ornstein-Uhlenbeck, time constant 1.5 s) low-passed twice (0.25 s), per
    parameter scaled to unit RMS, times (1.2% of the frame side, 0.8%, 2.5 degrees, 2.5%) * head_motion and softly
    limited to 2.5x that, so the face never leaves the frame.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5151]))
    n = int(n_frames)
    th = 1.0 / (1.5 * fps)
    noise = rng.standard_normal((n, 4)) * math.sqrt(2 * th)
    x = signal.lfilter([1.0], [1.0, th - 1.0], noise, axis=0, zi=(1 - th) * rng.standard_normal((1, 4)))[0]
    k = 1.0 / (0.25 * fps)
    for _ in range(2):
        x = signal.lfilter([k], [1, k - 1], x, axis=0, zi=(1 - k) * x[:1])[0]
    x = (x - x.mean(0)) / (x.std(0) + 1e-9) if n > 1 else x * 0
    amp = np.array([0.012 * size, 0.008 * size, 2.5, 0.025]) * head_motion
    x = 2.5 * np.tanh(x / 2.5) * amp
    x[:, 3] = np.exp(x[:, 3])
    blink = np.zeros(n, np.float32)
    if blinks_per_minute > 0:
        t = rng.uniform(0.3, 60 / blinks_per_minute)
        times = np.arange(n) / fps
        while t < n / fps:
            ph = (times - t) / 0.16  # 160 ms blink: quick close, slower open
            blink = np.maximum(blink, np.where((ph > 0) & (ph < 1), np.sin(np.pi * np.clip(ph, 0, 1) ** 0.7), 0.0))
            t += rng.uniform(0.5, 1.5) * 60 / blinks_per_minute
    return x.astype(np.float64), blink


@dataclass
class SynthClip:
    """One clip: ``audio`` (L,) float32, ``truth`` (arrays of the sidecar), frames rendered on demand."""

    clip_id: str
    identity: Identity
    audio: np.ndarray
    truth: dict = field(repr=False)

    def __len__(self) -> int:
        return len(self.truth["openness"])

    def frame(self, i: int, scratch: np.ndarray | None = None) -> np.ndarray:
        """Frame ``i``: (S, S, 3) uint8 RGB (random access; nothing else is kept)."""
        tx, ty, rot, sc = self.truth["head"][i]
        m = head_matrix(self.identity.geom, tx=tx, ty=ty, rot=rot, scale=sc)
        return render_frame(self.identity, openness=float(self.truth["openness"][i]),
                            width=float(self.truth["width_factor"][i]), blink=float(self.truth["blink"][i]),
                            matrix=m, scratch=scratch)

    def frames(self) -> Iterator[np.ndarray]:
        """Frames in order, one at a time (memory does not grow with the clip length)."""
        scratch = np.empty_like(self.identity.face)
        for i in range(len(self)):
            yield self.frame(i, scratch)


def render_clip(*, cfg: SynthConfig, identity: Identity, clip: int) -> SynthClip:
    """Plan clip ``clip`` of ``identity``: audio, mouth and head tracks and truth; frames come from the result."""
    check_config(cfg)
    g = identity.geom
    n = int(round(cfg.seconds * cfg.fps))
    clip_seed = int(np.random.SeedSequence([int(cfg.seed), 31337, identity.index, int(clip)]).generate_state(1)[0])
    speech = speech_audio(seconds=cfg.seconds, sample_rate=cfg.sample_rate, seed=clip_seed, f0=identity.f0,
                          formant_scale=identity.formant_scale)
    opn, wid, vow = mouth_track(speech=speech, n_frames=n, fps=cfg.fps)
    head, blink = head_track(n_frames=n, fps=cfg.fps, seed=clip_seed, head_motion=cfg.head_motion,
                             size=identity.size, blinks_per_minute=cfg.blinks_per_minute)
    ang = np.radians(head[:, 2])
    sc = head[:, 3]
    center = np.stack([g.cx + head[:, 0], g.cy + head[:, 1]], 1)
    hx = sc * np.sqrt((g.a * np.cos(ang)) ** 2 + (g.b * np.sin(ang)) ** 2)
    hy = sc * np.sqrt((g.a * np.sin(ang)) ** 2 + (g.b * np.cos(ang)) ** 2)
    # centre of the lip opening in canonical px (corner line + 0.2 gap: upper lip rises 30%, lower drops 70%)
    mouth_y = g.mouth_y - 0.15 * g.lip_up + 0.2 * opn * g.gap_max
    rel = np.stack([np.zeros(n), mouth_y - g.cy], 1)
    c, s = np.cos(ang), np.sin(ang)
    # cv2.getRotationMatrix2D rotates counter-clockwise on screen for positive angles: x' = c x + s y, y' = -s x + c y
    mouth_c = center + sc[:, None] * np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], 1)
    truth = dict(
        openness=opn, width_factor=wid, vowel=vow, blink=blink, head=head,
        mouth_width=(2 * g.mouth_hw * wid * sc).astype(np.float32), mouth_center=mouth_c.astype(np.float32),
        face_box=np.stack([center[:, 0] - hx, center[:, 1] - hy, center[:, 0] + hx, center[:, 1] + hy],
                          1).astype(np.float32),
        syllables=speech.syllables, audio=speech.audio, fps=np.float64(cfg.fps),
        sample_rate=np.int64(cfg.sample_rate), identity=np.str_(identity.name), vowels=np.str_(VOWELS))
    return SynthClip(clip_id=f"{identity.name}_c{int(clip):02d}", identity=identity, audio=speech.audio, truth=truth)


def synthesize(*, cfg: SynthConfig, out: Path, progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write the whole dataset under ``out`` (see the module docstring); returns the mp4 paths in order.

    Frames are rendered and handed to the encoder one at a time. ``progress(done_frames, total_frames)``.
    """
    from talkfreq.io.video import VideoWriter

    check_config(cfg)
    out = require_writable_dir(out)
    n = int(round(cfg.seconds * cfg.fps))
    total = n * cfg.identities * cfg.clips_per_identity
    done = 0
    paths: list[Path] = []
    for i in range(cfg.identities):
        ident = make_identity(index=i, size=cfg.frame_size, seed=cfg.seed, detail=cfg.detail)
        folder = require_writable_dir(out / ident.name)
        for c in range(cfg.clips_per_identity):
            clip = render_clip(cfg=cfg, identity=ident, clip=c)
            path = folder / f"{clip.clip_id}.mp4"
            with VideoWriter(path, fps=cfg.fps, width=cfg.frame_size, height=cfg.frame_size, audio=clip.audio,
                             sample_rate=cfg.sample_rate) as w:
                for frame in clip.frames():
                    w.write(frame)
                    done += 1
                    if progress is not None:
                        progress(done, total)
            atomic_write(folder / f"{clip.clip_id}.truth.npz", lambda fh, t=clip.truth: np.savez_compressed(fh, **t))
            paths.append(path)
    meta = {"config": asdict(cfg), "vowels": VOWELS, "clips": [str(p.relative_to(out)) for p in paths]}
    write_json(out / "synth.json", meta)
    return paths


def run_synth(cfg: SynthConfig, *, out: Path, quiet: bool = False) -> list[Path]:
    """:func:`synthesize` into ``out`` with a progress bar (none when ``quiet``)."""
    from rich.progress import Progress

    with Progress(disable=quiet) as progress:
        task = progress.add_task("synth frames", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return synthesize(cfg=cfg, out=out, progress=on_progress)
