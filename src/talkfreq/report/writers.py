"""The evaluation's data files and figures: ``metrics.csv``, ``metrics.json``, ``figures/*.png``.

``metrics.csv``: one row per video, the reference first; columns ``name, role, frames, path`` then every metric of
:data:`~talkfreq.report.scoring.COLUMNS` (full precision; ``unavailable`` where a metric needs a network that was
not given; ``inf``/``nan`` spelled out). ``metrics.json`` holds the same rows plus the column definitions (label,
direction), the best rows per column, the notes, the reasons for unavailable columns, the NRoUB numbers and the
config used.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from talkfreq.report.common import REFERENCE_NAME
from talkfreq.report.scoring import COLUMNS, UNAVAILABLE

if TYPE_CHECKING:
    from talkfreq.report.evaluate import EvalConfig, EvalResult

FIGURE_FILES = {"spectra": "spectra.png", "radial": "radial_spectra.png", "per_frame": "per_frame.png",
                "closeups": "closeups.png", "nroub": "nroub_histograms.png"}


def _plain(v: Optional[float]) -> Any:
    """A JSON/CSV value: finite floats as numbers, None as "unavailable", inf/nan as strings."""
    if v is None:
        return UNAVAILABLE
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return float(v)


def write_csv(path: Path, result: EvalResult) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "role", "frames", "path", *(c.key for c in COLUMNS)])
        for r in result.rows:
            cells = []
            for c in COLUMNS:
                v = _plain(r.values.get(c.key))
                cells.append(f"{v:.8g}" if isinstance(v, float) else v)
            w.writerow([r.name, r.role, result.scored, r.path, *cells])
    return path


def write_json(path: Path, result: EvalResult, *, cfg: EvalConfig) -> Path:
    from talkfreq.config import to_dict

    doc = {
        "reference": str(result.reference),
        "fps": result.fps,
        "frames": result.frames,
        "scored_frames": result.scored,
        "columns": [{"key": c.key, "label": c.label, "direction": c.direction, "help": c.help}
                    for c in result.columns()],
        "lse_protocol": result.lse_protocol,
        "rows": [{"name": r.name, "role": r.role, "path": r.path,
                  "metrics": {c.key: _plain(r.values.get(c.key)) for c in COLUMNS}} for r in result.rows],
        "best": result.best,
        "unavailable": result.unavailable,
        "unreliable": result.unreliable,
        "notes": result.notes,
        "nroub": result.nroub,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "config": to_dict(cfg),
    }
    path.write_text(json.dumps(doc, indent=1, default=_plain) + "\n")
    return path


def write_figures(stage: Path, *, result: EvalResult, cfg: EvalConfig, scorers, closeups, closeup_index
                  ) -> dict[str, Path]:
    """Draw every figure into ``stage/figures``; returns {figure key: path}."""
    from PIL import Image

    from talkfreq.report.figures import (
        closeup_grid,
        per_frame_figure,
        radial_figure,
        save_figure,
        spectra_figure,
    )

    d = stage / "figures"
    files: dict[str, Path] = {}
    spectra = {n: {"face": s.face_spec.mean_log_spectrum(), "mouth": s.mouth_spec.mean_log_spectrum()}
               for n, s in scorers.items()}
    files["spectra"] = save_figure(spectra_figure(spectra, reference=REFERENCE_NAME), d / FIGURE_FILES["spectra"])
    # at most one ring per pixel of the region's half side: finer rings alternate between empty and full
    x0, y0, x1, y1 = next(iter(scorers.values())).mouth
    bins = {"face": min(cfg.radial_bins, cfg.face.crop_size // 2),
            "mouth": min(cfg.radial_bins, min(x1 - x0, y1 - y0) // 2)}
    radial = {n: {"face": s.face_spec.radial_power_spectrum(n_bins=bins["face"]),
                  "mouth": s.mouth_spec.radial_power_spectrum(n_bins=bins["mouth"])} for n, s in scorers.items()}
    files["radial"] = save_figure(radial_figure(radial, reference=REFERENCE_NAME, hf_radius=cfg.hf_radius),
                                  d / FIGURE_FILES["radial"])
    series = {n: (np.asarray(s.index), s.per_frame) for n, s in scorers.items()}
    files["per_frame"] = save_figure(per_frame_figure(series, fps=cfg.fps, reference=REFERENCE_NAME),
                                     d / FIGURE_FILES["per_frame"])
    if closeup_index:
        headers = [f"{region} @ {i / cfg.fps:.2f}s" for i in closeup_index for region in ("mouth", "hair")]
        grid = closeup_grid(closeups, headers=headers)
        Image.fromarray(grid).save(d / FIGURE_FILES["closeups"])
        files["closeups"] = d / FIGURE_FILES["closeups"]
    if result.nroub:
        files["nroub"] = _nroub_figure(result.nroub, d / FIGURE_FILES["nroub"])
    return files


def _nroub_figure(nroub: dict, path: Path) -> Path:
    """Bar chart of the refiner's per-degradation code-flip rate and inside-bound fraction."""
    from talkfreq.report.figures import new_figure, save_figure

    kinds = list(nroub["degradations"])
    flips = [nroub["degradations"][k]["flip_rate"] for k in kinds]
    inside = [nroub["degradations"][k]["inside_bound_fraction"] for k in kinds]
    fig = new_figure(max(5.0, 1.1 * len(kinds) + 2), 3.4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(kinds))
    ax.bar(x - 0.2, flips, 0.4, label="code-flip rate")
    ax.bar(x + 0.2, inside, 0.4, label="inside the NRoUB bound")
    ax.set_xticks(x, kinds, fontsize=8, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_title(f"refiner NRoUB on {nroub['frames']} real face crops", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
