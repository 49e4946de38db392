"""The whole-job recipes: demo and personalize."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from talkfreq.cli._common import ConfigOpt, Overrides, QuietOpt, app, load_options
from talkfreq.errors import require_file

PERSONAL_MINUTES = 20.0  # personalize's default training budget: issue 13's per-identity CPU budget


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("outputs/demo"),
    overrides: Overrides = None,
    config: ConfigOpt = None,
    video: Annotated[Optional[Path], typer.Option(help="Run on your own talking-head clip instead of synth data.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps of every stage (default: configs/demo).")] = None,
    quick: Annotated[bool, typer.Option(help="Smoke run: 4 training steps per stage.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """The main job on built-in data: synth -> prepare -> train SyncNet, FREAK, refiner -> dub a held-out clip ->
    evaluate -> report.html and a side-by-side video."""
    from talkfreq.demo import DemoConfig, run_demo

    cfg = load_options(DemoConfig, config, overrides, steps=4 if quick else steps)
    if video is not None:
        require_file(video, "video")
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
    from talkfreq.demo import PERSONAL_CONFIGS, PERSONAL_CROP, DemoConfig, run_demo

    require_file(video, "video")
    defaults = [f"configs={PERSONAL_CONFIGS}", f"crop_size={PERSONAL_CROP}"]  # before the user's: those win
    budget = None if steps is not None or minutes <= 0 else minutes
    cfg = load_options(DemoConfig, config, [*defaults, *(overrides or [])], steps=steps, minutes=budget)
    run_demo(out=out or Path("outputs/personal") / video.stem, cfg=cfg, video=video, quiet=quiet)
