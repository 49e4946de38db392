"""The whole-job recipes: demo and personalize."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from talkfreq.cli._common import ConfigOpt, Overrides, QuietOpt, app, load_options
from talkfreq.errors import require_file

PERSONAL_MINUTES = 20.0  # personalize's default training budget: issue 13's per-identity CPU budget


def _personal_options(config, overrides, *, steps: Optional[int], minutes: float):
    """The per-identity recipe's DemoConfig: configs/personal at 256 px crops, steps fitted to ``minutes`` (the
    user's overrides come after the recipe's defaults, so they win)."""
    from talkfreq.demo import DemoConfig, personal_options

    defaults = personal_options()
    budget = None if steps is not None or minutes <= 0 else minutes
    return load_options(DemoConfig, config, [*defaults, *(overrides or [])], steps=steps, minutes=budget)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("outputs/demo"),
    overrides: Overrides = None,
    config: ConfigOpt = None,
    video: Annotated[Optional[Path], typer.Option(
        help="Run on your own talking-head clip instead of synth data: the per-identity recipe of "
             "`talkfreq personalize` (its 20 min budget).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps of every stage (default: the configs').")] = None,
    quick: Annotated[bool, typer.Option(help="Smoke run: 4 training steps per stage.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """The main job on built-in data: synth -> prepare -> train SyncNet, FREAK, refiner -> dub a held-out clip ->
    evaluate -> report.html and a side-by-side video. With --video, the same on your clip with the real-face
    recipe (= `talkfreq personalize CLIP`)."""
    from talkfreq.demo import DemoConfig, run_demo

    steps = 4 if quick else steps
    if video is None:
        cfg = load_options(DemoConfig, config, overrides, steps=steps)
    else:
        # the 64 px demo networks draw no usable mouth on a real face (benchmarks/RESULTS.md "demo"); the
        # per-identity recipe is the one measured on real clips
        require_file(video, "video")
        cfg = _personal_options(config, overrides, steps=steps, minutes=PERSONAL_MINUTES)
    run_demo(out=out, cfg=cfg, video=video, quiet=quiet)


@app.command()
def personalize(
    video: Annotated[Path, typer.Argument(help="One person's talking-head clip (a few seconds to minutes, speech).")],
    overrides: Overrides = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: outputs/personal/<clip name>).")] = None,
    config: ConfigOpt = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps of every stage (instead of --minutes).")] = None,
    minutes: Annotated[float, typer.Option(
        help="Wall minutes for FREAK + refiner on this machine: their steps are fitted to it by timing a few; "
             "0: the configs' own steps. Not used with --steps.")] = PERSONAL_MINUTES,
    quiet: QuietOpt = False,
) -> None:
    """A per-identity model from one clip: its first 80% trains a SyncNet scorer, FREAK and the restoring refiner
    (configs/personal) within a training budget, its last 20% is dubbed with its own audio and scored at 256 px ->
    runs/*/model and report.html. Results: benchmarks/RESULTS.md "personal"."""
    from talkfreq.demo import run_demo

    require_file(video, "video")
    cfg = _personal_options(config, overrides, steps=steps, minutes=minutes)
    run_demo(out=out or Path("outputs/personal") / video.stem, cfg=cfg, video=video, quiet=quiet)
