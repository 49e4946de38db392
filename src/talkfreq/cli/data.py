"""The commands that make data and models: prepare, synth, train, import, diagnose-refiner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from talkfreq.cli._common import ConfigOpt, Overrides, QuietOpt, app, console, load_options, optional_str
from talkfreq.errors import TalkfreqError


@app.command()
def prepare(
    inputs: Annotated[list[str], typer.Argument(help="Video files or folders (flat HDTF-style, or <identity>/<clip>.mp4), and key=value overrides.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset folder.")],
    config: ConfigOpt = None,
    size: Annotated[Optional[int], typer.Option(help="Face crop size in pixels (96/128/256/512).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel clip workers.")] = None,
    shard: Annotated[Optional[str], typer.Option(help="Process shard i/n of the sorted clip list (cluster arrays).")] = None,
    speech_model: Annotated[Optional[str], typer.Option("--speech-model", help="Also extract HuBERT/wav2vec2 features: a local dir or a Hugging Face id already in the cache.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo clips that are already finished.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Turn talking-head videos into a prepared dataset: 25 fps face crops, 16 kHz audio, mel (+HuBERT), boxes."""
    from talkfreq.config import split_overrides
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset, summary_table

    paths, overrides = split_overrides(inputs)
    if not paths:
        raise TalkfreqError("prepare: no input videos or folders given")
    speech = {"speech__enabled": True, "speech__model": speech_model} if speech_model else {}
    cfg = load_options(PrepareConfig, config, overrides, face__crop_size=size, workers=workers, **speech)
    result = prepare_dataset(paths, out=out, cfg=cfg, shard=shard, overwrite=overwrite, show_progress=not quiet)
    con = console()
    con.print(summary_table(result, out=out))
    for _, msg in result.failed:
        con.print(f"[red]failed[/red] {msg}")
    if result.failed:
        raise typer.Exit(1)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (<identity>/<clip>.mp4 + ground truth).")],
    overrides: Overrides = None,
    config: ConfigOpt = None,
    identities: Annotated[Optional[int], typer.Option(help="Number of identities.")] = None,
    clips: Annotated[Optional[int], typer.Option(help="Clips per identity.")] = None,
    seconds: Annotated[Optional[float], typer.Option(help="Seconds per clip.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Frame size in pixels (square).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write the built-in procedural talking-face dataset (known lip-sync and detail ground truth)."""
    from talkfreq.data.synth import SynthConfig, run_synth

    cfg = load_options(SynthConfig, config, overrides, identities=identities, clips_per_identity=clips,
                       seconds=seconds, frame_size=size, seed=seed)
    paths = run_synth(cfg, out=out, quiet=quiet)
    console().print(f"wrote {len(paths)} clips to {out}")


@app.command()
def train(
    kind: Annotated[str, typer.Argument(help="What to train: syncnet, stage1 or refiner.")],
    overrides: Overrides = None,
    config: ConfigOpt = None,
    data: Annotated[Optional[Path], typer.Option(help="Prepared dataset folder (sets data.root).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run name (folder under run.out_dir).")] = None,
    resume: Annotated[Optional[str], typer.Option(help="'last' or a checkpoint path.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Training steps.")] = None,
    vgg16: Annotated[Optional[Path], typer.Option("--vgg16", help="torchvision VGG16 weights for the perceptual loss (sets loss.vgg16).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, step lines or Lightning banners (sets logging.quiet).")] = False,
) -> None:
    """Train the SyncNet expert, a stage-1 generator (model=freak|wav2lip) or a SOVQAE refiner with Lightning."""
    from talkfreq.training.registry import train as run_train

    # the schema depends on ``kind`` (the training registry's): these keys are the ones every kind's config has
    extra = {"data.root": optional_str(data), "run.name": name, "run.resume": resume, "trainer.max_steps": max_steps,
             "loss.vgg16": optional_str(vgg16), "logging.quiet": True if quiet else None}
    out = run_train(kind, config, overrides or [], extra=extra)
    console().print(f"run folder: {out}")


@app.command("import")
def import_(
    weights: Annotated[Path, typer.Argument(help="A published file: wav2lip.pth / wav2lip_gan.pth, lipsync_expert.pth or syncnet_v2.model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New talkfreq model folder to write.")],
) -> None:
    """Convert a published weights file into a talkfreq model folder (its input convention in config.json)."""
    from talkfreq.models.published import import_published

    kind, folder = import_published(weights, out)
    console().print(f"wrote {folder} ({kind})", soft_wrap=True)


@app.command("diagnose-refiner")
def diagnose_refiner(
    model: Annotated[Path, typer.Argument(help="Refiner: a run's model/ folder or a refiner .ckpt.")],
    data: Annotated[Path, typer.Option(help="Prepared dataset folder with clean frames.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: <run>/diagnosis).")] = None,
    frames: Annotated[int, typer.Option(help="Consecutive clean frames to use.")] = 32,
    clip: Annotated[Optional[str], typer.Option(help="Clip id in the dataset (default: the first).")] = None,
    batch: Annotated[int, typer.Option(help="Frames per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """NRoUB diagnostic: per degradation, latent shift vs code margin, code flips, inside-bound fraction."""
    from talkfreq.device import resolve_device
    from talkfreq.report.refiner_diagnosis import JSON_FILE, PNG_FILE, run_diagnosis, summary_table

    if out is None:
        out = (model.parent if model.name == "model" or model.is_file() else model) / "diagnosis"
        if model.is_file() and model.parent.name == "checkpoints":
            out = model.parent.parent / "diagnosis"
    diag = run_diagnosis(model, data, out=out, frames=frames, clip=clip, batch_size=batch,
                         device=resolve_device(device))
    con = console()
    con.print(summary_table(diag))
    bad = {k: r.flips_inside_bound for k, r in diag.reports.items() if r.flips_inside_bound}
    if bad:  # the theorem says this cannot happen: the diagnostics and the quantiser disagree on the geometry
        con.print(f"[red]inconsistent:[/red] code flips inside the bound {bad}")
    con.print(f"wrote {out / JSON_FILE} and {out / PNG_FILE}")
