"""The commands that measure: evaluate, compare-video and bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from talkfreq.cli._common import (
    ChannelsLastOpt,
    CompileOpt,
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
    Overrides,
    QuietOpt,
    ThreadsOpt,
    accel_options,
    app,
    console,
    frame_bars,
    load_options,
    optional_str,
    parse_candidates,
    stage_progress,
)
from talkfreq.errors import TalkfreqError, require_writable_dir
from talkfreq.models import registry


@app.command()
def evaluate(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="The real video (ground truth, always a row).")],
    candidate: Annotated[list[str], typer.Option("--candidate", help="NAME=PATH of a video to score; repeat the option for each.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder: metrics.csv/json, figures/, compare.mp4, report.html.")],
    overrides: Overrides = None,
    config: ConfigOpt = None,
    syncnet: Annotated[Optional[list[Path]], typer.Option("--syncnet", help="A `talkfreq train syncnet` model/ folder, the original syncnet_v2.model or Wav2Lip's lipsync_expert.pth: adds LSE-D/LSE-C. Repeat it for an ensemble of experts of one kind (e.g. seeds): LSE of the mean distances of those that find the real clip at offset 0.")] = None,
    vgg16: Annotated[Optional[Path], typer.Option("--vgg16", help="torchvision VGG16 weights: adds LPIPS (else $TALKFREQ_VGG16).")] = None,
    inception: Annotated[Optional[Path], typer.Option("--inception", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth: adds FID (else $TALKFREQ_INCEPTION).")] = None,
    refiner: Annotated[Optional[Path], typer.Option(help="A refiner model/ folder or .ckpt: adds its NRoUB numbers.")] = None,
    video: Annotated[Optional[bool], typer.Option("--video/--no-video", help="Write the side-by-side compare.mp4 (default: on).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Face crop size in pixels for every metric (face.crop_size).")] = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score candidate videos against the real one (fidelity, frequency, sharpness, flicker, lip sync) and write
    metrics.csv, metrics.json, figures, the side-by-side video and report.html."""
    from talkfreq.report.evaluate import EvalConfig
    from talkfreq.report.evaluate import evaluate as run_evaluate

    cands = parse_candidates(candidate)
    experts = [str(p) for p in syncnet or []]
    cfg = load_options(EvalConfig, config, overrides, syncnet=experts[0] if experts else None,
                       syncnet_ensemble=experts[1:] or None, vgg16=optional_str(vgg16),
                       refiner=optional_str(refiner), write_video=video, face__crop_size=size, device=device,
                       inception=optional_str(inception))
    with frame_bars(quiet) as bar:
        res = run_evaluate(reference, cands, out=out, cfg=cfg, progress=stage_progress(
            bar, {"boxes": "faces (reference)", "evaluate": "metrics", "compare": "compare video"}))
    con = console()
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
    from talkfreq.report.compare_video import compare_video as run_compare
    from talkfreq.report.evaluate import EvalConfig

    if len(videos) < 2:
        raise TalkfreqError("compare-video: give the real video, then NAME=PATH for at least one candidate")
    cands = parse_candidates(videos[1:])
    inset_list = None
    if insets is not None:
        inset_list = [] if insets.strip().lower() in ("", "none") else [s.strip() for s in insets.split(",")]
    cfg = load_options(EvalConfig, config, [], video__labels=labels, video__insets=inset_list, video__zoom=zoom,
                       video__tile_height=height)
    with frame_bars(quiet) as bar:
        res = run_compare(videos[0], cands, out=out, cfg=cfg.video, face=cfg.face, regions=cfg.regions, fps=cfg.fps,
                          progress=stage_progress(bar, {"boxes": "faces (reference)", "compare": "compare video"}))
    zooms = ", ".join(f"{k} x{v:.1f}" for k, v in res.zooms.items()) or "none"
    console().print(
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
    device: DeviceOpt = None,
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

    def listed(text: Optional[str], kind=str):
        return None if text is None else [kind(t.strip()) for t in text.split(",") if t.strip()]

    try:
        batch_list = listed(batches, int)
    except ValueError as exc:
        raise TalkfreqError(f"--batches: comma-separated integers, got {batches!r}") from exc
    accel = {k.replace("__", "."): v for k, v in accel_options(dtype, compile_, channels_last, threads).items()}
    cfg = bench_config(config, overrides or [], quick=quick, video=optional_str(video), seconds=seconds,
                       pipelines=listed(pipelines), batches=batch_list, device=device, tiny=tiny or None, **accel)
    if json_path is not None:
        require_writable_dir(json_path.parent)  # before minutes of measuring, not after
    con = console()
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

