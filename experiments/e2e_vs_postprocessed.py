"""End to end vs post-processed: what does a SOVQAE refiner add over Wav2Lip and over FREAK? (issue 6)

For one identity: train (or load, ``model:`` in the config) a SyncNet expert, every stage-1 generator of ``stage1``
(Wav2Lip and FREAK) and one SOVQAE refiner per stage-1 face size on the identity's clean frames; dub a held-out
segment of the identity with its own audio by each generator, without and with the refiner (the refined video is made
from the same stage-1 frames); evaluate all of them against the real segment with
:func:`talkfreq.report.evaluate.evaluate` (``report/report.html``, ``metrics.csv/json``, figures and the side-by-side
``compare.mp4``). Prints one table - metric rows, one column per video plus the refiner's change (delta) per
generator, ``*`` the best candidate of a row - and writes ``results.json``.

The steps are those of ``talkfreq demo`` (:mod:`talkfreq.demo`): on the built-in synth data the identity's last
clip is held out before ``prepare``; with ``--video`` a user's clip is cut into its first 80% (training data, the
refiner's identity) and its last 20% (dubbed and evaluated). Runs trained with the same config are reused, so a
re-run only re-dubs and re-evaluates.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python experiments/e2e_vs_postprocessed.py [--quick] [--steps N]
        [--video CLIP.mp4] [--out DIR] [-c configs/experiments/e2e_vs_postprocessed.yaml] [key=value ...]
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

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
DEFAULT_CONFIG = REPO / "configs" / "experiments" / "e2e_vs_postprocessed.yaml"
DEFAULT_OUT = REPO / "outputs" / "experiments" / "e2e_vs_postprocessed"
WHO = "e2e"
REFINED = "+SOVQAE"  # a refined candidate's name = its generator's name + this


@dataclass
class RefinerSpec:
    """The refiner: one per stage-1 face size, each this run config with ``data.image_size`` set to that size."""

    config: str = ""
    overrides: list[str] = field(default_factory=list)
    size_overrides: dict[int, list[str]] = field(default_factory=dict)  # more overrides for one face size
    models: dict[int, str] = field(default_factory=dict)  # face size -> a finished refiner model/ folder
    # one refiner per generator instead of per face size, each trained on its own generator's outputs over the
    # training frames (talkfreq.pipeline.stage1_pairs) as the share data.stage1_prob (> 0 in overrides) of its inputs
    per_generator: bool = False


@dataclass
class ExperimentConfig:
    """``configs/experiments/e2e_vs_postprocessed*.yaml`` (the comments there say why each value)."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    identity: str = "id00"  # the refiner's identity, whose last synth clip is held out
    crop_size: int = 96  # prepared crops and the evaluation's metric crops
    threads: int = 0  # torch threads (0: torch's default)
    steps: Optional[int] = None  # overrides trainer.max_steps of every training (smoke runs)
    prepare: list[str] = field(default_factory=list)  # overrides of talkfreq.data.prepare.PrepareConfig
    syncnet: RunSpec = field(default_factory=RunSpec)
    stage1: dict[str, RunSpec] = field(default_factory=dict)  # candidate name -> generator
    refiner: RefinerSpec = field(default_factory=RefinerSpec)
    infer: list[str] = field(default_factory=list)  # overrides of talkfreq.pipeline.infer.InferConfig
    evaluate: list[str] = field(default_factory=list)  # overrides of talkfreq.report.evaluate.EvalConfig
    # each generator and its refiner also dub the held-out face with the speaker's other speech: does the refiner
    # keep the generator's timing there (talkfreq.report.new_audio)?
    new_audio: bool = True
    quick: list[str] = field(default_factory=list)  # --quick: experiment overrides of a smoke run


# -- pure functions (imported by the tests) --------------------------------------------------------------------


def run_name(candidate: str) -> str:
    """A folder-safe run / file name of a candidate ("Wav2Lip" -> "wav2lip")."""
    return re.sub(r"[^a-z0-9]+", "_", candidate.lower()).strip("_") or "model"


def candidate_names(stage1: list[str]) -> list[str]:
    """Each generator, then the same generator + refiner: the report's row order."""
    return [n for s in stage1 for n in (s, s + REFINED)]


def refiner_effect(values: dict[str, dict[str, Optional[float]]], *, plain: str) -> dict[str, Optional[bool]]:
    """Per metric column: did the refiner improve ``plain``'s value, by the column's own rule (higher, lower, or
    closer to the real video's)? None where either value is missing or the column has no direction."""
    from talkfreq.report.common import REFERENCE_NAME
    from talkfreq.report.scoring import COLUMNS

    a, b, real = values[plain], values[plain + REFINED], values.get(REFERENCE_NAME, {})
    out: dict[str, Optional[bool]] = {}
    for c in COLUMNS:
        x, y = a.get(c.key), b.get(c.key)
        if c.direction is None or x is None or y is None or (c.direction == "ref" and real.get(c.key) is None):
            out[c.key] = None
        elif c.direction == "max":
            out[c.key] = y > x
        elif c.direction == "min":
            out[c.key] = y < x
        else:
            out[c.key] = abs(y - real[c.key]) < abs(x - real[c.key])
    return out


def format_table(values: dict[str, dict[str, Optional[float]]], *, stage1: list[str],
                 best: dict[str, list[str]]) -> str:
    """Plain text (pastes into RESULTS.md): a row per metric; columns real, then per generator: it, it + refiner,
    delta; ``*`` marks the best candidate of a row; ``+``/``-`` after a delta: the refiner helped / hurt there."""
    from talkfreq.report.common import REFERENCE_NAME
    from talkfreq.report.scoring import ARROWS, COLUMNS, format_value

    effects = {s: refiner_effect(values, plain=s) for s in stage1}
    cols = [REFERENCE_NAME] + [n for s in stage1 for n in (s, s + REFINED, f"delta {s}")]
    grid = [["metric", *cols]]
    for c in COLUMNS:
        cells = [f"{c.label} {ARROWS[c.direction]}".strip()]
        for col in cols:
            if col.startswith("delta "):
                s = col[len("delta "):]
                x, y = values[s].get(c.key), values[s + REFINED].get(c.key)
                mark = {True: "+", False: "-", None: " "}[effects[s][c.key]]
                signed = c.fmt if "{:+" in c.fmt else c.fmt.replace("{:", "{:+", 1)
                cells.append("" if x is None or y is None else signed.format(y - x) + mark)
            else:
                text = format_value(c.key, values[col].get(c.key))
                cells.append(text + ("*" if col in best.get(c.key, ()) else " "))
        grid.append(cells)
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    lines = ["  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
             for row in grid]
    lines.insert(1, "-" * len(lines[0]))
    for s in stage1:
        e = [v for v in effects[s].values() if v is not None]
        lines.append(f"refiner over {s}: better on {sum(e)} of {len(e)} metrics")
    return "\n".join(lines)


# -- the experiment --------------------------------------------------------------------------------------------


def e2e(config: ConfigOpt = None, out: OutOpt = None, video: VideoOpt = None, steps: StepsOpt = None,
        quick: QuickOpt = False, overrides: Overrides = None) -> int:
    """Train, dub and evaluate every generator without and with the refiner; print the table."""
    from talkfreq import demo
    from talkfreq.config import to_dict
    from talkfreq.errors import ConfigError
    from talkfreq.models.loading import load_stage1

    cfg = experiment_config(ExperimentConfig, config, DEFAULT_CONFIG, overrides, quick=quick, steps=steps)
    t_start = time.perf_counter()
    work = out or DEFAULT_OUT.with_name(DEFAULT_OUT.name + ("_quick" if quick else "")
                                        + (f"_{run_name(video.stem)}" if video else ""))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    split = demo.make_split(video=video, synth=cfg.synth, identity=cfg.identity, out=work, who=WHO)
    prep = demo.prepare_inputs(split.inputs, out=work / "prepared", crop_size=cfg.crop_size, overrides=cfg.prepare,
                               who=WHO)
    seconds: dict[str, Any] = {"prepared": time.perf_counter() - t_start, "train": {}}
    common = dict(repo=REPO, data=prep, runs=work / "runs", steps=cfg.steps, who=WHO)

    def get(kind: str, spec: RunSpec, name: str, *extra: str) -> Path:
        trained = demo.trained_model(kind, spec, name=name, extra=extra, **common)
        seconds["train"][name] = trained.seconds
        return trained.model

    expert = get("syncnet", cfg.syncnet, "syncnet")
    # a stage-1 config with a sync loss term trains against this expert (ignored where loss.sync is 0)
    stage1 = {n: get("stage1", spec, run_name(n), f"loss.syncnet={expert}") for n, spec in cfg.stage1.items()}
    sizes = {n: int(load_stage1(p).config.image_size) for n, p in stage1.items()}
    refiners: dict[str, Path] = {}  # candidate -> its refiner
    named: dict[str, Path] = {}  # run name -> refiner (one may serve several candidates)
    who = f"data.identities=[{','.join(split.identities)}]"
    if cfg.refiner.per_generator:
        for n, path in stage1.items():
            name, extra = f"refiner_{run_name(n)}", [f"data.image_size={sizes[n]}", who]
            spec = RunSpec(config=cfg.refiner.config,
                           overrides=[*cfg.refiner.overrides, *cfg.refiner.size_overrides.get(sizes[n], [])])
            # the run's config without its pairs: what stage1_pairs reads (its share, its validation split)
            rcfg = demo.run_config("refiner", REPO / spec.config, data=prep, runs=work / "runs", name=name,
                                   steps=cfg.steps, overrides=[*spec.overrides, *extra])
            if rcfg.data.stage1_prob <= 0:
                raise ConfigError("refiner.per_generator needs data.stage1_prob > 0 in refiner.overrides")
            pairs = demo.stage1_pairs(rcfg, stage1=path, data=prep, out=work)
            refiners[n] = named[name] = get("refiner", spec, name, *extra, *pairs)
    else:
        for size in sorted(set(sizes.values())):
            spec = RunSpec(config=cfg.refiner.config, model=cfg.refiner.models.get(size),
                           overrides=[*cfg.refiner.overrides, *cfg.refiner.size_overrides.get(size, [])])
            named[f"refiner_{size}"] = get("refiner", spec, f"refiner_{size}", f"data.image_size={size}", who)
        refiners = {n: named[f"refiner_{sizes[n]}"] for n in stage1}

    t = time.perf_counter()
    videos = {}
    infer = [*(o for o in cfg.prepare if o.startswith("speech.")), *cfg.infer]  # features as training made them
    for n, path in stage1.items():
        demo.say(f"dubbing {split.target.name} with {n} and {n}{REFINED} ({sizes[n]} px)", who=WHO)
        videos[n], videos[n + REFINED] = demo.dub(split.target, stage1=path, refiner=refiners[n],
                                                  out_dir=work / "dubbed", name=run_name(n), overrides=infer)
    seconds["dub"] = time.perf_counter() - t

    checks = {}
    if cfg.new_audio:  # before the report, which states their verdicts next to the table
        t = time.perf_counter()
        for n, path in stage1.items():
            checks[n] = demo.check_new_audio(split, stage1=path, refiner=refiners[n], syncnet=expert,
                                             out=work / "new_audio", crop_size=cfg.crop_size, name=run_name(n),
                                             infer=infer, evaluate=cfg.evaluate, label=f"the refiner over {n}")
        seconds["new_audio"] = time.perf_counter() - t

    t = time.perf_counter()
    demo.say("evaluating every video against the real segment", who=WHO)
    # the report holds one refiner's NRoUB numbers: the one of the generator with the largest face
    nroub_refiner = refiners[max(stage1, key=lambda n: sizes[n])]
    result = demo.evaluate_dubs(split.target, {n: videos[n] for n in candidate_names(list(stage1))},
                                out=work / "report", syncnet=expert, refiner=nroub_refiner,
                                crop_size=cfg.crop_size, overrides=cfg.evaluate, quiet=True,
                                notes=[c.verdict for c in checks.values()])
    seconds["evaluate"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start

    values = {r.name: r.values for r in result.rows}
    table = format_table(values, stage1=list(stage1), best=result.best)
    from rich.console import Console

    console = Console()
    console.print(table, highlight=False, soft_wrap=True, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    trained = sum(s for s in seconds["train"].values() if s)
    console.print(f"{result.scored} frames scored; wall minutes: training {trained / 60:.1f}, dubbing "
                  f"{seconds['dub'] / 60:.1f}, evaluation {seconds['evaluate'] / 60:.1f}, total "
                  f"{seconds['total'] / 60:.1f}", highlight=False, soft_wrap=True)
    results = {"target": str(split.target), "identities": split.identities, "frames_scored": result.scored,
               "values": values, "best": result.best,
               "refiner_effect": {s: refiner_effect(values, plain=s) for s in stage1},
               "models": {"syncnet": str(expert), **{n: str(p) for n, p in stage1.items()},
                          **{name: str(p) for name, p in named.items()}},
               "new_audio": {n: c.to_dict() for n, c in checks.items()},
               "face_sizes": sizes, "seconds": seconds, "report": str(result.files.get("html", "")),
               "table": table, "config": to_dict(cfg)}
    demo.write_json(work / "results.json", results)
    console.print(f"wrote {work / 'results.json'}; report {work / 'report' / 'report.html'}", highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_experiment(e2e, argv, script=__file__, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
