"""Mouth opening per frame on face crops, and the silent stretches of a clip's audio.

No landmarks: the measure reads the two image cues that any frontal face crop shows,

1. **where the mouth is** (:func:`mouth_rows`): the darkest row of a narrow central band in the lower face - the lip
   line of a closed mouth, the cavity of an open one - searched per frame in ``search`` (fractions of the crop side;
   talkfreq's crops put the mouth near 0.6), so the box follows nods and the face detector's jitter;
2. **how open it is** (:func:`mouth_opening`): the fraction of dark pixels in a box around that row, dark meaning a
   maximum RGB channel below ``dark_fraction`` of the box's ``percentile``-th one (the skin around the lips). The
   maximum channel, not the luma, because red lips have a low luma but a high red channel: the lips do not count,
   the cavity and the gaps beside the teeth do. The threshold is relative to each frame's own skin, so one setting
   serves every skin tone and lighting, and openings are comparable between videos cropped with the same boxes
   (``evaluate`` crops every candidate with the reference's).

How well it tracks (256 px crops, defaults below, ``benchmarks/mouth_measure.py``): on six `talkfreq synth` clips
Pearson r with the ground-truth openness 0.95 (per clip 0.90-0.98); on hand-labelled frames of three real clips
(lips apart with a dark gap vs lips together) every open frame scores above every closed one on KatieHill and the
60 s edtalk clip (AUC 1.0) and AUC 0.94 on May. A closed mouth reads 0.00-0.04, a wide-open one 0.1-0.2. On the
synth clips the silent stretches read 0.001-0.005 (shut); on those three real clips the mean opening in silent
stretches is not lower than in voiced ones (the speakers pause smiling or with the lips apart), but the opening
changes more from frame to frame while they speak: compare a candidate's resting opening with the real speaker's,
not with zero (:func:`silent_opening_ratio`).

Limits: teeth are bright, so an open mouth that shows teeth and little cavity reads less open than its lip gap,
and a smile with the teeth together reads nearly closed; a blurred mouth loses its dark pixels and reads closed
(which is what a viewer sees too, but it is not a lip-gap length); profile views, hands or a microphone in front of
the mouth, or a beard darker than the cavity break it; the box is a fixed fraction of the crop, so a crop much
looser or tighter than talkfreq's (face.padding) needs other ``search`` / box settings. Smaller crops cost a little:
synth r 0.94 / 0.93 / 0.91 and hand-label AUC 0.89-1.00 / 0.92-1.00 / 0.83-1.00 at 128 / 96 / 64 px (downscaled
256 px crops). It fails where the lip gap is only a pixel or two wide: on the 64 px crops of 128 px synth frames
that experiments/synthetic_sync.py judges, r is 0.25 and 0.0 on two clips, where the luma darkness in a box around
the known mouth centre (that experiment's own measure, which counts the lips) reaches 0.86 and 0.82.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class MouthConfig:
    """Fractions of the crop side (``search``, ``band_half_width``, ``half_width``, ``half_height``) and the
    darkness threshold of :func:`mouth_opening`. Chosen on the synth set and three real clips (module docstring)."""

    search: tuple[float, float] = (0.52, 0.72)  # rows searched for the mouth: below the nose, above the chin
    band_half_width: float = 0.06  # the central columns whose mean luminance finds the mouth row
    half_width: float = 0.12  # the measured box around (0.5, mouth row): the mouth's width, not the cheeks'
    half_height: float = 0.08
    dark_fraction: float = 0.55  # dark: max channel below this fraction of ...
    percentile: float = 90.0  # ... the box's 90th percentile of the max channel (the skin around the lips)


@dataclass(frozen=True)
class SilenceConfig:
    """Which frames of a clip are silent (:func:`silent_frames`). Levels are dB of the per-frame RMS relative to
    the clip's speech level (the 95th percentile of the frame levels)."""

    below_db: float = 35.0  # silent when this far below the speech level ...
    floor_margin_db: float = 6.0  # ... or within this much of the noise floor (5th percentile of the levels) ...
    min_below_db: float = 20.0  # ... but never within this much of the speech level (a clip without pauses)
    edge_frames: int = 2  # frames this close to a voiced one are not silent: the lips move before and after sound


SILENCE_SAMPLE_RATE = 16000  # the audio rate evaluate judges silence at (any rate works)
DEFAULT_MOUTH = MouthConfig()
DEFAULT_SILENCE = SilenceConfig()
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601


def _span(centre: float, half: float, size: int) -> slice:
    return slice(max(0, int(round((centre - half) * size))), min(size, int(round((centre + half) * size))))


def mouth_rows(crops: np.ndarray, *, cfg: MouthConfig = DEFAULT_MOUTH) -> np.ndarray:
    """(N, S, S, 3) uint8 face crops -> (N,) the mouth's row per frame, as a fraction of the crop side: the
    darkest row (mean luma over the central ``band_half_width`` columns) inside ``cfg.search``."""
    crops = np.asarray(crops)
    s = crops.shape[1]
    y0, y1 = int(cfg.search[0] * s), max(int(cfg.search[0] * s) + 1, int(cfg.search[1] * s))
    band = crops[:, y0:y1, _span(0.5, cfg.band_half_width, s)].astype(np.float32) @ _LUMA
    return (y0 + np.argmin(band.mean(axis=2), axis=1) + 0.5) / s


def mouth_opening(crops: np.ndarray, *, rows: np.ndarray | None = None, cols: np.ndarray | None = None,
                  cfg: MouthConfig = DEFAULT_MOUTH) -> np.ndarray:
    """(N,) mouth opening in [0, 1] of (N, S, S, 3) uint8 face crops: the dark fraction of the box around each
    frame's mouth (module docstring). ``rows`` / ``cols`` (N,): the box centres as fractions of the crop side
    (default :func:`mouth_rows` of ``crops`` and the crop's centre column); pass the reference's rows to measure
    candidates in the same boxes."""
    crops = np.asarray(crops)
    n, s = crops.shape[:2]
    rows = mouth_rows(crops, cfg=cfg) if rows is None else np.asarray(rows, np.float64)
    cols = np.full(n, 0.5) if cols is None else np.asarray(cols, np.float64)
    out = np.zeros(n)
    for i in range(n):
        v = crops[i, _span(rows[i], cfg.half_height, s), _span(cols[i], cfg.half_width, s)].max(axis=-1)
        if v.size:
            out[i] = float((v < cfg.dark_fraction * np.percentile(v, cfg.percentile)).mean())
    return out


def frame_levels(wav: np.ndarray, *, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """(N,) RMS level in dBFS of (L,) mono float ``wav`` in a one-frame window centred on each frame's time i / fps
    (-inf past the end of the audio or on digital silence)."""
    wav = np.asarray(wav, np.float64).reshape(-1)
    half = 0.5 * sample_rate / fps
    out = np.full(n_frames, -np.inf)
    for i in range(n_frames):
        c = i * sample_rate / fps
        seg = wav[max(0, int(round(c - half))):max(0, int(round(c + half)))]
        if seg.size:
            ms = float(np.mean(seg * seg))
            out[i] = 10.0 * np.log10(ms) if ms > 0 else -np.inf
    return out


def silent_frames(wav: np.ndarray, *, sample_rate: int, fps: float, n_frames: int,
                  cfg: SilenceConfig = DEFAULT_SILENCE) -> np.ndarray:
    """(N,) bool: frames inside a silent stretch of (L,) mono ``wav``.

    A frame is quiet when its level (:func:`frame_levels`) is below ``speech - below_db`` or within
    ``floor_margin_db`` of the noise floor, and always more than ``min_below_db`` below ``speech`` (speech: the 95th
    percentile of the levels, floor: the 5th). A fixed 35 dB alone finds no pause in a clip with a noise floor only
    27 dB below its speech (the KatieHill sample); the floor rule finds them, and the ``min_below_db`` cap keeps a
    clip that never pauses from calling its quietest syllables silent. Quiet frames within ``edge_frames`` of a
    loud one are dropped (the clip's ends do not count as loud), so a stretch inside the clip must last
    ``2 * edge_frames + 1`` frames to count."""
    level = frame_levels(wav, sample_rate=sample_rate, fps=fps, n_frames=n_frames)
    finite = level[np.isfinite(level)]
    if not finite.size:
        return np.zeros(n_frames, bool)
    speech, floor = np.percentile(finite, 95), np.percentile(finite, 5)
    threshold = min(speech - cfg.min_below_db, max(speech - cfg.below_db, floor + cfg.floor_margin_db))
    quiet = level < threshold
    silent = quiet.copy()
    for k in range(1, cfg.edge_frames + 1):
        silent[k:] &= quiet[:-k]
        silent[:-k] &= quiet[k:]
    return silent


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two (N,) series; 0 when either is constant (a mouth that never moves follows nothing)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# the shifts (frames) the opening's timing is searched over: 0.2 s either way at 25 fps
OPENING_MAX_LAG = 5


def lagged_pearson(a: np.ndarray, b: np.ndarray, *, max_lag: int = OPENING_MAX_LAG
                   ) -> tuple[Optional[int], float]:
    """(lag, r): the shift of (N,) ``a`` against (N,) ``b`` in [-max_lag, max_lag] frames with the highest Pearson r
    over the overlapping frames, and that r. ``lag > 0``: ``a`` trails, ``a[t]`` follows ``b[t - lag]``. Ties go to
    the smaller shift. (None, 0.0) when the series are shorter than ``4 * max_lag`` frames or nothing correlates.

    Ours: with ``b`` the real video's opening and ``a`` a self-reconstruction's, this is a lip-sync timing judge that
    needs no SyncNet (the real footage is the judge): a dub that moves the mouth k frames late peaks at lag k.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(a), len(b))
    if n < 4 * max_lag:
        return None, 0.0
    best: tuple[Optional[int], float] = (None, 0.0)
    for lag in sorted(range(-max_lag, max_lag + 1), key=abs):
        r = pearson(a[lag:n], b[: n - lag]) if lag >= 0 else pearson(a[: n + lag], b[-lag:n])
        if r > best[1] + 1e-12:
            best = (lag, r)
    return best


def silent_opening_ratio(opening: np.ndarray, silent: np.ndarray, *, ref_opening: np.ndarray,
                         ref_silent: np.ndarray) -> float:
    """Mean of (N,) ``opening`` over its (N,) bool ``silent`` frames / the same of the reference (M frames): 1 =
    the mouth rests as open as the real speaker's in pauses. NaN when either has no silent frame or the reference's
    resting opening is 0 (nothing to compare with)."""
    opening, ref_opening = np.asarray(opening, np.float64), np.asarray(ref_opening, np.float64)
    silent, ref_silent = np.asarray(silent, bool), np.asarray(ref_silent, bool)
    if not silent.any() or not ref_silent.any():
        return float("nan")
    ref = float(ref_opening[ref_silent].mean())
    return float(opening[silent].mean()) / ref if ref > 0 else float("nan")
