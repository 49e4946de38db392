"""The ``talkfreq`` command. Nothing is parsed at import time: :func:`main` builds and runs the click command.

Every sub-command takes ``-c FILE`` (an OmegaConf YAML checked against the command's dataclass schema) and dotted
``key.sub=value`` overrides anywhere among its arguments; explicit options such as ``--size`` win over both.
A user-fixable problem ends the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from talkfreq.errors import TalkfreqError
from talkfreq.models import registry

_GENERATORS = "/".join(registry.class_names("generator"))  # the registry's table: no torch import
app = typer.Typer(
    name="talkfreq",
    help="High-fidelity audio-driven talking heads: prepare data, train, infer, refine, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (see configs/).")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. face.padding=0.3", show_default=False)]
# how the networks of infer / refine run (talkfreq.pipeline.accel.AccelConfig; accel.overlap=false as an override)
DtypeOpt = Annotated[Optional[str], typer.Option(help="Compute dtype: auto, fp32, bf16 or fp16 (auto: bf16 on a GPU that has it, else fp32).")]
CompileOpt = Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the networks (default: on for CUDA, off on the CPU).", show_default=False)]
ChannelsLastOpt = Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="Channels-last memory format (default: on for CUDA, off on the CPU).", show_default=False)]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="CPU threads of torch (default: torch's own setting).")]
FidelityOpt = Annotated[Optional[float], typer.Option(help="Refiner output back towards its input, 0-1 (1: unchanged; default: the model's).")]


def _accel(dtype: Optional[str], compile_: Optional[bool], channels_last: Optional[bool], threads: Optional[int]) -> dict:
    return {"accel.dtype": dtype, "accel.compile": compile_, "accel.channels_last": channels_last, "accel.threads": threads}


def _console():
    from rich.console import Console

    return Console(stderr=False)


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Turn talking-head videos into a prepared dataset: 25 fps face crops, 16 kHz audio, mel (+HuBERT), boxes."""
    from talkfreq.config import load_config, split_overrides
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset, summary_table

    paths, overrides = split_overrides(inputs)
    if not paths:
        raise TalkfreqError("prepare: no input videos or folders given")
    extra = {"face.crop_size": size, "workers": workers}
    if speech_model:
        extra |= {"speech.enabled": True, "speech.model": speech_model}
    cfg = load_config(PrepareConfig, config, overrides, extra=extra)
    result = prepare_dataset(paths, out=out, cfg=cfg, shard=shard, overwrite=overwrite, show_progress=not quiet)
    con = _console()
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
    from talkfreq.config import load_config
    from talkfreq.data.synth import SynthConfig, run_synth

    cfg = load_config(
        SynthConfig, config, overrides or [],
        extra={"identities": identities, "clips_per_identity": clips, "seconds": seconds, "frame_size": size, "seed": seed},
    )
    paths = run_synth(cfg, out=out, quiet=quiet)
    _console().print(f"wrote {len(paths)} clips to {out}")


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

    extra = {"data.root": str(data) if data else None, "run.name": name, "run.resume": resume,
             "trainer.max_steps": max_steps, "loss.vgg16": str(vgg16) if vgg16 else None,
             "logging.quiet": True if quiet else None}
    out = run_train(kind, config, overrides or [], extra=extra)
    _console().print(f"run folder: {out}")


@app.command("import")
def import_(
    weights: Annotated[Path, typer.Argument(help="A published file: wav2lip.pth / wav2lip_gan.pth, lipsync_expert.pth or syncnet_v2.model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New talkfreq model folder to write.")],
) -> None:
    """Convert a published weights file into a talkfreq model folder (its input convention in config.json)."""
    from talkfreq.models.published import import_published

    kind, folder = import_published(weights, out)
    _console().print(f"wrote {folder} ({kind})", soft_wrap=True)


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
    con = _console()
    con.print(summary_table(diag))
    bad = {k: r.flips_inside_bound for k, r in diag.reports.items() if r.flips_inside_bound}
    if bad:  # the theorem says this cannot happen: the diagnostics and the quantiser disagree on the geometry
        con.print(f"[red]inconsistent:[/red] code flips inside the bound {bad}")
    con.print(f"wrote {out / JSON_FILE} and {out / PNG_FILE}")


def _frames_per_second_column():
    """A rich progress column showing the task's speed in frames/s (rich's speed columns are for bytes)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class FramesPerSecond(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f} frames/s" if task.speed else "", style="progress.data.speed")

    return FramesPerSecond()


@app.command()
def refine(
    inputs: Annotated[list[str], typer.Argument(help="The video to refine, and key=value overrides (face.*, crf ...).")],
    refiner: Annotated[Path, typer.Option(help="Refiner: a run's model/ folder or a refiner .ckpt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .mp4.")],
    config: ConfigOpt = None,
    batch: Annotated[Optional[int], typer.Option(help="Face crops per forward pass.")] = None,
    boxes_from: Annotated[Optional[Path], typer.Option("--boxes-from", help="Reuse the crop boxes of a prepared clip folder (DATA/clips/<id>) instead of detecting.")] = None,
    region: Annotated[Optional[str], typer.Option(help="Pasted region: face or lower.")] = None,
    temporal_smoothing: Annotated[Optional[float], typer.Option("--temporal-smoothing", help="Latent smoothing alpha in [0, 1) (default: the model's, else 0).")] = None,
    fidelity: FidelityOpt = None,
    feather: Annotated[Optional[float], typer.Option(help="Mask edge sigma, fraction of the crop side.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    dtype: DtypeOpt = None,
    compile_: CompileOpt = None,
    channels_last: ChannelsLastOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Refine the face of any talking-head video with a trained SOVQAE refiner; keeps fps, duration and audio."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from talkfreq.config import load_config, split_overrides
    from talkfreq.pipeline.refine import RefineConfig
    from talkfreq.pipeline.refine import refine as run_refine

    paths, overrides = split_overrides(inputs)
    if len(paths) != 1:
        raise TalkfreqError(f"refine: expected one input video, got {len(paths)}")
    cfg = load_config(RefineConfig, config, overrides, extra={
        "batch_size": batch, "region": region, "temporal_smoothing": temporal_smoothing, "feather": feather,
        "fidelity": fidelity,
        "device": device, **_accel(dtype, compile_, channels_last, threads)})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _frames_per_second_column(),
               TimeElapsedColumn())
    with Progress(*columns, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: Optional[int]) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task("faces" if stage == "boxes" else "refine", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        res = run_refine(paths[0], refiner=refiner, out=out, cfg=cfg, boxes_from=boxes_from, progress=on_progress)
    con = _console()
    flips = "n/a" if res.temporal_flip_rate != res.temporal_flip_rate else f"{res.temporal_flip_rate:.3f}"
    con.print(
        f"wrote {res.out}: {res.frames} frames at {res.fps:g} fps ({_size(res)}), {res.refined} refined, "
        f"{res.no_face} without a face (unchanged), audio {'kept' if res.audio else 'none in input'}; "
        f"smoothing alpha {res.alpha:g}, code flips between frames {flips}; "
        f"{res.frames_per_second:.1f} frames/s end to end (boxes {res.seconds_boxes:.1f} s, refine "
        f"{res.seconds_refine:.1f} s)"
    )


def _size(res) -> str:
    """``WxH`` as written, saying so when an odd input size was padded."""
    text = f"{res.width}x{res.height}"
    if res.padded_from:
        w, h = res.padded_from
        text += f", padded from {w}x{h}: h264 players need even sizes"
    return text


def _parse_box(text: Optional[str]) -> Optional[list[float]]:
    if text is None:
        return None
    try:
        box = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise TalkfreqError(f"--box must be four numbers x0,y0,x1,y1 (frame pixels), got {text!r}")
    return box


@app.command()
def infer(
    face: Annotated[Path, typer.Option(help="Face video (dubbing) or portrait image (one-shot).")],
    audio: Annotated[Path, typer.Option(help="Driving audio: any file with an audio track (wav, mp3, mp4 ...).")],
    stage1: Annotated[Path, typer.Option("--stage1", help=f"Stage-1 model: a {_GENERATORS} run's model/ folder or .ckpt, or a published wav2lip.pth.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .mp4.")],
    overrides: Overrides = None,
    refiner: Annotated[Optional[Path], typer.Option(help="Refiner: a SOVQAE run's model/ folder or .ckpt (none: stage 1 only).")] = None,
    fidelity: FidelityOpt = None,
    config: ConfigOpt = None,
    mode: Annotated[Optional[str], typer.Option(help="dubbing or one-shot (default: dubbing for a video, one-shot for an image).")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Frames per forward pass.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    save_stage1: Annotated[Optional[Path], typer.Option("--save-stage1", help="Also write the un-refined video here.")] = None,
    face_index: Annotated[Optional[int], typer.Option("--face-index", help="Which face: 0 = largest, k = k-th largest.")] = None,
    box: Annotated[Optional[str], typer.Option(help="Face box x0,y0,x1,y1 in frame pixels instead of detection.")] = None,
    reference: Annotated[Optional[str], typer.Option(help="Dubbing reference: auto (the model's reference bank if it has one, else same), same (each frame), first, bank, or a frame index.")] = None,
    speech_model: Annotated[Optional[str], typer.Option("--speech-model", help="HuBERT/wav2vec2 model a speech-feature FREAK was trained with.")] = None,
    dtype: DtypeOpt = None,
    compile_: CompileOpt = None,
    channels_last: ChannelsLastOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Make a talking-head video: stage 1 (FREAK, Wav2Lip ...), SOVQAE refiner, feathered paste-back, audio muxed in."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from talkfreq.config import load_config
    from talkfreq.pipeline.infer import InferConfig
    from talkfreq.pipeline.infer import infer as run_infer

    cfg = load_config(InferConfig, config, overrides or [], extra={
        "mode": mode, "batch_size": batch, "device": device, "face.face_index": face_index, "box": _parse_box(box),
        "reference": reference, "speech.model": speech_model, "fidelity": fidelity,
        **_accel(dtype, compile_, channels_last, threads)})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _frames_per_second_column(),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: Optional[int]) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task("faces" if stage == "boxes" else "infer", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        res = run_infer(face, audio=audio, stage1=stage1, refiner=refiner, out=out, cfg=cfg,
                        save_stage1=save_stage1, progress=on_progress)
    src = f"{res.source_frames}-frame video played forward-backward" if res.pingpong else (
        "a still" if res.source_frames == 1 else f"{res.source_frames}-frame video")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items())
    _console().print(
        f"wrote {res.out}: {res.frames} frames at {res.fps:g} fps ({_size(res)}), {res.mode} from {src}, "
        f"{res.generated} generated{' and refined' if res.refined else ''}, {res.no_face} without a face "
        f"(unchanged), audio {res.audio_seconds:.2f} s{' (silent: a resting mouth)' if res.silent else ''}"
        + (f"; stage 1 only: {res.stage1_out}" if res.stage1_out else "")
        + f"; {res.frames_per_second:.1f} frames/s end to end ({stages})",
        soft_wrap=True,  # one greppable line, whatever the terminal's width
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("outputs/demo"),
    overrides: Overrides = None,
    config: ConfigOpt = None,
    video: Annotated[Optional[Path], typer.Option(help="Run on your own talking-head clip instead of synth data.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps of every stage (default: configs/demo).")] = None,
    quick: Annotated[bool, typer.Option(help="Smoke run: 4 training steps per stage.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """The main job on built-in data: synth -> prepare -> train SyncNet, FREAK, refiner -> dub a held-out clip ->
    evaluate -> report.html and a side-by-side video."""
    from talkfreq.config import load_config
    from talkfreq.demo import DemoConfig, run_demo

    cfg = load_config(DemoConfig, config, overrides or [], extra={"steps": 4 if quick else steps})
    if video is not None:
        from talkfreq.errors import require_file

        require_file(video, "video")
    run_demo(out=out, cfg=cfg, video=video, quiet=quiet)


@app.command()
def personalize(
    video: Annotated[Path, typer.Argument(help="One person's talking-head clip (a few seconds to minutes, speech).")],
    overrides: Overrides = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: outputs/personal/<clip name>).")] = None,
    config: ConfigOpt = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps of every stage (default: configs/personal).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """A per-identity model from one clip: its first 80% trains a SyncNet scorer, FREAK and the restoring refiner
    (configs/personal), its last 20% is dubbed with its own audio and scored at 256 px -> runs/*/model and
    report.html. CPU budget and results: benchmarks/RESULTS.md "personal"."""
    from talkfreq.config import load_config
    from talkfreq.demo import PERSONAL_CONFIGS, PERSONAL_CROP, DemoConfig, run_demo
    from talkfreq.errors import require_file

    require_file(video, "video")
    defaults = [f"configs={PERSONAL_CONFIGS}", f"crop_size={PERSONAL_CROP}"]  # before the user's: those win
    cfg = load_config(DemoConfig, config, [*defaults, *(overrides or [])], extra={"steps": steps})
    run_demo(out=out or Path("outputs/personal") / video.stem, cfg=cfg, video=video, quiet=quiet)


def _stage_progress(bar, labels: dict[str, str]):
    """A ``progress(stage, done, total)`` callback adding one task per stage to the rich Progress ``bar``."""
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: Optional[int]) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return on_progress


def _frame_bars(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _frames_per_second_column(),
                    TimeElapsedColumn(), disable=quiet)


@app.command()
def evaluate(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="The real video (ground truth, always a row).")],
    candidate: Annotated[list[str], typer.Option("--candidate", help="NAME=PATH of a video to score; repeat the option for each.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder: metrics.csv/json, figures/, compare.mp4, report.html.")],
    overrides: Overrides = None,
    config: ConfigOpt = None,
    syncnet: Annotated[Optional[Path], typer.Option("--syncnet", help="A `talkfreq train syncnet` model/ folder, the original syncnet_v2.model or Wav2Lip's lipsync_expert.pth: adds LSE-D/LSE-C.")] = None,
    vgg16: Annotated[Optional[Path], typer.Option("--vgg16", help="torchvision VGG16 weights: adds LPIPS (else $TALKFREQ_VGG16).")] = None,
    inception: Annotated[Optional[Path], typer.Option("--inception", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth: adds FID (else $TALKFREQ_INCEPTION).")] = None,
    refiner: Annotated[Optional[Path], typer.Option(help="A refiner model/ folder or .ckpt: adds its NRoUB numbers.")] = None,
    video: Annotated[Optional[bool], typer.Option("--video/--no-video", help="Write the side-by-side compare.mp4 (default: on).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Face crop size in pixels for every metric (face.crop_size).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score candidate videos against the real one (fidelity, frequency, sharpness, flicker, lip sync) and write
    metrics.csv, metrics.json, figures, the side-by-side video and report.html."""
    from talkfreq.config import load_config
    from talkfreq.report.common import parse_candidate
    from talkfreq.report.evaluate import EvalConfig
    from talkfreq.report.evaluate import evaluate as run_evaluate

    cands: dict[str, Path] = {}
    for spec in candidate:
        name, path = parse_candidate(spec)
        if name in cands:
            raise TalkfreqError(f"candidate name {name!r} given twice")
        cands[name] = path
    cfg = load_config(EvalConfig, config, overrides or [], extra={
        "syncnet": str(syncnet) if syncnet else None, "vgg16": str(vgg16) if vgg16 else None,
        "refiner": str(refiner) if refiner else None, "write_video": video, "face.crop_size": size,
        "device": device, "inception": str(inception) if inception else None})
    with _frame_bars(quiet) as bar:
        res = run_evaluate(reference, cands, out=out, cfg=cfg, progress=_stage_progress(
            bar, {"boxes": "faces (reference)", "evaluate": "metrics", "compare": "compare video"}))
    con = _console()
    con.print(res.table())
    for note in res.notes:
        con.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)
    for why in dict.fromkeys(res.unreliable.values()):
        con.print(f"[yellow]unreliable:[/yellow] {why}", soft_wrap=True, markup=True)
    con.print(f"report: {res.files['html']}", soft_wrap=True)


@app.command("compare-video")
def compare_video(
    videos: Annotated[list[str], typer.Argument(help="The real video, then NAME=PATH for each candidate (tile order).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .mp4.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="An evaluate YAML config (its face, regions and video sections).")] = None,
    labels: Annotated[Optional[bool], typer.Option("--labels/--no-labels", help="Draw the names on the tiles.")] = None,
    insets: Annotated[Optional[str], typer.Option(help="Zoomed insets under each tile: mouth,hair (default), mouth, hair or none.")] = None,
    zoom: Annotated[Optional[float], typer.Option(help="Inset magnification relative to the tile (reduced to fit).")] = None,
    height: Annotated[Optional[int], typer.Option(help="Tile height in pixels (default: the real video's, at most 512).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Tile real | candidate 1 | candidate 2 ... side by side with labels, zoomed mouth/hair insets and the real
    video's audio: the benchmark video."""
    from talkfreq.config import load_config
    from talkfreq.report.common import parse_candidate
    from talkfreq.report.compare_video import compare_video as run_compare
    from talkfreq.report.evaluate import EvalConfig

    if len(videos) < 2:
        raise TalkfreqError("compare-video: give the real video, then NAME=PATH for at least one candidate")
    cands: dict[str, Path] = {}
    for spec in videos[1:]:
        name, path = parse_candidate(spec)
        if name in cands:
            raise TalkfreqError(f"candidate name {name!r} given twice")
        cands[name] = path
    inset_list = None
    if insets is not None:
        inset_list = [] if insets.strip().lower() in ("", "none") else [s.strip() for s in insets.split(",")]
    cfg = load_config(EvalConfig, config, [], extra={
        "video.labels": labels, "video.insets": inset_list, "video.zoom": zoom, "video.tile_height": height})
    with _frame_bars(quiet) as bar:
        res = run_compare(videos[0], cands, out=out, cfg=cfg.video, face=cfg.face, regions=cfg.regions, fps=cfg.fps,
                          progress=_stage_progress(bar, {"boxes": "faces (reference)", "compare": "compare video"}))
    zooms = ", ".join(f"{k} x{v:.1f}" for k, v in res.zooms.items()) or "none"
    _console().print(
        f"wrote {res.out}: {res.frames} frames at {res.fps:g} fps, {res.width}x{res.height} "
        f"({len(res.tile_widths)} tiles of height {res.tile_height}), insets {zooms}, "
        f"audio {'from the real video' if res.audio else 'none (the real video has none)'}"
        + (f"; note: {res.note}" if res.note else ""),
        soft_wrap=True,
    )


@app.command()
def bench(
    overrides: Overrides = None,
    config: ConfigOpt = None,
    video: Annotated[Optional[Path], typer.Option(help="End-to-end input (required), dubbed with its own audio: a talking-head clip with speech.")] = None,
    seconds: Annotated[Optional[float], typer.Option(help="Seconds of the video (from its start) per end-to-end run.")] = None,
    pipelines: Annotated[Optional[str], typer.Option(help=f"Comma-separated: {', '.join(registry.bench_pipelines())} (default: all).")] = None,
    batches: Annotated[Optional[str], typer.Option(help="Comma-separated batch sizes of the per-stage sweep.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    dtype: DtypeOpt = None,
    compile_: CompileOpt = None,
    channels_last: ChannelsLastOpt = None,
    threads: ThreadsOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="A short run: 1 s clips, batches 1 and 8, end to end at the best batch only.")] = False,
    tiny: Annotated[bool, typer.Option("--tiny", help="The tiny test configs instead of the default models (a smoke run).")] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers to this JSON file.")] = None,
) -> None:
    """Per-stage and end-to-end frames/s, latency, peak memory, GFLOPs and fraction of peak of the default models."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from talkfreq.bench import bench_config, report, run_bench, write_json
    from talkfreq.errors import require_writable_dir

    def listed(text: Optional[str], kind=str):
        return None if text is None else [kind(t.strip()) for t in text.split(",") if t.strip()]

    try:
        batch_list = listed(batches, int)
    except ValueError as exc:
        raise TalkfreqError(f"--batches: comma-separated integers, got {batches!r}") from exc
    cfg = bench_config(config, overrides or [], quick=quick, video=str(video) if video else None, seconds=seconds,
                       pipelines=listed(pipelines), batches=batch_list, device=device, tiny=tiny or None,
                       **_accel(dtype, compile_, channels_last, threads))
    if json_path is not None:
        require_writable_dir(json_path.parent)  # before minutes of measuring, not after
    con = _console()
    if not con.is_terminal:
        con.width = max(con.width, 120)  # a log or RESULTS.md gets the table unwrapped
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=con,
                  transient=True) as bar:
        task = bar.add_task("bench", total=None)
        result = run_bench(cfg, progress=lambda text: bar.update(task, description=text))
    report(result, con)
    if json_path is not None:
        write_json(result, json_path)
        con.print(f"wrote {json_path}", soft_wrap=True)


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts, exits) as the installed typer raises them: typer >= 0.24 carries its own copy of click
    (``typer._click``) and no longer raises the ``click`` package's classes; older typer raises those. Both are
    collected, so either works."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(__import__(name, fromlist=["ClickException"]))
        except ImportError:
            pass

    def classes(attr: str, *more: type) -> tuple[type, ...]:
        found = [getattr(m, attr) for m in modules if isinstance(getattr(m, attr, None), type)]
        return tuple(dict.fromkeys([*found, *more]))

    return (classes("ClickException"), classes("Abort", getattr(typer, "Abort", KeyboardInterrupt)),
            classes("Exit", typer.Exit))


class _Signals:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread while a command runs, so every ``finally`` and
    atomic writer cleans up (temporary mp4s, frame caches) whatever stopped the run; which signal came is kept for
    the exit status (130 / 143). The previous handlers come back afterwards (tests call :func:`main` in-process)."""

    NAMES = {2: "aborted", 15: "terminated"}

    def __init__(self):
        self.received: Optional[int] = None
        self._saved: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
        raise KeyboardInterrupt

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def stopped(self) -> int:
        """Print why the command stopped; the exit status 128 + signal number (130 for Ctrl-C)."""
        sig = self.received or 2
        print(f"talkfreq: {self.NAMES.get(sig, f'stopped by signal {sig}')}", file=sys.stderr)
        return 128 + sig


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``talkfreq`` console script; returns the exit status."""
    from talkfreq.errors import is_disk_full

    usage_errors, aborts, exits = _click_exceptions()
    command = typer.main.get_command(app)
    with _Signals() as signals:
        try:
            rv = command.main(args=argv, prog_name="talkfreq", standalone_mode=False)
        except TalkfreqError as exc:
            print(f"talkfreq: error: {exc}", file=sys.stderr)
            return 2
        except exits as exc:
            if signals.received:  # typer turns an interrupt into Exit(130) itself
                return signals.stopped()
            return exc.exit_code
        except usage_errors as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `talkfreq`: the help is the answer
                exc.show()
                return exc.exit_code
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"talkfreq: error: {exc.format_message()}{hint}", file=sys.stderr)
            return exc.exit_code
        except (KeyboardInterrupt, *aborts):
            return signals.stopped()
        except SystemExit:  # Lightning ends an interrupted fit with sys.exit(1)
            if signals.received:
                return signals.stopped()
            raise
        except OSError as exc:
            if is_disk_full(exc):  # a write the commands do not wrap themselves (checkpoints, datasets)
                where = f" ({exc.filename})" if exc.filename else ""
                print(f"talkfreq: error: no space left on the device{where}; free some space and run again",
                      file=sys.stderr)
                return 2
            raise
    if signals.received:  # typer (>= 0.24, non-standalone) returns Exit(130) of an interrupt as the value
        return signals.stopped()
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
