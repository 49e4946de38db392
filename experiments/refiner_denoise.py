"""Does a SOVQAE refiner trained on one identity's clean frames undo blur on frames it has not seen? (issue 4)

Prepares ``video`` at ``crop_size`` px, trains a refiner on the clean crops of the first ``train_seconds`` (frames
after that are never read, not even for validation: ``data.frame_range``), once with the codebook regulariser on and
once off (same seed, data and steps), then degrades the last ``test_seconds`` with each fixed degradation and prints,
per (regulariser, degradation):

- PSNR / SSIM against the clean crops of the degraded input and of the refined output (and of the refiner's own
  reconstruction of the clean crops: the ceiling a refiner of this size and training can reach);
- the high-frequency energy ratio (:func:`talkfreq.metrics.frequency.high_frequency_ratio`) of clean / degraded /
  refined;
- the NRoUB diagnostic (:func:`talkfreq.metrics.robustness.robustness_report`) of clean vs degraded latents: mean
  margin and mean latent shift (the table shows both in units of the clean latents' spread, ``margin/s`` and
  ``shift/s``, comparable across runs; results.json also has the absolute ones), code-flip rate, fraction of
  positions inside the bound, flips inside the bound (must be 0).

The target: refined beats degraded on PSNR, and its high-frequency ratio is closer to the clean one's. The script
reports whether it is met; it never tunes anything on the test frames. Writes ``results.json`` and ``strip.png``
(per row: clean | degraded | refined for a few test frames) into the work folder.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python experiments/refiner_denoise.py [--steps N] [--out DIR]
        [--resume] [-c configs/experiments/refiner_denoise.yaml] [key=value ...]  (e.g. refiner.sovqae.latent_dim=32)

Finished runs with the same config are reused (re-running only re-evaluates); ``--resume --steps M`` continues
them to M steps.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from talkfreq.cli.experiment import ConfigOpt, OutOpt, Overrides, experiment_config, run_experiment
from talkfreq.report.denoise_eval import denoise_rows, format_table, strip_image, target_met
from talkfreq.training.refiner import Config as RefinerConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "experiments" / "refiner_denoise.yaml"
DEFAULT_OUT = REPO / "outputs" / "experiments" / "refiner_denoise"
RUNS = {"reg_on": None, "reg_off": 0.0}  # run name -> loss.codebook_reg override (None: the YAML's value)


@dataclass
class ExperimentConfig:
    """``configs/experiments/refiner_denoise.yaml``; ``refiner`` is a full refiner run config."""

    video: str = "../shared/media/video/sadtalker_WDA_KatieHill_000.mp4"  # relative to the repository root
    crop_size: int = 128
    train_seconds: float = 6.0
    test_seconds: float = 2.0
    degradations: dict[str, float] = field(default_factory=lambda: {"gaussian_blur": 1.5, "downup": 4.0})
    strip_frames: int = 4
    refiner: RefinerConfig = field(default_factory=RefinerConfig)


# -- pure functions (imported by the tests) --------------------------------------------------------------------


def frame_split(n_frames: int, fps: float, *, train_seconds: float, test_seconds: float) -> tuple[int, int]:
    """(train_stop, test_start): train on frames [0, train_stop), test on [test_start, n_frames). Raises when the
    two overlap - the test frames must be unseen."""
    train_stop = min(n_frames, int(round(train_seconds * fps)))
    test_start = max(0, n_frames - int(round(test_seconds * fps)))
    if test_start < train_stop or test_start >= n_frames or train_stop < 1:
        raise ValueError(f"{n_frames} frames at {fps:g} fps: the first {train_seconds:g} s and the last "
                         f"{test_seconds:g} s overlap or are empty")
    return train_stop, test_start


# -- the experiment --------------------------------------------------------------------------------------------


def prepared_clip(cfg: ExperimentConfig, work: Path):
    """The prepared clip of ``cfg.video`` at ``cfg.crop_size`` px (prepared once into ``work/prepared``)."""
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset
    from talkfreq.data.prepared import PreparedDataset

    root = work / "prepared"
    video = (REPO / cfg.video).resolve()
    ok = (root / "index.json").is_file() and any(m.size == cfg.crop_size for m in PreparedDataset(root).metas)
    if not ok:
        prepare_dataset([video], out=root, cfg=load_config(PrepareConfig, None, [f"face.crop_size={cfg.crop_size}"]),
                        show_progress=True)
    ds = PreparedDataset(root)
    meta = next(m for m in ds.metas if Path(m.source).resolve() == video)
    return root, meta, ds.clip(meta.clip_id)


def run_config(cfg: ExperimentConfig, *, name: str, root: Path, train_stop: int, work: Path) -> RefinerConfig:
    """The refiner config of one run: the YAML's, with the data, the frame range and the run folder filled in
    (``dataclasses.replace`` re-runs the config checks)."""
    r = cfg.refiner
    loss = r.loss if RUNS[name] is None else replace(r.loss, codebook_reg=RUNS[name])
    return replace(r, data=replace(r.data, root=str(root), frame_range=[0, train_stop]), loss=loss,
                   run=replace(r.run, out_dir=str(work / "runs"), name=name, resume=None))


def train(cfg: RefinerConfig, console, *, resume: bool = False) -> tuple[Path, float]:
    """Train one run, or reuse a finished run with exactly this config; (model folder, seconds trained in all).

    ``resume``: continue an earlier run of this folder from its last checkpoint up to ``trainer.max_steps`` (exact
    resume, so 360 steps + resume to 1080 trains what 1080 steps would); otherwise a different config starts over.
    """
    from talkfreq.config import to_yaml
    from talkfreq.training.common import run_dir
    from talkfreq.training.refiner import fit

    out = run_dir(cfg.run)
    stamp, stamp_cfg = out / "train_seconds.txt", out / "experiment_run.yaml"
    if (out / "model" / "config.json").is_file() and stamp.is_file() and stamp_cfg.is_file() and \
            stamp_cfg.read_text() == to_yaml(cfg):
        console.log(f"{cfg.run.name}: reusing {out} (same config)")
        return out / "model", float(stamp.read_text())
    before = 0.0
    if resume and (out / "checkpoints" / "last.ckpt").is_file() and stamp.is_file():
        before = float(stamp.read_text())
        console.log(f"{cfg.run.name}: resuming {out} up to {cfg.trainer.max_steps} steps")
        cfg = replace(cfg, run=replace(cfg.run, resume="last"))
    else:
        shutil.rmtree(out, ignore_errors=True)  # a fresh run: no stale checkpoint or log is picked up
        console.log(f"{cfg.run.name}: training {cfg.trainer.max_steps} steps (codebook_reg={cfg.loss.codebook_reg})")
    t0 = time.perf_counter()
    fit(cfg)
    seconds = before + time.perf_counter() - t0
    stamp.write_text(f"{seconds:.1f}\n")
    stamp_cfg.write_text(to_yaml(replace(cfg, run=replace(cfg.run, resume=None))))  # written last: run finished
    return out / "model", seconds


def denoise(config: ConfigOpt = None, out: OutOpt = None,
            steps: Annotated[Optional[int], typer.Option(
                "--steps", help="Training steps per run (refiner.trainer.max_steps).")] = None,
            resume: Annotated[bool, typer.Option(
                "--resume", help="Continue the runs in --out from their last checkpoint to --steps (instead of "
                                 "starting over).")] = False,
            overrides: Overrides = None) -> int:
    """Train the two refiners, evaluate them on the degraded test crops, print the table."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from talkfreq.models.sovqae import SOVQAE

    cfg = experiment_config(ExperimentConfig, config, DEFAULT_CONFIG, overrides, refiner__trainer__max_steps=steps)
    console = Console()
    t_start = time.perf_counter()

    work = (out or DEFAULT_OUT).resolve()
    work.mkdir(parents=True, exist_ok=True)
    root, meta, clip = prepared_clip(cfg, work)
    train_stop, test_start = frame_split(meta.n_frames, meta.fps, train_seconds=cfg.train_seconds,
                                         test_seconds=cfg.test_seconds)
    if not np.asarray(clip.valid[test_start:], bool).all():
        console.log("[yellow]some test frames have no detected face (their crops are filled-in boxes)")
    clean = np.ascontiguousarray(clip.frames[test_start:])
    console.log(f"{meta.clip_id}: {meta.n_frames} frames at {meta.fps:g} fps; train [0, {train_stop}), "
                f"test [{test_start}, {meta.n_frames}) at {cfg.crop_size} px")

    models, seconds = {}, {}
    for name in RUNS:
        rcfg = run_config(cfg, name=name, root=root, train_stop=train_stop, work=work)
        model_dir, seconds[name] = train(rcfg, console, resume=resume)
        models[name] = SOVQAE.from_pretrained(model_dir).eval()
        console.log(f"{name}: {seconds[name] / 60:.1f} min of training")

    rows = []
    cols = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*cols, console=console) as progress:
        task = progress.add_task("evaluate", total=len(models) * (1 + len(cfg.degradations)))
        for name, model in models.items():
            rows += [{"run": name, **r} for r in denoise_rows(model, clean, cfg.degradations, progress, task)]

    table = format_table(rows)
    console.print(table, highlight=False, soft_wrap=True)
    met = all(all(target_met(r).values()) for r in rows)
    console.print(f"target (refined PSNR > degraded and HF ratio toward clean, every row): "
                  f"{'MET' if met else 'NOT met'}", highlight=False)

    import cv2

    strip = strip_image([(f"{r['run']} {r['degradation']}", *r["_images"]) for r in rows], frames=cfg.strip_frames)
    cv2.imwrite(str(work / "strip.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    from talkfreq.config import to_dict

    result = {
        "clip": meta.clip_id, "fps": meta.fps, "train_frames": [0, train_stop], "test_frames": [test_start,
                                                                                             meta.n_frames],
        "train_seconds_wall": seconds, "total_seconds_wall": time.perf_counter() - t_start, "target_met": met,
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} | {"target": target_met(r)} for r in rows],
        "config": to_dict(cfg),
    }
    (work / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {work / 'results.json'} and {work / 'strip.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_experiment(denoise, argv, script=__file__, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
