"""``talkfreq diagnose-refiner``: the NRoUB diagnostic of a trained refiner on clean frames of a prepared dataset.

Takes ``frames`` consecutive valid face crops of one clip (consecutive, so the clean video's temporal code-flip rate
is meaningful), degrades them with each kind of :mod:`talkfreq.data.degradations` at a fixed strength
(:data:`~talkfreq.data.degradations.FIXED_STRENGTHS`), and runs :func:`talkfreq.metrics.robustness.robustness_report`
for each: mean margin, mean shift, code-flip rate, fraction of positions inside the bound, and the consistency check
``flips_inside_bound`` (must be 0). Writes ``nroub.json`` (all scalar numbers) and ``nroub_histograms.png`` (margin
and shift distributions per degradation) and returns the result for the CLI's table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from talkfreq.data.degradations import FIXED_STRENGTHS, apply_kind, describe
from talkfreq.data.prepared import PreparedDataset
from talkfreq.data.refiner_data import resize_uint8, uint8_to_tensor
from talkfreq.errors import TalkfreqError, require_writable_dir
from talkfreq.metrics.robustness import RobustnessReport, robustness_report

JSON_FILE = "nroub.json"
PNG_FILE = "nroub_histograms.png"


@dataclass
class Diagnosis:
    model: str
    data: str
    clip: str
    first_frame: int
    frames: int
    image_size: int
    temporal_flip_rate: float  # between consecutive clean frames
    strengths: dict[str, float]
    reports: dict[str, RobustnessReport] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k != "reports"}
        d["degradations"] = {k: {"strength": self.strengths[k], **r.as_dict()} for k, r in self.reports.items()}
        return d


def clean_clip_frames(root: str | Path, *, image_size: int, frames: int, clip: Optional[str] = None
                      ) -> tuple[np.ndarray, str, int]:
    """(T, S, S, 3) uint8 consecutive valid crops at ``image_size``, the clip id and the first frame index.

    The clip is ``clip`` or the first of the dataset; the frames are the first ``frames`` of its longest run of
    valid (face-found or filled) frames.
    """
    ds = PreparedDataset(root)
    ids = ds.ids()
    if not ids:
        raise TalkfreqError(f"{ds.root}: the prepared dataset has no finished clips")
    cid = clip or ids[0]
    if cid not in ids:
        raise TalkfreqError(f"{ds.root}: no clip {cid!r} (clips: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''})")
    c = ds.clip(cid)
    valid = np.asarray(c.valid, bool)
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        raise TalkfreqError(f"{c.path}: no valid face frame")
    best = int(np.argmax(ends - starts))
    lo, hi = int(starts[best]), int(min(ends[best], starts[best] + frames))
    if hi - lo < 2:
        raise TalkfreqError(f"{c.path}: fewer than 2 consecutive valid frames")
    crops = np.stack([resize_uint8(np.asarray(c.frames[i]), image_size) for i in range(lo, hi)])
    return crops, cid, lo


def diagnose(model, crops: np.ndarray, *, strengths: dict[str, float] | None = None, seed: int = 0,
             batch_size: int = 16) -> tuple[dict[str, RobustnessReport], float]:
    """NRoUB reports of ``model`` for (T, S, S, 3) uint8 clean ``crops`` under each degradation ->
    ({kind: report}, clean temporal code-flip rate)."""
    strengths = dict(FIXED_STRENGTHS if strengths is None else strengths)
    clean = uint8_to_tensor(crops).to(next(model.parameters()).device)
    reports: dict[str, RobustnessReport] = {}
    temporal = math.nan
    for k, (kind, s) in enumerate(strengths.items()):
        rng = np.random.default_rng([seed, k])
        degraded = uint8_to_tensor(np.stack([apply_kind(c, kind=kind, strength=s, rng=rng) for c in crops]))
        rep = robustness_report(model, clean, degraded.to(clean.device), consecutive=True, batch_size=batch_size)
        reports[kind] = rep
        temporal = float(rep.temporal_flip_rate)  # the same for every kind: it is the clean clip's
    return reports, temporal


def histogram_image(diag: Diagnosis) -> np.ndarray:
    """(H, W, 3) uint8: one panel per degradation, histograms of the margins and the shifts on shared bins."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    kinds = list(diag.reports)
    cols = min(3, len(kinds))
    rows = math.ceil(len(kinds) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=90)
    FigureCanvasAgg(fig)
    for n, kind in enumerate(kinds):
        r = diag.reports[kind]
        m, s = r.margins.numpy(), r.shifts.numpy()
        hi = float(np.quantile(np.concatenate([m, s]), 0.995)) or 1.0
        bins = np.linspace(0.0, hi, 41)
        ax = fig.add_subplot(rows, cols, n + 1)
        ax.hist(np.clip(m, 0, hi), bins=bins, alpha=0.6, label="margin (clean)", color="tab:blue")
        ax.hist(np.clip(s, 0, hi), bins=bins, alpha=0.6, label="shift", color="tab:orange")
        label = describe(kind, diag.strengths[kind])
        ax.set_title(f"{kind} {label}: flips {r.flip_rate:.2f}, inside {r.inside_bound_fraction:.2f}", fontsize=9)
        ax.set_xlabel("distance in the quantiser's space", fontsize=8)
        ax.tick_params(labelsize=7)
        if n == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"NRoUB: per-position margin vs latent shift ({diag.frames} frames of {diag.clip})", fontsize=10)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def run_diagnosis(model_path: str | Path, data_root: str | Path, *, out: str | Path, frames: int = 32,
                  clip: Optional[str] = None, batch_size: int = 16,
                  device: str | torch.device = "cpu") -> Diagnosis:
    """Load the refiner, diagnose it on ``frames`` clean crops, write JSON + PNG into ``out``; returns the numbers."""
    from PIL import Image

    from talkfreq.models.loading import load_refiner

    if frames < 2:
        raise TalkfreqError(f"--frames must be at least 2, got {frames}")
    model = load_refiner(model_path).to(device).eval()
    out = require_writable_dir(out)
    size = int(model.config.image_size)
    crops, cid, first = clean_clip_frames(data_root, image_size=size, frames=frames, clip=clip)
    with torch.no_grad():
        reports, temporal = diagnose(model, crops, batch_size=batch_size)
    diag = Diagnosis(model=str(model_path), data=str(data_root), clip=cid, first_frame=first, frames=len(crops),
                     image_size=size, temporal_flip_rate=temporal, strengths=dict(FIXED_STRENGTHS), reports=reports)
    (out / JSON_FILE).write_text(json.dumps(diag.as_dict(), indent=1) + "\n")
    Image.fromarray(histogram_image(diag)).save(out / PNG_FILE)
    return diag


def summary_table(diag: Diagnosis):
    """A rich Table: one row per degradation."""
    from rich.table import Table

    t = Table(title=f"NRoUB diagnostic - {diag.frames} frames of {diag.clip} at {diag.image_size} px",
              caption=f"margin, shift: means per latent position; inside: fraction with shift < margin; clean video "
                      f"temporal flip rate {diag.temporal_flip_rate:.3f}")
    # short headers: the table must stay readable in an 80-column terminal
    t.add_column("degradation", no_wrap=True)
    for col in ("level", "margin", "shift", "flip rate", "inside", "flips inside", "flip out"):
        t.add_column(col, justify="right")
    for kind, r in diag.reports.items():
        t.add_row(kind, describe(kind, diag.strengths[kind]), f"{r.margin_mean:.4f}", f"{r.shift_mean:.4f}",
                  f"{r.flip_rate:.3f}", f"{r.inside_bound_fraction:.3f}", str(r.flips_inside_bound),
                  f"{r.flip_rate_outside_bound:.3f}")
    return t
