"""The evaluation's columns, one video's streaming scorer, and the best-per-column rule.

Every video - the reference included ("ground truth is always a row, scored by the same tool") - is scored on face
crops cut with the reference's boxes (:mod:`talkfreq.report.common`), frame by frame against the reference's crop of
the same frame. Columns and what "best" means (:data:`COLUMNS`):

* ``max`` / ``min``: higher / lower is better (PSNR, SSIM, LPIPS, LSE, spectrum gaps);
* ``ref``: closest to the real video's own value is best. Used for the no-reference statistics - sharpness
  (Laplacian variance, CPBD), the high-frequency energy ratios and the flicker ratio (the real video's is 1) -
  because more is not better there: noise, ringing or over-sharpening raise them above the real video's, and a
  refiner that invents detail must not win by it;
* ``None``: informational (the audio-video offset).

The reference row is never "best": it is the target, and it trivially wins every full-reference column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from talkfreq.metrics import (
    FlickerAccumulator,
    SpectrumAccumulator,
    as_frames,
    cpbd,
    flicker_ratio,
    lagged_pearson,
    laplacian_variance,
    lpips_score,
    mouth_opening,
    mouth_rows,
    pearson,
    psnr,
    region_psnr,
    region_ssim,
    seam_gradient,
    silent_frames,
    silent_opening_ratio,
    spectrum_gap,
    ssim,
)
from talkfreq.metrics.fid import FeatureStats, fid_from_stats, inception_features
from talkfreq.metrics.mouth import OPENING_MAX_LAG
from talkfreq.models.inception_fid import FID_FEATURES

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    direction: Optional[str]  # "max" | "min" | "ref" | None (see the module docstring)
    fmt: str
    help: str


COLUMNS: tuple[Column, ...] = (
    Column("psnr", "PSNR dB", "max", "{:.2f}", "face crop vs the real crop, per frame (capped at psnr_cap_db), mean"),
    Column("ssim", "SSIM", "max", "{:.4f}",
           "face crop vs the real crop, as scikit-image / Wang et al. (Gaussian sigma 1.5, interior), mean"),
    Column("mouth_psnr", "mouth PSNR dB", "max", "{:.2f}", "PSNR inside the mouth region of the crop"),
    Column("mouth_ssim", "mouth SSIM", "max", "{:.4f}", "SSIM inside the mouth region of the crop"),
    Column("lpips", "LPIPS", "min", "{:.4f}", "LPIPS-VGG vs the real crop (needs VGG16 weights)"),
    Column("fid", "FID", "min", "{:.2f}", "pytorch-fid Inception: this video's crops vs the real ones (needs its "
           "weights; per video, so biased high below 2048 frames)"),
    Column("lse_d", "LSE-D", "min", "{:.3f}", "SyncNet distance at the best offset (needs a SyncNet)"),
    Column("lse_c", "LSE-C", "max", "{:.3f}", "SyncNet confidence: median - min distance over offsets"),
    Column("lse_offset", "AV offset", None, "{:+.0f}", "frames the picture lags the sound (0 = in sync)"),
    Column("lse_offset_support", "offset support", None, "{:.2f}",
           "share of block-bootstrap resamples of the sync windows that find the same AV offset (1 = sure)"),
    Column("laplacian_var", "Laplacian var", "ref", "{:.1f}", "sharpness: variance of the Laplacian of the grey crop"),
    Column("cpbd", "CPBD", "ref", "{:.3f}", "sharpness: cumulative probability of blur detection"),
    Column("hf_ratio", "HF ratio", "ref", "{:.4f}", "face: AC energy beyond the high-frequency radius / total"),
    Column("mouth_hf_ratio", "mouth HF ratio", "ref", "{:.4f}", "the same inside the mouth region"),
    Column("seam", "seam", "ref", "{:.3f}",
           "gradient across the dubbing paste boundary (the lower ellipse) / the real video's (1 = no visible box)"),
    Column("spectrum_gap", "spectrum gap", "min", "{:.4f}", "face: mean |log-amplitude spectrum - the real one's|"),
    Column("mouth_spectrum_gap", "mouth spectrum gap", "min", "{:.4f}", "the same inside the mouth region"),
    Column("flicker_ratio", "flicker ratio", "ref", "{:.3f}",
           "high-pass temporal energy / the real video's (1 = as steady)"),
    Column("mouth_open", "mouth open", "ref", "{:.4f}",
           "mean mouth opening: dark fraction of the box around the reference's mouth row (metrics.mouth)"),
    Column("mouth_open_r", "mouth open r", "max", "{:.3f}",
           "Pearson r over frames of the mouth opening with the real video's (the real row: 1 by definition)"),
    Column("mouth_open_lag", "mouth open lag", "ref", "{:+.0f}",
           f"frames by which the mouth opening trails the real video's (best Pearson r within +-{OPENING_MAX_LAG} "
           f"frames; 0 = in time)"),
    Column("mouth_open_silent", "silent mouth open", "ref", "{:.3f}",
           "mean opening in the silent stretches of the video's audio / the real video's (1 = rests as the real)"),
)
ARROWS = {"max": "\u2191", "min": "\u2193", "ref": "\u2248", None: ""}  # header marks: up, down, approx
UNAVAILABLE = "unavailable"
PER_FRAME = ("psnr", "ssim", "mouth_psnr", "mouth_ssim", "lpips", "laplacian_var", "cpbd", "mouth_open", "seam")


@dataclass
class Row:
    """One video's scores. ``values[key]`` is a float, or None where the metric is unavailable."""

    name: str
    role: str  # "reference" | "candidate"
    path: str
    values: dict[str, Optional[float]] = field(default_factory=dict)

    def formatted(self, key: str) -> str:
        return format_value(key, self.values.get(key))


def format_value(key: str, value: Optional[float]) -> str:
    if value is None:
        return UNAVAILABLE
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return next(c.fmt for c in COLUMNS if c.key == key).format(value)


class VideoScorer:
    """One video's metrics, accumulated batch by batch against the reference's crops of the same frames.

    Holds two spectrum accumulators per region, the flicker tail and a few floats per frame: bounded memory
    whatever the video's length.

    Args:
        name: row name.
        size: side S of the face crops.
        mouth: mouth pixel box (x0, y0, x1, y1) inside the S x S crop.
        psnr_cap_db: per-frame PSNR cap (identical frames give inf; the cap keeps means finite).
        lpips: an :class:`~talkfreq.models.lpips.LPIPS` model, or None (the column is "unavailable").
        inception: a :class:`~talkfreq.models.inception_fid.FIDInceptionV3`, or None (FID "unavailable"); its
            feature statistics are kept in ``fid_stats`` (pool them over videos for a test-set FID).
    """

    def __init__(self, name: str, *, size: int, mouth: Box, psnr_cap_db: float, lpips=None, inception=None):
        self.name, self.size, self.mouth = name, size, mouth
        self.psnr_cap_db = psnr_cap_db
        self.lpips = lpips
        self.inception = inception
        self.fid_stats = FeatureStats(FID_FEATURES) if inception is not None else None
        self.face_spec = SpectrumAccumulator()
        self.mouth_spec = SpectrumAccumulator(region=mouth)
        self.flicker = FlickerAccumulator()
        self.per_frame: dict[str, list[float]] = {k: [] for k in PER_FRAME}
        self.index: list[int] = []  # timeline index of each scored frame
        self._last: Optional[int] = None

    def add(self, crops: np.ndarray, ref: np.ndarray, *, index: np.ndarray) -> None:
        """Score (B, S, S, 3) uint8 ``crops`` against the reference's (B, S, S, 3) crops of the same frames;
        ``index`` (B,) are their timeline indices (increasing; a jump means frames without a face were skipped)."""
        if not len(crops):
            return
        x, r = as_frames(crops), as_frames(ref)
        pf = self.per_frame
        pf["psnr"].extend(psnr(x, r, max_db=self.psnr_cap_db, reduction="none"))
        pf["ssim"].extend(ssim(x, r, reduction="none"))
        pf["mouth_psnr"].extend(region_psnr(x, r, box=self.mouth, max_db=self.psnr_cap_db, reduction="none"))
        pf["mouth_ssim"].extend(region_ssim(x, r, box=self.mouth, reduction="none"))
        if self.lpips is not None:
            pf["lpips"].extend(lpips_score(x, r, lpips=self.lpips, reduction="none"))
        if self.fid_stats is not None:
            self.fid_stats.add(inception_features(self.inception, x))
        pf["laplacian_var"].extend(laplacian_variance(x, reduction="none"))
        pf["cpbd"].extend(cpbd(x, reduction="none"))
        pf["mouth_open"].extend(mouth_opening(crops, rows=mouth_rows(ref)))  # the real mouth's box for every video
        pf["seam"].extend(seam_gradient(crops))
        self.face_spec.add(x)
        self.mouth_spec.add(x)
        # the flicker's second differences must not span frames that were skipped (no face there)
        runs = np.split(np.arange(len(index)), np.flatnonzero(np.diff(index) != 1) + 1)
        for run in runs:
            if self._last is None or index[run[0]] != self._last + 1:
                self.flicker.break_sequence()
            self.flicker.add(x[run])
            self._last = int(index[run[-1]])
        self.index.extend(int(i) for i in index)

    @property
    def frames(self) -> int:
        return len(self.index)

    def values(self, reference: VideoScorer, *, hf_radius: float) -> dict[str, Optional[float]]:
        """The row's numbers (LSE excluded: the caller adds them). ``reference`` is the real video's scorer."""
        if not self.frames:
            raise ValueError(f"{self.name}: no frame was scored")
        mean = {k: float(np.mean(v)) if v else None for k, v in self.per_frame.items()}
        return {
            **mean,
            "hf_ratio": self.face_spec.high_frequency_ratio(radius=hf_radius),
            "mouth_hf_ratio": self.mouth_spec.high_frequency_ratio(radius=hf_radius),
            "spectrum_gap": spectrum_gap(self.face_spec.mean_log_spectrum(), reference.face_spec.mean_log_spectrum()),
            "mouth_spectrum_gap": spectrum_gap(self.mouth_spec.mean_log_spectrum(),
                                               reference.mouth_spec.mean_log_spectrum()),
            "flicker_ratio": _flicker_ratio(self.flicker.value, reference.flicker.value),
            "fid": _fid(reference.fid_stats, self.fid_stats),
            "mouth_open_r": 1.0 if self is reference else pearson(self.per_frame["mouth_open"],
                                                                   reference.per_frame["mouth_open"]),
            "mouth_open_lag": 0.0 if self is reference else _lag(self.per_frame["mouth_open"],
                                                                  reference.per_frame["mouth_open"]),
            "mouth_open_silent": None,  # needs the audio: :meth:`silent_opening`
            "seam": _ratio(mean["seam"], reference.per_frame["seam"]),
        }

    def silent_opening(self, reference: VideoScorer, *, silent: np.ndarray, ref_silent: np.ndarray
                       ) -> Optional[float]:
        """Mean mouth opening over this video's silent frames / the reference's over its own; ``silent`` and
        ``ref_silent`` are (N,) bool masks over the timeline. None when either has no silent scored frame or the
        real mouth rests fully shut (0: no ratio)."""
        v = silent_opening_ratio(self.per_frame["mouth_open"], silent[self.index],
                                 ref_opening=reference.per_frame["mouth_open"], ref_silent=ref_silent[reference.index])
        return None if math.isnan(v) else v


def silence_masks(paths: dict[str, Path], *, reference: str, n_frames: int, fps: float
                  ) -> dict[str, np.ndarray]:
    """{name: (n_frames,) bool silent frames of its own audio (:func:`talkfreq.metrics.mouth.silent_frames`; the
    reference's audio for a video without a track)}; empty when the reference has no audio track."""
    from talkfreq.io import load_video_audio, probe
    from talkfreq.metrics.mouth import SILENCE_SAMPLE_RATE as rate

    masks = {n: silent_frames(load_video_audio(p, sample_rate=rate), sample_rate=rate, fps=fps, n_frames=n_frames)
             for n, p in paths.items() if probe(p).has_audio}
    if reference not in masks:
        return {}
    return {n: masks.get(n, masks[reference]) for n in paths}


def _fid(real: Optional[FeatureStats], fake: Optional[FeatureStats]) -> Optional[float]:
    if real is None or fake is None:
        return None
    if real.n < 2 or fake.n < 2:
        return math.nan  # a covariance needs two frames
    return fid_from_stats(real, fake)


def _ratio(value: Optional[float], ref_values: list[float]) -> Optional[float]:
    """``value`` / the mean of the reference's ``ref_values``; None when either is missing or the latter is 0."""
    ref = float(np.mean(ref_values)) if ref_values else 0.0
    return None if value is None or ref <= 0 else value / ref


def _lag(opening: list[float], ref_opening: list[float]) -> Optional[float]:
    """:func:`~talkfreq.metrics.mouth.lagged_pearson` of a candidate's opening against the real one's, as a float
    column; None for a clip too short to judge or a mouth that follows nothing at any shift."""
    lag, _ = lagged_pearson(np.asarray(opening), np.asarray(ref_opening))
    return None if lag is None else float(lag)


def lag_edge_note(rows: list[Row], *, max_lag: int = OPENING_MAX_LAG) -> Optional[str]:
    """The report's line for candidates whose ``mouth_open_lag`` is the search's edge (+-``max_lag``), else None.
    Ours: there the correlation still rises at the last shift tried, so it has no peak inside the search, and "5
    frames early" would be a misreading of "no clear timing" (seen on a 40-frame held-out clip)."""
    edge = [r.name for r in rows if r.role == "candidate" and r.values.get("mouth_open_lag") is not None
            and abs(r.values["mouth_open_lag"]) >= max_lag]
    if not edge:
        return None
    return (f"mouth open lag: {', '.join(edge)} at the edge of the +-{max_lag}-frame search, where the correlation "
            f"has no peak inside it: no clear timing, not a measured shift of {max_lag} frames")


def _flicker_ratio(value: float, ref: float) -> float:
    if math.isnan(value) or math.isnan(ref):
        return math.nan  # fewer than 3 consecutive frames
    return flicker_ratio(value, ref)


def best_rows(rows: list[Row], columns: tuple[Column, ...] = COLUMNS, *, rtol: float = 1e-9) -> dict[str, list[str]]:
    """{column key: names of the best candidate rows} (ties all win), by each column's direction.

    The reference row is excluded; so are unavailable and NaN values. ``ref`` columns need the reference's value.
    """
    reference = next((r for r in rows if r.role == "reference"), None)
    out: dict[str, list[str]] = {}
    for col in columns:
        if col.direction is None:
            continue
        cands = [(r.name, r.values.get(col.key)) for r in rows if r.role != "reference"]
        cands = [(n, v) for n, v in cands if v is not None and not math.isnan(v)]
        if col.direction == "ref":
            target = reference.values.get(col.key) if reference else None
            if target is None or not math.isfinite(target):
                continue
            cands = [(n, abs(v - target)) for n, v in cands]
        elif col.direction == "max":
            cands = [(n, -v) for n, v in cands]
        if not cands:
            continue
        best = min(v for _, v in cands)
        out[col.key] = [n for n, v in cands if v == best or (math.isfinite(best) and
                                                             math.isclose(v, best, rel_tol=rtol, abs_tol=1e-12))]
    return out
