"""``talkfreq demo``: the main job on the built-in synthetic data, end to end, on a CPU in minutes.

synth → prepare → train a tiny SyncNet expert, a tiny FREAK and a tiny SOVQAE refiner (the refiner on one identity's
clean frames) → dub a held-out clip of that identity with its own audio (stage 1 alone, and stage 1 + refiner) →
evaluate both against the real clip → ``<out>/report/report.html`` and the side-by-side ``compare.mp4``.

The held-out clip is set aside before ``prepare``, so no network sees it in training. ``video`` runs the same on a
user's own talking-head clip: its first 80% trains, its last 20% is dubbed and evaluated. The network settings live
in ``configs/demo/*.yaml``; ``steps`` (if set) overrides every stage's ``trainer.max_steps`` (``--quick`` for a smoke
run). Re-running reuses finished steps (prepared clips, trained ``model/`` folders), so an interrupted demo resumes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from talkfreq.data.synth import SynthConfig

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "demo"


@dataclass
class DemoConfig:
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(identities=2, clips_per_identity=3, seconds=4.0,
                                                                   frame_size=128))
    crop_size: int = 96  # prepared face crops; the demo networks resize to their own 64 px
    identity: str = "id00"  # the refiner's identity, and whose last clip is held out
    steps: Optional[int] = None  # overrides trainer.max_steps of every stage (None: the configs' own)
    configs: str = str(REPO_CONFIGS)  # folder with syncnet.yaml, freak.yaml, refiner.yaml


def _say(msg: str) -> None:
    from rich.console import Console

    Console().print(f"[bold cyan]demo[/bold cyan] {msg}")


def _train(kind: str, cfg: DemoConfig, config_name: str, *, data: Path, runs: Path, extra: list[str]) -> Path:
    from talkfreq.training.registry import train

    model = runs / Path(config_name).stem / "model"
    if (model / "config.json").is_file():
        _say(f"{kind}: reusing {model}")
        return model
    overrides = [f"run.out_dir={runs}", f"run.name={Path(config_name).stem}", *extra]
    if cfg.steps is not None:
        overrides += [f"trainer.max_steps={cfg.steps}", f"trainer.val_check_interval={max(1, cfg.steps)}",
                      f"run.checkpoint_every_n_steps={max(1, cfg.steps)}"]
    _say(f"training {kind} ({config_name})")
    run = train(kind, Path(cfg.configs) / config_name, overrides, extra={"data.root": str(data)})
    return run / "model"


def run_demo(*, out: Path, cfg: DemoConfig, video: Optional[Path] = None, quiet: bool = False) -> Path:
    """Run the whole demo into ``out``; returns the report's path."""
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset
    from talkfreq.errors import require_writable_dir
    from talkfreq.pipeline.infer import InferConfig, infer
    from talkfreq.report.evaluate import EvalConfig, evaluate

    out = require_writable_dir(out)
    runs = out / "runs"
    if video is None:
        from talkfreq.cli import run_synth

        synth = out / "synth"
        held = out / "heldout"
        if not (synth / "synth.json").is_file():
            _say("synthesising the built-in data")
            run_synth(cfg.synth, out=synth, quiet=quiet)
        clips = sorted((synth / cfg.identity).glob("*.mp4")) if (synth / cfg.identity).is_dir() else []
        target = held / clips[-1].name if clips else held / f"{cfg.identity}_heldout.mp4"
        if not target.is_file():
            held.mkdir(parents=True, exist_ok=True)
            if len(clips) < 2:
                from talkfreq.errors import TalkfreqError

                raise TalkfreqError(f"{synth}: identity {cfg.identity} needs at least 2 clips (one is held out)")
            for f in clips[-1].parent.glob(clips[-1].stem + ".*"):  # the clip and its ground truth
                shutil.move(str(f), held / f.name)
        inputs, identities = [synth], [cfg.identity]
    else:
        target, inputs, identities = _split_user_video(video, out=out)
    _say(f"preparing {', '.join(map(str, inputs))}")
    prep = out / "prepared"
    pcfg = load_config(PrepareConfig, None, [f"face.crop_size={cfg.crop_size}"])
    prepare_dataset(inputs, out=prep, cfg=pcfg, show_progress=not quiet)

    expert = _train("syncnet", cfg, "syncnet.yaml", data=prep, runs=runs, extra=[])
    freak = _train("stage1", cfg, "freak.yaml", data=prep, runs=runs, extra=[])
    refiner = _train("refiner", cfg, "refiner.yaml", data=prep, runs=runs,
                     extra=[f"data.identities=[{','.join(identities)}]"])

    _say(f"dubbing the held-out clip {target.name} with its own audio")
    dubbed = out / "dubbed"
    dubbed.mkdir(exist_ok=True)
    infer(target, audio=target, stage1=freak, refiner=refiner, out=dubbed / "freak_sovqae.mp4",
          save_stage1=dubbed / "freak.mp4", cfg=load_config(InferConfig))

    _say("evaluating stage 1 and stage 1 + refiner against the real clip")
    ecfg = load_config(EvalConfig, None, [f"syncnet={expert}", f"refiner={refiner}", f"face.crop_size={cfg.crop_size}"])
    result = evaluate(target, {"FREAK": dubbed / "freak.mp4", "FREAK+SOVQAE": dubbed / "freak_sovqae.mp4"},
                      out=out / "report", cfg=ecfg)
    if not quiet:
        from rich.console import Console

        Console().print(result.table())
    report = out / "report" / "report.html"
    _say(f"report: {report}")
    return report


def _split_user_video(video: Path, *, out: Path) -> tuple[Path, list[Path], list[str]]:
    """A user's clip → (held-out last 20% as its own file, [training part], [identity])."""
    from talkfreq.io import VideoReader, VideoWriter, load_video_audio

    reader = VideoReader(video, fps=25.0)
    n = sum(1 for _ in VideoReader(video, fps=25.0, max_side=32))
    cut = int(n * 0.8)
    wav = load_video_audio(video, sample_rate=16000, duration=n / 25.0)
    parts = {"train": (0, cut), "heldout": (cut, n)}
    paths = {}
    for name, (a, b) in parts.items():
        folder = out / ("user" if name == "train" else "heldout")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{video.stem}_{name}.mp4"
        paths[name] = path
        if path.is_file():
            continue
        seg = wav[int(a / 25.0 * 16000): int(b / 25.0 * 16000)]
        with VideoWriter(path, fps=25.0, width=reader.width, height=reader.height, audio=seg, sample_rate=16000) as w:
            for i, frame in enumerate(VideoReader(video, fps=25.0)):
                if i >= b:
                    break
                if i >= a:
                    w.write(frame)
    return paths["heldout"], [paths["train"]], [paths["train"].stem]
