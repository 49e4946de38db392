"""Ablation runners of issue 6: one study per name, each ``configs/experiments/ablations/<study>.yaml``.

- ``vefm_avfm``: FREAK with both frequency modulators, without VEFM, without AVFM, without either
  (``freak.use_vefm`` / ``freak.use_avfm``);
- ``hubert_context``: FREAK on HuBERT features (``--speech-model DIR``, a local HuBERT folder: nothing is
  downloaded) for several context lengths ``data.context`` = K (a window of 2K+1 rows at 25 fps; FREAK's
  ``audio_len`` follows from it), beside the mel baseline;
- ``codebook_reg``: the SOVQAE refiner with and without the codebook regulariser (configs/refiner/tiny.yaml vs
  tiny_noreg.yaml).

Data as in ``talkfreq demo`` (:mod:`talkfreq.demo`): synth data with one identity's last clip held out before
``prepare``, or ``--video`` (first 80% trains, last 20% is held out). Every variant trains with the same seed, data
and steps. FREAK studies (``kind: stage1``) report per variant the validation L1 over the run's whole validation
split (its own mask mix) and, from dubbing the held-out clip with its own audio and scoring it with
:func:`talkfreq.report.evaluate.evaluate` (``report/report.html``), mouth-region PSNR, LSE-D / LSE-C with the trained
SyncNet expert and the spectrum gaps. Refiner studies (``kind: refiner``) degrade the held-out clip's clean crops
and report, per variant and degradation, the rows of :mod:`talkfreq.report.denoise_eval` (PSNR/SSIM, HF ratio,
NRoUB). Each prints one table and writes ``results.json`` into the work folder; runs with an unchanged config are
reused, so a re-run only re-evaluates.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python experiments/ablations.py STUDY [--quick] [--steps N]
        [--video CLIP.mp4] [--speech-model DIR] [--out DIR] [-c FILE] [key=value ...]
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from talkfreq.cli.experiment import (
    ConfigOpt,
    OutOpt,
    Overrides,
    QuickOpt,
    StepsOpt,
    VideoOpt,
    experiment_config,
    run_experiment,
)
from talkfreq.data.synth import SynthConfig
from talkfreq.demo import RunSpec

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "experiments" / "ablations"
DEFAULT_OUT = REPO / "outputs" / "experiments" / "ablations"
STUDIES = ("vefm_avfm", "hubert_context", "codebook_reg")
KINDS = ("stage1", "refiner")
WHO = "ablation"
# the evaluation columns a FREAK study's table shows (talkfreq.report.scoring keys)
EVAL_KEYS = ("psnr", "mouth_psnr", "lse_d", "lse_c", "spectrum_gap", "mouth_spectrum_gap")


@dataclass
class Variant:
    config: Optional[str] = None  # a run config file (relative to the repository root); None: the study's run_config
    overrides: list[str] = field(default_factory=list)  # after the study's ``common`` overrides


@dataclass
class AblationConfig:
    """``configs/experiments/ablations/*.yaml`` (the comments there say why each value)."""

    kind: str = "stage1"  # stage1: FREAK variants (dub + evaluate); refiner: refiner variants (degraded crops)
    synth: SynthConfig = field(default_factory=SynthConfig)
    identity: str = "id00"  # whose last synth clip is held out (and whose frames a refiner learns)
    crop_size: int = 96
    threads: int = 0  # torch threads (0: torch's default)
    steps: Optional[int] = None  # overrides trainer.max_steps of every training (smoke runs)
    prepare: list[str] = field(default_factory=list)  # overrides of talkfreq.data.prepare.PrepareConfig
    speech_model: Optional[str] = None  # a local HuBERT folder: prepare writes speech.npy with it
    syncnet: RunSpec = field(default_factory=RunSpec)  # stage1 studies: the LSE expert
    run_config: str = ""  # the run config file of every variant without its own (not `base`: that key
                          # makes a YAML file include another, see talkfreq.config.load_yaml)
    common: list[str] = field(default_factory=list)  # overrides of every variant's run config
    variants: dict[str, Variant] = field(default_factory=dict)
    infer: list[str] = field(default_factory=list)  # overrides of talkfreq.pipeline.infer.InferConfig
    evaluate: list[str] = field(default_factory=list)  # overrides of talkfreq.report.evaluate.EvalConfig
    degradations: dict[str, float] = field(default_factory=dict)  # refiner studies: kind -> fixed strength
    strip_frames: int = 4  # refiner studies: frames per row of strip.png
    quick: list[str] = field(default_factory=list)  # --quick: overrides of a smoke run


# -- pure functions (imported by the tests) --------------------------------------------------------------------


def variant_configs(cfg: AblationConfig, *, data: Path, runs: Path, identities: list[str]) -> dict[str, Any]:
    """The run config of every variant: its file (or ``run_config``), ``common``, its own overrides, then what the study
    fixes (data, run folder and name, steps; a refiner's identity)."""
    from talkfreq import demo
    from talkfreq.errors import ConfigError

    if cfg.kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {cfg.kind!r}")
    if not cfg.variants:
        raise ConfigError("variants: the study names no variant")
    fixed = [f"data.identities=[{','.join(identities)}]"] if cfg.kind == "refiner" else []
    return {name: demo.run_config(cfg.kind, REPO / (v.config or cfg.run_config), data=data, runs=runs, name=name,
                                  steps=cfg.steps, overrides=[*cfg.common, *v.overrides, *fixed])
            for name, v in cfg.variants.items()}


def needs_speech(run_configs: dict[str, Any]) -> list[str]:
    """The variants that train on HuBERT-style speech features."""
    return [n for n, c in run_configs.items() if getattr(getattr(c, "data", None), "audio", "mel") == "hubert"]


def format_stage1_table(rows: list[dict[str, Any]]) -> str:
    """Plain text: a row per variant - val L1, the :data:`EVAL_KEYS` columns, training minutes."""
    from talkfreq.report.scoring import ARROWS, COLUMNS, format_value

    cols = [c for c in COLUMNS if c.key in EVAL_KEYS]
    head = ["variant", "val L1 \u2193", *(f"{c.label} {ARROWS[c.direction]}" for c in cols), "train min"]
    grid = [head]
    for r in rows:
        minutes = r.get("train_seconds")
        grid.append([r["variant"], f"{r['val_l1']:.4f}", *(format_value(c.key, r.get(c.key)) for c in cols),
                     "given" if minutes is None else f"{minutes / 60:.1f}"])
    widths = [max(len(row[i]) for row in grid) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
             for row in grid]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


# -- the studies -----------------------------------------------------------------------------------------------


def val_l1(model_dir: Path, run_cfg) -> float:
    """Mean L1 (in [-1, 1] units) of a FREAK over its run's whole validation split (the run's mask mix, fixed
    references and masks per sample: what training's ``val/loss`` measures on ``limit_val_batches``)."""
    import torch

    from talkfreq.data.datasets import Stage1DataModule
    from talkfreq.models import FREAK
    from talkfreq.training.stage1 import image_size

    model = FREAK.from_pretrained(model_dir).eval()
    data = Stage1DataModule(run_cfg.data, image_size=image_size(run_cfg), seed=run_cfg.trainer.seed)
    total, n = 0.0, 0
    with torch.no_grad():
        for b in data.val_dataloader():
            fake = model(b["reference"], b["masked"], b["audio"], b["mask"])
            total += float((fake - b["target"]).abs().mean(dim=(1, 2, 3)).sum())
            n += len(fake)
    return total / n if n else math.nan


def stage1_study(cfg: AblationConfig, run_cfgs: dict[str, Any], *, split, prep: Path, work: Path,
                 prepare: list[str]) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """Train every FREAK variant, dub the held-out clip, evaluate: (rows, table, extra results). Dubbing makes
    speech features as ``prepare`` (its ``speech.*`` overrides) made them for training."""
    from talkfreq import demo

    speech = [o for o in prepare if o.startswith("speech.")]

    expert = demo.trained_model("syncnet", cfg.syncnet, repo=REPO, data=prep, runs=work / "runs", name="syncnet",
                                steps=cfg.steps, who=WHO)
    rows, videos = [], {}
    for name, rc in run_cfgs.items():
        trained = demo.train_or_reuse("stage1", rc, who=WHO)
        rows.append({"variant": name, "val_l1": val_l1(trained.model, rc), "train_seconds": trained.seconds})
        videos[name], _ = demo.dub(split.target, stage1=trained.model, refiner=None, out_dir=work / "dubbed",
                                   name=name, overrides=[*speech, *cfg.infer])
    demo.say(f"evaluating {len(videos)} variants against the real {split.target.name}", who=WHO)
    result = demo.evaluate_dubs(split.target, videos, out=work / "report", syncnet=expert.model, refiner=None,
                                crop_size=cfg.crop_size, overrides=cfg.evaluate, quiet=True)
    for r in rows:
        values = result.row(r["variant"]).values
        r.update({k: values.get(k) for k in EVAL_KEYS})
    extra = {"real": {k: result.row("real").values.get(k) for k in EVAL_KEYS}, "frames_scored": result.scored,
             "notes": result.notes, "report": str(result.files.get("html", "")), "syncnet": str(expert.model)}
    return rows, format_stage1_table(rows), extra


def heldout_crops(target: Path, *, work: Path, crop_size: int, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8 clean face crops of the held-out clip's frames with a face (prepared once)."""
    from talkfreq import demo
    from talkfreq.data.prepared import PreparedDataset
    from talkfreq.data.refiner_data import resize_uint8

    root = demo.prepare_inputs([target], out=work / "heldout_prepared", crop_size=crop_size, who=WHO)
    clip = PreparedDataset(root).clip(PreparedDataset(root).metas[0].clip_id)
    frames = np.asarray(clip.frames)[np.asarray(clip.valid, bool)]
    return np.stack([resize_uint8(f, size) for f in frames])


def refiner_study(cfg: AblationConfig, run_cfgs: dict[str, Any], *, split, work: Path
                  ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """Train every refiner variant on the identity's clean frames and test it on the held-out clip's crops under
    each fixed degradation: (rows, table, extra results); also writes ``strip.png``."""
    import cv2
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from talkfreq import demo
    from talkfreq.models.sovqae import SOVQAE
    from talkfreq.report.denoise_eval import denoise_rows, format_table, strip_image, target_met

    models, seconds = {}, {}
    for name, rc in run_cfgs.items():
        trained = demo.train_or_reuse("refiner", rc, who=WHO)
        models[name], seconds[name] = SOVQAE.from_pretrained(trained.model).eval(), trained.seconds
    rows: list[dict[str, Any]] = []
    cols = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*cols) as progress:
        task = progress.add_task("evaluate", total=len(models) * (1 + len(cfg.degradations)))
        crops: dict[int, np.ndarray] = {}  # per refiner size
        for name, model in models.items():
            size = int(model.config.image_size)
            if size not in crops:
                crops[size] = heldout_crops(split.target, work=work, crop_size=cfg.crop_size, size=size)
            rows += [{"run": name, **r} for r in denoise_rows(model, crops[size], cfg.degradations, progress, task)]
    strip = strip_image([(f"{r['run']} {r['degradation']}", *r["_images"]) for r in rows], frames=cfg.strip_frames)
    tmp = work / ".strip.tmp.png"
    cv2.imwrite(str(tmp), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    tmp.replace(work / "strip.png")
    plain = [{k: v for k, v in r.items() if not k.startswith("_")} | {"target": target_met(r)} for r in rows]
    return plain, format_table(rows), {"train_seconds": seconds, "strip": str(work / "strip.png")}


Study = enum.Enum("Study", {s: s for s in STUDIES}, type=str)


def ablation(study: Annotated[Study, typer.Argument(help="The study: configs/experiments/ablations/<STUDY>.yaml.",
                                                    show_default=False)],
             overrides: Overrides = None, config: ConfigOpt = None, out: OutOpt = None, video: VideoOpt = None,
             steps: StepsOpt = None, quick: QuickOpt = False,
             speech_model: Annotated[Optional[Path], typer.Option(
                 "--speech-model", help="A local HuBERT folder (speech_model).")] = None) -> int:
    """Train every variant of one study, evaluate them, print the table."""
    from rich.console import Console

    from talkfreq import demo
    from talkfreq.config import to_dict
    from talkfreq.errors import TalkfreqError

    study = study.value
    cfg = experiment_config(AblationConfig, config, CONFIGS / f"{study}.yaml", overrides, quick=quick, steps=steps,
                            speech_model=str(speech_model) if speech_model else None)
    t_start = time.perf_counter()
    work = (out or DEFAULT_OUT / (study + ("_quick" if quick else ""))).resolve()
    work.mkdir(parents=True, exist_ok=True)

    # the run configs are built (and checked) before anything is made; the refiner's identity is known later
    if needs_speech(variant_configs(cfg, data=work / "prepared", runs=work / "runs", identities=[])) and \
            not cfg.speech_model:
        raise TalkfreqError(f"{study}: variants train on HuBERT features (data.audio=hubert); pass "
                            f"--speech-model DIR (a local HuBERT folder, e.g. facebook/hubert-large-ls960-ft)")
    split = demo.make_split(video=video, synth=cfg.synth, identity=cfg.identity, out=work, who=WHO)
    run_cfgs = variant_configs(cfg, data=work / "prepared", runs=work / "runs", identities=split.identities)
    prepare = [*cfg.prepare, *(["speech.enabled=true", f"speech.model={cfg.speech_model}"] if cfg.speech_model
                               else [])]
    prep = demo.prepare_inputs(split.inputs, out=work / "prepared", crop_size=cfg.crop_size, overrides=prepare,
                               who=WHO)
    if cfg.kind == "stage1":
        rows, table, extra = stage1_study(cfg, run_cfgs, split=split, prep=prep, work=work, prepare=prepare)
    else:
        rows, table, extra = refiner_study(cfg, run_cfgs, split=split, work=work)
    seconds = time.perf_counter() - t_start

    console = Console()
    console.print(table, highlight=False, soft_wrap=True, markup=False)
    console.print(f"{study}: {len(cfg.variants)} variants, wall minutes {seconds / 60:.1f}", highlight=False)
    demo.write_json(work / "results.json", {"study": study, "target": str(split.target), "rows": rows,
                                            "table": table, "seconds": seconds, **extra, "config": to_dict(cfg),
                                            "run_configs": {n: to_dict(c) for n, c in run_cfgs.items()}})
    console.print(f"wrote {work / 'results.json'}", highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_experiment(ablation, argv, script=__file__, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
