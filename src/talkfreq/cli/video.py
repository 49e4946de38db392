"""The commands that write a video with trained models: refine and infer."""

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
    FidelityOpt,
    Overrides,
    ThreadsOpt,
    accel_options,
    app,
    console,
    frame_bars,
    load_options,
    stage_progress,
    written_size,
)
from talkfreq.errors import TalkfreqError
from talkfreq.models import registry

_GENERATORS = "/".join(registry.class_names("generator"))  # the registry's table: no torch import


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
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    compile_: CompileOpt = None,
    channels_last: ChannelsLastOpt = None,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Refine the face of any talking-head video with a trained SOVQAE refiner; keeps fps, duration and audio."""
    from talkfreq.config import split_overrides
    from talkfreq.pipeline.refine import RefineConfig
    from talkfreq.pipeline.refine import refine as run_refine

    paths, overrides = split_overrides(inputs)
    if len(paths) != 1:
        raise TalkfreqError(f"refine: expected one input video, got {len(paths)}")
    cfg = load_options(RefineConfig, config, overrides, batch_size=batch, region=region,
                       temporal_smoothing=temporal_smoothing, feather=feather, fidelity=fidelity, device=device,
                       **accel_options(dtype, compile_, channels_last, threads))
    with frame_bars(quiet) as bar:
        res = run_refine(paths[0], refiner=refiner, out=out, cfg=cfg, boxes_from=boxes_from,
                         progress=stage_progress(bar, {"boxes": "faces"}))
    flips = "n/a" if res.temporal_flip_rate != res.temporal_flip_rate else f"{res.temporal_flip_rate:.3f}"
    console().print(
        f"wrote {res.out}: {res.frames} frames at {res.fps:g} fps ({written_size(res)}), {res.refined} refined, "
        f"{res.no_face} without a face (unchanged), audio {'kept' if res.audio else 'none in input'}; "
        f"smoothing alpha {res.alpha:g}, code flips between frames {flips}; "
        f"{res.frames_per_second:.1f} frames/s end to end (boxes {res.seconds_boxes:.1f} s, refine "
        f"{res.seconds_refine:.1f} s)"
    )


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
    device: DeviceOpt = None,
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
    from talkfreq.pipeline.infer import InferConfig
    from talkfreq.pipeline.infer import infer as run_infer

    cfg = load_options(InferConfig, config, overrides, mode=mode, batch_size=batch, device=device,
                       face__face_index=face_index, box=_parse_box(box), reference=reference,
                       speech__model=speech_model, fidelity=fidelity,
                       **accel_options(dtype, compile_, channels_last, threads))
    with frame_bars(quiet, remaining=True) as bar:
        res = run_infer(face, audio=audio, stage1=stage1, refiner=refiner, out=out, cfg=cfg,
                        save_stage1=save_stage1, progress=stage_progress(bar, {"boxes": "faces"}))
    src = f"{res.source_frames}-frame video played forward-backward" if res.pingpong else (
        "a still" if res.source_frames == 1 else f"{res.source_frames}-frame video")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items())
    console().print(
        f"wrote {res.out}: {res.frames} frames at {res.fps:g} fps ({written_size(res)}), {res.mode} from {src}, "
        f"{res.generated} generated{' and refined' if res.refined else ''}, {res.no_face} without a face "
        f"(unchanged), audio {res.audio_seconds:.2f} s{' (silent: a resting mouth)' if res.silent else ''}"
        + (f"; stage 1 only: {res.stage1_out}" if res.stage1_out else "")
        + f"; {res.frames_per_second:.1f} frames/s end to end ({stages})",
        soft_wrap=True,  # one greppable line, whatever the terminal's width
    )
