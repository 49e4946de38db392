"""Training callbacks: sample grids and the generated-vs-real spectrum view (FREAK's figure 1) during a run.

:class:`SamplePreview` works with any LightningModule that implements ``preview(batch) -> Preview``: stage 1
returns (reference | masked | generated | target), the refiner can return (input | output | target). Every
``every_n_steps`` training steps (and once when training ends) it runs ``preview`` on a fixed batch — the first
validation batch (the sanity check fills it before the first step), else the current training batch — and writes:

- ``samples/step{N}.png``: one row per sample, one column per entry of ``Preview.columns``;
- ``samples/spectrum_step{N}.png``: mean log-amplitude spectra of the real crops, of the generated ones, and their
  difference (:func:`talkfreq.metrics.frequency.mean_log_spectrum`, grey BT.601, fftshift-ed);
- the scalar ``samples/spectrum_gap`` (mean |difference| of the two spectra) to the logger, and both images to the
  logger when it takes images (wandb ``log_image``, TensorBoard ``add_image``; CSV does not).

Only global rank 0 does this; the preview runs on the plain module (not the DDP wrapper), in eval mode and without
gradients, so the other ranks never wait on it.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback

from talkfreq.metrics.frequency import mean_log_spectrum, spectrum_gap


@dataclass
class Preview:
    """What a module shows. ``columns``: name -> (B,3,H,W) in [-1, 1], drawn left to right (each at its own size;
    rows are as tall as the tallest). ``generated`` and ``real``: (B,3,H,W) in [-1, 1], the crops whose averaged
    spectra are compared (same size)."""

    columns: dict[str, torch.Tensor]
    generated: torch.Tensor
    real: torch.Tensor


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) float in [-1, 1] -> (B,H,W,3) uint8."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def sample_grid(columns: dict[str, torch.Tensor], *, pad: int = 2) -> np.ndarray:
    """(rows·H, cols·W, 3) uint8 grid: one row per sample, one column per entry, ``pad`` white pixels between."""
    imgs = [to_uint8(c) for c in columns.values()]
    b = min(i.shape[0] for i in imgs)
    h = max(i.shape[1] for i in imgs)
    widths = [i.shape[2] for i in imgs]
    grid = np.full((b * (h + pad) - pad, sum(widths) + pad * (len(imgs) - 1), 3), 255, dtype=np.uint8)
    for r in range(b):
        x = 0
        for img, w in zip(imgs, widths):
            grid[r * (h + pad): r * (h + pad) + img.shape[1], x: x + w] = img[r]
            x += w + pad
    return grid


def spectrum_figure(real: np.ndarray, generated: np.ndarray, *, title: str = "") -> np.ndarray:
    """(H', W', 3) uint8 image of three panels: real, generated (same colour scale) and generated - real."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state in a training process

    fig = Figure(figsize=(10.5, 3.4), dpi=80)
    FigureCanvasAgg(fig)
    lo, hi = float(min(real.min(), generated.min())), float(max(real.max(), generated.max()))
    diff = generated - real
    lim = float(np.abs(diff).max()) or 1.0
    panels = [("real", real, "viridis", lo, hi), ("generated", generated, "viridis", lo, hi),
              ("generated - real", diff, "coolwarm", -lim, lim)]
    for k, (name, img, cmap, vmin, vmax) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def log_images(logger: Any, images: dict[str, np.ndarray], *, step: int) -> None:
    """Send (H,W,3) uint8 images to a Lightning logger that takes images (wandb, TensorBoard); others are skipped."""
    if logger is None:
        return
    if hasattr(logger, "log_image"):  # WandbLogger
        for key, img in images.items():
            logger.log_image(key=key, images=[img], step=step)
        return
    experiment = getattr(logger, "experiment", None)
    if hasattr(experiment, "add_image"):  # TensorBoard SummaryWriter
        for key, img in images.items():
            experiment.add_image(key, img, step, dataformats="HWC")


class SamplePreview(Callback):
    """Writes sample grids and spectra every ``every_n_steps`` steps into ``out_dir`` (see the module docstring).

    ``max_rows`` samples are drawn in the grid; the spectra average every crop of the fixed batch.
    """

    def __init__(self, *, out_dir: str | Path, every_n_steps: int, max_rows: int = 4):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.every_n_steps = int(every_n_steps)
        self.max_rows = max_rows
        self._batch: Optional[Any] = None
        self._last_step = -1

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._batch is None and batch_idx == 0 and dataloader_idx == 0:
            self._batch = move_data_to_device(batch, "cpu")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.write(trainer, pl_module, self._batch if self._batch is not None else batch)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.every_n_steps > 0 and trainer.global_step != self._last_step and self._batch is not None:
            self.write(trainer, pl_module, self._batch)

    def write(self, trainer, pl_module, batch: Any) -> Optional[Preview]:
        """Run ``pl_module.preview`` on ``batch`` and write the images and the gap (rank 0 only)."""
        step = trainer.global_step
        self._last_step = step
        if not trainer.is_global_zero:
            return None
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                preview: Preview = pl_module.preview(move_data_to_device(batch, pl_module.device))
        finally:
            pl_module.train(was_training)
        rows = {k: v[: self.max_rows] for k, v in preview.columns.items()}
        grid = sample_grid(rows)
        real = mean_log_spectrum((preview.real.float().clamp(-1, 1) + 1) / 2)
        fake = mean_log_spectrum((preview.generated.float().clamp(-1, 1) + 1) / 2)
        gap = spectrum_gap(fake, real)
        spectra = spectrum_figure(real, fake, title=f"step {step}: mean log-amplitude spectra, gap {gap:.3f}")
        _save_png(self.out_dir / f"step{step:07d}.png", grid)
        _save_png(self.out_dir / f"spectrum_step{step:07d}.png", spectra)
        logger = trainer.logger
        if logger is not None:
            logger.log_metrics({"samples/spectrum_gap": gap}, step=step)
            log_images(logger, {"samples/grid": grid, "samples/spectra": spectra}, step=step)
        return preview


def finish_logger(trainer) -> None:
    """End the wandb run a Trainer opened (Lightning leaves it open), so that a later fit in the same process (the
    demo trains the expert, then stage 1) starts a run of its own instead of writing into this one."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish()


class StepLines(Callback):
    """Prints ``step N/M  key=value ...  T s`` every ``every_n_steps`` training steps (and after the last), rank 0
    only: the progress of a run whose output goes to a file, where a progress bar shows nothing until the end."""

    def __init__(self, *, every_n_steps: int, stream=None):
        super().__init__()
        self.every_n_steps = max(1, int(every_n_steps))
        self.stream = stream
        self._last = -1
        self._t0 = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def _line(self, trainer) -> None:
        step = trainer.global_step
        if step == self._last or not trainer.is_global_zero:
            return
        self._last = step
        values = []
        for k, v in trainer.progress_bar_metrics.items():
            try:
                values.append(f"{k}={float(v):.4g}")
            except (TypeError, ValueError):
                pass
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        parts = [f"step {step}/{total}", *values, f"{time.perf_counter() - self._t0:.0f} s"]
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            self._line(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._line(trainer)


def quiet_lightning() -> None:
    """Silence Lightning's info banners ("GPU available ...", tips, "max_steps reached") for ``--quiet``; its
    warnings and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
