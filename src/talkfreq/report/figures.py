"""The evaluation's figures (PNG), each from plain arrays so experiments can draw them from their own numbers.

* :func:`spectra_figure` - averaged log-amplitude spectra side by side, the view of FREAK's figure 1 (one column per
  video, the real one first; rows: face, mouth, and the face spectrum minus the real one's, which shows at a glance
  which frequencies a method loses (blue) or invents (red));
* :func:`radial_figure` - radially averaged power spectra, face and mouth, log scale;
* :func:`per_frame_figure` - per-frame curves over time (PSNR, mouth PSNR, sharpness);
* :func:`closeup_grid` - mouth and hair close-ups of the same frames across videos, enlarged with nearest-neighbour
  so the pixels shown are the video's own (no resampling blur that would hide what is being compared).

matplotlib is used through ``Figure`` + the Agg canvas (no pyplot): no global backend state, safe in threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

DPI = 100


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def spectra_figure(spectra: Mapping[str, Mapping[str, np.ndarray]], *, reference: str):
    """``spectra[name][region]`` (H, W) mean log-amplitude spectra (fftshift-ed), ``region`` in {face, mouth};
    ``reference`` names the real video (drawn first, and the difference row is taken against it)."""
    names = [reference] + [n for n in spectra if n != reference]
    cols = len(names)
    fig = new_figure(2.4 * cols + 0.8, 7.4)
    rows = (("face", "face log |F|"), ("mouth", "mouth log |F|"), ("diff", "face: minus real"))
    # shared colour scales per row, from the real video's range: the same colour means the same amplitude
    lim = {r: (float(np.percentile(spectra[reference][r], 1)), float(spectra[reference][r].max()))
           for r in ("face", "mouth")}
    diffs = {n: spectra[n]["face"] - spectra[reference]["face"] for n in names}
    dmax = max(float(np.percentile(np.abs(d), 99.5)) for d in diffs.values()) or 1.0
    for i, (region, title) in enumerate(rows):
        for j, name in enumerate(names):
            ax = fig.add_subplot(len(rows), cols, i * cols + j + 1)
            if region == "diff":
                im = ax.imshow(diffs[name], cmap="RdBu_r", vmin=-dmax, vmax=dmax)
            else:
                im = ax.imshow(spectra[name][region], cmap="inferno", vmin=lim[region][0], vmax=lim[region][1])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10, fontweight="bold" if name == reference else "normal")
            if j == 0:
                ax.set_ylabel(title, fontsize=9)
        fig.colorbar(im, ax=fig.axes[-cols:], fraction=0.02, pad=0.01)
    fig.suptitle("Averaged log-amplitude spectra of the face crops (DC at the centre; edges = Nyquist)", fontsize=10)
    return fig


def radial_figure(radial: Mapping[str, Mapping[str, np.ndarray]], *, reference: str, hf_radius: float):
    """``radial[name][region]`` (n_bins,) radial power spectra over normalised radius [0, 1)."""
    fig = new_figure(10.0, 3.8)
    for k, region in enumerate(("face", "mouth")):
        ax = fig.add_subplot(1, 2, k + 1)
        for name, curves in radial.items():
            y = np.asarray(curves[region], np.float64)
            r = (np.arange(len(y)) + 0.5) / len(y)
            # the real curve wide and pale underneath, so candidates that match it stay visible on top
            style = dict(color="black", lw=3.5, alpha=0.35, zorder=1) if name == reference else dict(lw=1.3, zorder=2)
            ax.semilogy(r[1:], np.maximum(y[1:], 1e-12), label=name, **style)  # ring 0 is DC-dominated
        ax.axvline(hf_radius, color="grey", ls=":", lw=1)
        ax.set_title(f"{region}: radial power spectrum", fontsize=10)
        ax.set_xlabel("normalised frequency (1 = Nyquist)", fontsize=9)
        ax.set_ylabel("mean power", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_frame_figure(series: Mapping[str, tuple[np.ndarray, Mapping[str, Sequence[float]]]], *, fps: float,
                     reference: str):
    """``series[name] = (timeline indices (N,), {metric: (N,) per-frame values})``: curves over time.

    Full-reference panels (PSNR, mouth PSNR) leave the reference out (it is the target); sharpness shows it."""
    panels = (("psnr", "PSNR (dB)", False), ("mouth_psnr", "mouth PSNR (dB)", False),
              ("laplacian_var", "sharpness (Laplacian variance)", True))
    fig = new_figure(10.0, 7.5)
    for k, (key, title, with_ref) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, k + 1)
        for name, (idx, values) in series.items():
            if (name == reference and not with_ref) or not len(values.get(key, ())):
                continue
            style = dict(color="black", lw=3.0, alpha=0.35, zorder=1) if name == reference else dict(lw=1.1, zorder=2)
            ax.plot(np.asarray(idx) / fps, values[key], label=name, **style)
        ax.set_ylabel(title, fontsize=9)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, ncol=4)
    fig.axes[-1].set_xlabel("time (s)", fontsize=9)
    fig.tight_layout()
    return fig


def closeup_grid(closeups: Mapping[str, Sequence[np.ndarray]], *, headers: Sequence[str], cell_height: int = 160,
                 gap: int = 4, name_width: int = 110) -> np.ndarray:
    """(H, W, 3) uint8 grid: one row per video (``closeups[name]`` = its (h, w, 3) crops, same count and sizes for
    every video), one column per ``headers`` entry. Cells are enlarged by an integer factor, nearest-neighbour."""
    names = list(closeups)
    sizes = [c.shape[:2] for c in closeups[names[0]]]
    cells = []
    for h, w in sizes:
        k = max(1, round(cell_height / h))
        cells.append((h * k, w * k))
    head_h = 24
    row_h = max(h for h, _ in cells)
    width = name_width + sum(w for _, w in cells) + gap * len(cells)
    height = head_h + (row_h + gap) * len(names)
    grid = np.full((height, width, 3), 255, np.uint8)
    x = name_width
    for (_, cw), text in zip(cells, headers):
        cv2.putText(grid, text, (x + 2, head_h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += cw + gap
    y = head_h
    for name in names:
        cv2.putText(grid, name[:14], (4, y + row_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x = name_width
        for crop, (ch, cw) in zip(closeups[name], cells):
            grid[y : y + ch, x : x + cw] = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_NEAREST)
            x += cw + gap
        y += row_h + gap
    return grid[: y - gap]
