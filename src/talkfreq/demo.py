"""``talkfreq demo``: the main job on the built-in synthetic data, end to end, on a CPU in minutes.

synth → prepare → train a tiny SyncNet expert, a tiny FREAK and a tiny SOVQAE refiner (the refiner on one identity's
clean frames) → dub a held-out clip of that identity with its own audio (stage 1 alone, and stage 1 + refiner) →
evaluate both against the real clip → ``<out>/report/report.html`` and the side-by-side ``compare.mp4``.

The held-out clip is set aside before ``prepare``, so no network sees it in training. ``video`` runs the same on a
user's own talking-head clip: its first 80% trains, its last 20% is dubbed and evaluated. The network settings live
in ``configs/demo/*.yaml``; ``steps`` (if set) overrides every stage's ``trainer.max_steps`` (``--quick`` for a smoke
run). Re-running reuses finished steps (prepared clips, runs trained with the same config), so an interrupted demo
resumes.

The steps are public functions (:func:`make_split` = :func:`synth_with_heldout` or :func:`split_user_video`,
:func:`prepare_inputs`, :func:`run_config` + :func:`train_or_reuse` (or :func:`trained_model` for a
:class:`RunSpec`), :func:`dub`, :func:`evaluate_dubs`): ``experiments/e2e_vs_postprocessed.py`` and
``experiments/ablations.py`` run the same pipeline with more models (their command line:
:mod:`talkfreq.cli.experiment`). A library module never imports them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from talkfreq.config import packaged_config, resolve_config_path
from talkfreq.data.synth import SynthConfig, run_synth
from talkfreq.io.files import write_json

REPO_CONFIGS = packaged_config("demo")  # the package's own: an installed talkfreq runs its demo from any folder
PERSONAL_CONFIGS = packaged_config("personal")  # ``talkfreq personalize``: the per-identity recipe
PERSONAL_CROP = 256  # its prepared crops: the networks train at 128 px, ``evaluate`` scores at 256 (less hides blur)
# the recipe's report scorers (DemoConfig.scorers): single seeds of its expert put one edtalk refiner's LSE-C change
# anywhere from -7.9 % to +12.5 %, two disjoint 3-seed ensembles at +4.5 % and +2.1 % (benchmarks/RESULTS.md "An
# ensemble of scorers"); each costs ~1.2-2.4 CPU min, outside the training budget
PERSONAL_SCORERS = 3
SCORER = re.compile(r"syncnet_s[1-9]\d*")  # the run (and DemoConfig.models key) of each scorer after the first
HELD_OUT_FRACTION = 0.2  # of a user's clip: the tail that is dubbed and evaluated, never trained on
FINISHED_FILE = "finished.json"  # in a run folder, written last: the requested config and the training seconds
# the new-audio check pools stretches of other speech until it has this much (one is the held-out clip's length),
# at most NEW_AUDIO_WINDOWS of them (each costs two dubs and two evaluations): on the demo's 4 s clip one stretch
# left the verdict to a single stretch's noise (benchmarks/RESULTS.md "demo"); edtalk's 12 s held-out part needs one
NEW_AUDIO_SECONDS = 12.0
NEW_AUDIO_WINDOWS = 3
BUDGET_FILE = "budget.json"  # in the runs folder: the steps a training budget chose (talkfreq.training.budget)
Experts = Optional[Path | Sequence[Path]]  # the report's SyncNet expert, or several (an ensemble), or none


@dataclass
class DemoConfig:
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(identities=2, clips_per_identity=3, seconds=4.0,
                                                                   frame_size=128))
    crop_size: int = 96  # prepared face crops; the demo networks resize to their own 64 px
    identity: str = "id00"  # the refiner's identity, and whose last clip is held out
    steps: Optional[int] = None  # overrides trainer.max_steps of every stage (None: the configs' own)
    # folder with syncnet.yaml, freak.yaml, refiner.yaml (and guide.yaml where freak.yaml has a sync term)
    configs: str = str(REPO_CONFIGS)
    # dotted overrides per network, by config name: {"freak": ["trainer.max_steps=500"], "refiner": [...]}
    overrides: dict[str, list[str]] = field(default_factory=dict)
    # finished model/ folders used as they are instead of training, by config name: {"freak": "runs/freak/model"}
    models: dict[str, str] = field(default_factory=dict)
    # a wall-clock budget for FREAK, its outputs for the refiner and the refiner, turned into their step counts on
    # this machine (talkfreq.training.budget; None: the configs' steps). The SyncNet scorer only scores the report
    # and keeps its steps; so does the guide expert of FREAK's sync term, if any.
    minutes: Optional[float] = None
    # FREAK's part of the budget left when it is planned (the refiner gets the rest): the split of the personal
    # recipe's measured runs (benchmarks/RESULTS.md "personal")
    stage1_share: float = 0.55
    # dub the held-out face with the speaker's other speech too, and check that the refiner keeps stage 1's timing
    # there (talkfreq.report.new_audio): own-audio scores cannot tell sharpening from redrawing the original mouth
    new_audio: bool = True
    new_audio_windows: int = NEW_AUDIO_WINDOWS  # at most this many stretches of it (NEW_AUDIO_SECONDS in all)
    # SyncNet scorers of the report: syncnet.yaml trained with seeds seed, seed + 1, ... (runs syncnet, syncnet_s1,
    # ...), LSE of their mean distances (report.sync_scoring.SyncEnsemble). Given models (syncnet, syncnet_s<i>)
    # replace the trained ones: with a given syncnet, only the given experts score.
    scorers: int = 1

    def __post_init__(self) -> None:
        if self.scorers < 1:
            from talkfreq.errors import ConfigError

            raise ConfigError(f"scorers must be >= 1, got {self.scorers}")


def personal_options() -> list[str]:
    """The per-identity recipe's :class:`DemoConfig` settings (``talkfreq personalize``, ``demo --video``,
    experiments/personal.py)."""
    return [f"configs={PERSONAL_CONFIGS}", f"crop_size={PERSONAL_CROP}", f"scorers={PERSONAL_SCORERS}"]


@dataclass
class Split:
    """What a pipeline run trains on and what it dubs."""

    target: Path  # the held-out clip (video with its own audio): dubbed and evaluated, never prepared
    inputs: list[Path]  # what ``prepare`` reads
    identities: list[str]  # whose clean frames the refiner learns


@dataclass
class RunSpec:
    """One network of an experiment: a run config file (relative to the repository root) and dotted overrides of
    it, or ``model``, a finished ``model/`` folder used as it is (nothing is trained)."""

    config: str = ""
    overrides: list[str] = field(default_factory=list)
    model: Optional[str] = None


@dataclass
class Trained:
    model: Path  # the run's model/ folder
    seconds: Optional[float]  # wall seconds the training took (also for a reused run); None: a given model
    reused: bool


def say(msg: str, *, who: str = "demo") -> None:
    from rich.console import Console
    from rich.markup import escape

    Console().print(f"[bold cyan]{who}[/bold cyan] {escape(msg)}")  # a path or a verdict may hold [brackets]


def synth_with_heldout(cfg: SynthConfig, *, identity: str, out: Path, quiet: bool = False,
                       who: str = "demo") -> Split:
    """Synthesise into ``out/synth`` (once) and move ``identity``'s last clip (and its ground truth) to
    ``out/heldout``."""
    from talkfreq.errors import TalkfreqError

    synth, held = out / "synth", out / "heldout"
    if not (synth / "synth.json").is_file():
        say("synthesising the built-in data", who=who)
        run_synth(cfg, out=synth, quiet=quiet)
    done = sorted(held.glob("*.mp4"))  # a re-run: the clip held out before (the identity now has one less)
    if done:
        return Split(target=done[0], inputs=[synth], identities=[identity])
    clips = sorted((synth / identity).glob("*.mp4")) if (synth / identity).is_dir() else []
    if len(clips) < 2:
        raise TalkfreqError(f"{synth}: identity {identity} needs at least 2 clips (one is held out)")
    held.mkdir(parents=True, exist_ok=True)
    for f in clips[-1].parent.glob(clips[-1].stem + ".*"):  # the clip and its ground truth
        shutil.move(str(f), held / f.name)
    return Split(target=held / clips[-1].name, inputs=[synth], identities=[identity])


def split_user_video(video: Path, *, out: Path) -> Split:
    """A user's clip → its first 80% (``out/user``, the training data and the refiner's identity) and its last 20%
    (``out/heldout``), each its own file with its own audio."""
    from talkfreq.io import VideoReader, VideoWriter, load_video_audio

    reader = VideoReader(video, fps=25.0)
    n = sum(1 for _ in VideoReader(video, fps=25.0, max_side=32))
    cut = int(n * (1.0 - HELD_OUT_FRACTION))
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
    return Split(target=paths["heldout"], inputs=[paths["train"]], identities=[paths["train"].stem])


def make_split(*, video: Optional[Path], synth: SynthConfig, identity: str, out: Path, quiet: bool = False,
               who: str = "demo") -> Split:
    """:func:`split_user_video` of ``video`` when given, else :func:`synth_with_heldout`."""
    if video is None:
        return synth_with_heldout(synth, identity=identity, out=out, quiet=quiet, who=who)
    from talkfreq.errors import require_file

    return split_user_video(require_file(video, "video"), out=out)


def prepare_inputs(inputs: Sequence[Path], *, out: Path, crop_size: int, overrides: Sequence[str] = (),
                   quiet: bool = False, who: str = "demo") -> Path:
    """``talkfreq prepare`` of ``inputs`` into ``out`` at ``crop_size`` px (finished clips are skipped)."""
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset

    say(f"preparing {', '.join(map(str, inputs))}", who=who)
    cfg = load_config(PrepareConfig, None, [*overrides], extra={"face.crop_size": crop_size})
    prepare_dataset(list(inputs), out=out, cfg=cfg, show_progress=not quiet)
    return out


def run_config(kind: str, file: str | Path, *, data: Path, runs: Path, name: str, steps: Optional[int] = None,
               overrides: Sequence[str] = ()) -> Any:
    """The run config of one training: ``file`` + ``overrides``, then the data, the run folder and (if given) the
    step count with validation and a checkpoint at the end."""
    from talkfreq.training.registry import load_run_config

    fixed = [f"data.root={data}", f"run.out_dir={runs}", f"run.name={name}", "run.resume=null"]
    if steps is not None:
        fixed += [f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(1, steps)}",
                  f"run.checkpoint_every_n_steps={max(1, steps)}"]
        planned = load_run_config(kind, file, list(overrides))
        start = phase_step(planned)
        if start:  # a refiner's restoration phase keeps its share of the steps
            fixed.append(f"denoise.start_step={round(start * steps / planned.trainer.max_steps)}")
    return load_run_config(kind, file, [*overrides, *fixed])


def phase_step(cfg: Any) -> int:
    """The step where a run's steps change kind (a refiner's ``denoise.start_step``), 0 for a run of one kind."""
    return int(getattr(getattr(cfg, "denoise", None), "start_step", 0) or 0)


def train_or_reuse(kind: str, cfg: Any, *, who: str = "demo", callbacks: Sequence[Any] = ()) -> Trained:
    """Train ``cfg`` (a ``kind`` run config), or reuse its run folder when a run with exactly this config finished
    there (ours: the requested config is stamped in ``finished.json`` after the model is saved, since the
    ``config.yaml`` a run writes holds values resolved from the data). A fresh run clears the folder first.
    ``callbacks``: more Lightning callbacks for a fresh run (a budget's :class:`~talkfreq.training.budget.Deadline`
    may end it at other steps than ``cfg``'s: the stamp keeps the requested config, which is what a re-run asks)."""
    from talkfreq.config import to_yaml
    from talkfreq.training.common import run_dir
    from talkfreq.training.registry import kind_module

    out = run_dir(cfg.run)
    stamp = out / FINISHED_FILE
    want = to_yaml(replace(cfg, logging=replace(cfg.logging, quiet=False)))  # --quiet trains the same model
    if (out / "model" / "config.json").is_file() and stamp.is_file():
        done = json.loads(stamp.read_text())
        if done.get("config") == want:
            say(f"{kind}: reusing {out / 'model'}", who=who)
            return Trained(model=out / "model", seconds=float(done["seconds"]), reused=True)
    shutil.rmtree(out, ignore_errors=True)  # no stale checkpoint, log or model of another config is picked up
    say(f"training {kind} {cfg.run.name} ({cfg.trainer.max_steps} steps)", who=who)
    t0 = time.perf_counter()
    kind_module(kind).fit(cfg, callbacks=list(callbacks))
    seconds = time.perf_counter() - t0
    write_json(stamp, {"config": want, "seconds": seconds})
    return Trained(model=out / "model", seconds=seconds, reused=False)


def trained_model(kind: str, spec: RunSpec, *, repo: Path, data: Path, runs: Path, name: str,
                  steps: Optional[int] = None, extra: Sequence[str] = (), who: str = "demo") -> Trained:
    """``spec.model`` when given, else :func:`train_or_reuse` of ``spec`` (paths relative to ``repo``) as run
    ``name``; ``extra`` overrides come after the spec's own."""
    from talkfreq.errors import TalkfreqError

    if spec.model:
        model = repo / spec.model  # an absolute path stays as it is
        if not (model / "config.json").is_file():
            raise TalkfreqError(f"{model}: not a model/ folder (no config.json) for the {name} network")
        say(f"{name}: using the given model {model}", who=who)
        return Trained(model=model, seconds=None, reused=True)
    cfg = run_config(kind, repo / spec.config, data=data, runs=runs, name=name, steps=steps,
                     overrides=[*spec.overrides, *extra])
    return train_or_reuse(kind, cfg, who=who)


def dub(target: Path, *, stage1, refiner, out_dir: Path, name: str, overrides: Sequence[str] = (),
        audio: Optional[Path] = None) -> tuple[Path, Optional[Path]]:
    """Dub ``target`` with its own audio (or ``audio``): ``out_dir/<name>.mp4`` (stage 1) and, with a refiner,
    ``out_dir/<name>_sovqae.mp4`` (stage 1 + refiner, from the same stage-1 frames)."""
    from talkfreq.config import load_config
    from talkfreq.pipeline.infer import InferConfig, infer

    out_dir.mkdir(parents=True, exist_ok=True)
    plain, refined = out_dir / f"{name}.mp4", (out_dir / f"{name}_sovqae.mp4" if refiner is not None else None)
    infer(target, audio=audio or target, stage1=stage1, refiner=refiner, out=refined or plain,
          save_stage1=plain if refined else None, cfg=load_config(InferConfig, None, [*overrides]))
    return plain, refined


def other_speech(split: Split, *, out: Path, windows: int = NEW_AUDIO_WINDOWS) -> list[tuple[Path, str, str]]:
    """Stretches of the held-out speaker's own speech from the training part, each as long as the held-out clip,
    enough for :data:`NEW_AUDIO_SECONDS` but at most ``windows`` - the "new audio" of :func:`check_new_audio`:
    ``[(out/new_audio_<i>.wav, the clip it came from, its span there)]``.

    A user's clip: consecutive stretches of its training part from the start. The synth folder: the identity's
    training clips, each from its start (one stretch per clip). Fewer where there is less speech; at least one (the
    first, cut short if the training part is shorter than the held-out clip)."""
    from talkfreq.data.prepared import write_wav
    from talkfreq.io import load_video_audio, probe
    from talkfreq.io.files import atomic_write

    sr, src = 16000, split.inputs[0]
    seconds = probe(split.target).duration
    n = int(round(seconds * sr))
    windows = max(1, min(windows, math.ceil(NEW_AUDIO_SECONDS / max(seconds, 1e-3) - 1e-6)))
    if src.is_dir():  # the synth folder: one stretch per training clip of the identity
        spans = [(clip, load_video_audio(clip, sample_rate=sr), 0)
                 for clip in sorted((src / split.identities[0]).glob("*.mp4"))[:windows]]
    else:
        wav = load_video_audio(src, sample_rate=sr)
        spans = [(src, wav, i * n) for i in range(max(1, min(windows, len(wav) // max(n, 1))))]
    found = []
    for i, (clip, wav, start) in enumerate(spans):
        piece = wav[start:start + n]
        if len(piece) < n and found:  # a short extra stretch would weigh as much as a full one
            continue
        path = out / f"new_audio_{i}.wav"
        atomic_write(path, lambda f, piece=piece: write_wav(f, piece, sr))
        found.append((path, clip.name, f"{start / sr:.1f}-{(start + len(piece)) / sr:.1f} s"))
    return found


def check_new_audio(split: Split, *, stage1, refiner, syncnet: Experts, out: Path, crop_size: int,
                    name: str = "freak", infer: Sequence[str] = (), evaluate: Sequence[str] = (),
                    label: str = "the refiner", windows: int = NEW_AUDIO_WINDOWS):
    """The new-audio check (:mod:`talkfreq.report.new_audio`): dub the held-out face with each stretch of
    :func:`other_speech`, without and with the refiner, and score the refined dub's mouth against the stage-1 one
    (no expert), and both dubs against the original frames with the expert (LSE against the new audio, and the
    original's own-audio LSE, which says whether the expert can judge at all); the check pools the stretches. Writes
    ``out/<name>_<i>.mp4`` / ``_<i>_sovqae.mp4`` / ``_<i>_vs_stage1/`` per stretch, ``out/<name>_vs_original`` (every
    stretch's two dubs as ``stage1_<i>`` / ``refined_<i>``) and ``out/<name>.json``; returns the
    :class:`~talkfreq.report.new_audio.NewAudioCheck`."""
    from talkfreq.errors import TalkfreqError
    from talkfreq.report.common import REFERENCE_NAME
    from talkfreq.report.new_audio import new_audio_check, not_measured
    from talkfreq.report.sync_scoring import lse_unreliable

    out.mkdir(parents=True, exist_ok=True)
    stretches = other_speech(split, out=out, windows=windows)
    source = ", ".join(f"{clip} {span}" if i == 0 or clip != stretches[i - 1][1] else span
                       for i, (_, clip, span) in enumerate(stretches))
    vs_stage1, dubs = [], {}
    kw = dict(refiner=None, crop_size=crop_size, overrides=evaluate, quiet=True)
    try:
        for i, (audio, _, _) in enumerate(stretches):
            plain, refined = dub(split.target, stage1=stage1, refiner=refiner, out_dir=out, name=f"{name}_{i}",
                                 overrides=infer, audio=audio)
            vs1 = evaluate_dubs(plain, {"refined": refined}, out=out / f"{name}_{i}_vs_stage1", syncnet=None, **kw)
            vs_stage1.append({r.name: r.values for r in vs1.rows})
            dubs.update({f"stage1_{i}": plain, f"refined_{i}": refined})
        # every stretch's dubs in one evaluation, so the original (its boxes, crops, own-audio LSE) is scored once
        rows = {r.name: r.values for r in evaluate_dubs(split.target, dubs, out=out / f"{name}_vs_original",
                                                        syncnet=syncnet, **kw).rows}
        vs_original = [{REFERENCE_NAME: rows[REFERENCE_NAME], "stage1": rows[f"stage1_{i}"],
                        "refined": rows[f"refined_{i}"]} for i in range(len(stretches))]
    except TalkfreqError as exc:  # a check of the report, never the end of the job (e.g. a face-less stage-1 dub)
        check = not_measured(audio=source, why=str(exc), name=label)
    else:
        check = new_audio_check(audio=source, vs_stage1=vs_stage1, vs_original=vs_original,
                                expert_unreliable=lse_unreliable(vs_original[0][REFERENCE_NAME]), name=label)
    write_json(out / f"{name}.json", check.to_dict())
    return check


def evaluate_dubs(target: Path, candidates: Mapping[str, Path], *, out: Path, syncnet: Experts,
                  refiner: Optional[Path], crop_size: int, overrides: Sequence[str] = (), quiet: bool = False,
                  notes: Sequence[str] = ()):
    """``talkfreq evaluate`` of ``candidates`` against the real ``target`` into ``out`` (report.html, metrics,
    figures, compare.mp4); LSE with the ``syncnet`` expert (or the ensemble of a list of them), NRoUB of the
    ``refiner``, ``notes`` in the report. Returns the EvalResult."""
    from talkfreq.config import load_config
    from talkfreq.report.evaluate import EvalConfig, evaluate

    experts = [str(p) for p in ([syncnet] if isinstance(syncnet, (str, Path)) else syncnet or [])]
    extra = {"syncnet": experts[0] if experts else None, "syncnet_ensemble": experts[1:] or None,
             "refiner": str(refiner) if refiner else None, "face.crop_size": crop_size}
    result = evaluate(target, dict(candidates), out=out, cfg=load_config(EvalConfig, None, [*overrides], extra=extra),
                      notes=notes)
    if not quiet:
        from rich.console import Console

        Console().print(result.table())
    return result


def stage1_pairs(refiner_cfg: Any, *, stage1: Path, data: Path, out: Path, quiet: bool = False) -> list[str]:
    """The override that points a refiner run at stage 1's outputs on its training frames, written first
    (``out/stage1_outputs/<digest of the stage-1 weights>``, reused when there), when its config asks for them
    (``data.stage1_prob`` > 0 or the sync-preservation term, and no ``data.stage1_outputs`` given); else nothing.
    The digest in the path makes a refiner trained on another generator's outputs a different run, so it is never
    reused by mistake."""
    wanted = refiner_cfg.data.stage1_prob > 0 or refiner_cfg.loss.sync_preserve > 0
    if not wanted or refiner_cfg.data.stage1_outputs:
        return []
    from talkfreq.pipeline.stage1_pairs import META_FILE, cached_stage1_outputs

    say(f"stage 1's outputs over its training frames for the refiner's pairs ({out / 'stage1_outputs'})")
    folder, written = cached_stage1_outputs(stage1, data=data, root=out / "stage1_outputs",
                                            val_fraction=refiner_cfg.data.val_fraction)
    if written and not quiet:
        clips = json.loads((folder / META_FILE).read_text())["clips"]
        for cid, v in clips.items():
            say(f"  {cid}: stage-1 mouth PSNR {v['mouth_psnr_train']:.2f} dB (trained frames), "
                f"{v['mouth_psnr_val']:.2f} dB (its validation frames)")
    return [f"data.stage1_outputs={folder}"]


def guide_for_stage1(stage1_cfg: Any, trained: Any) -> list[str]:
    """The override that gives a stage-1 config with a sync term (``loss.sync`` > 0, no ``loss.syncnet``) its
    expert: ``trained("syncnet", "guide.yaml")``, an expert other than the report's scorer; else nothing."""
    if stage1_cfg.loss.sync <= 0 or stage1_cfg.loss.syncnet:
        return []
    return [f"loss.syncnet={trained('syncnet', 'guide.yaml')}"]


def run_demo(*, out: Path, cfg: DemoConfig, video: Optional[Path] = None, quiet: bool = False) -> Path:
    """Run the whole demo into ``out``; returns the report's path."""
    from talkfreq.errors import ConfigError, require_writable_dir

    if cfg.minutes is not None and cfg.steps is not None:  # before minutes of synthesis and preparing
        raise ConfigError("give steps or minutes (a training budget), not both")
    for what, given in (("overrides", cfg.overrides), ("models", cfg.models)):
        unknown = sorted(k for k in set(given) - {"syncnet", "guide", "freak", "refiner"}
                         if what == "overrides" or not SCORER.fullmatch(k))
        if unknown:
            raise ConfigError(f"{what}: unknown network {unknown[0]!r} (syncnet, guide, freak or refiner)")
    out = require_writable_dir(out)
    runs, configs = out / "runs", resolve_config_path(cfg.configs)
    split = make_split(video=video, synth=cfg.synth, identity=cfg.identity, out=out, quiet=quiet)
    prep = prepare_inputs(split.inputs, out=out / "prepared", crop_size=cfg.crop_size, quiet=quiet)

    from talkfreq.errors import TalkfreqError
    from talkfreq.training.budget import PROBE_STEPS, Budget, seconds_per_step

    def run_cfg(kind: str, file: str, *overrides: str, steps: Optional[int] = cfg.steps, last: Sequence[str] = (),
                name: Optional[str] = None) -> Any:
        quieter = ["logging.quiet=true"] if quiet else []
        stem = Path(file).stem
        return run_config(kind, configs / file, data=prep, runs=runs, name=name or stem, steps=steps,
                          overrides=[*overrides, *cfg.overrides.get(stem, []), *last, *quieter])

    def trained(kind: str, file: str, *overrides: str, budget: Optional[Budget] = None, share: float = 1.0) -> Path:
        name = Path(file).stem
        if name in cfg.models:
            model = Path(cfg.models[name])
            if not (model / "config.json").is_file():
                raise TalkfreqError(f"{model}: not a model/ folder (no config.json) for the {name} network")
            say(f"{name}: using the given model {model}")
            return model
        steps = cfg.steps
        if budget is not None:
            def probe() -> float:
                say(f"{name}: timing {PROBE_STEPS} training steps for the budget")
                return seconds_per_step(kind, run_cfg(kind, file, *overrides, steps=PROBE_STEPS))

            nominal = run_cfg(kind, file, *overrides, steps=None).trainer.max_steps
            steps = budget.steps(name, probe=probe, share=share, nominal=nominal)
            say(f"{name}: {steps} steps fit the budget ({budget.left() / 60:.1f} of {budget.minutes:g} min left)")
        planned = run_cfg(kind, file, *overrides, steps=steps)
        # a refiner's pace changes at its switch to restoration: its run is re-planned only after it
        deadline = None if budget is None else budget.deadline_for(name, hold_until=phase_step(planned))
        run = train_or_reuse(kind, planned, callbacks=[deadline] if deadline else [])
        if budget is not None and run.seconds:
            budget.trained(name, run.seconds, deadline=None if run.reused else deadline)
            if deadline is not None and deadline.trained_steps not in (None, steps):
                say(f"{name}: re-planned inside the run to {deadline.trained_steps} steps (its pace)")
        return run.model

    expert = [trained("syncnet", "syncnet.yaml")]
    if "syncnet" in cfg.models:  # the given experts score alone (a published one may not mix with ours)
        expert += [Path(cfg.models[k]) for k in sorted(cfg.models, key=lambda k: (len(k), k)) if SCORER.fullmatch(k)]
    else:  # more seeds of the same scorer (after the user's overrides)
        seed = run_cfg("syncnet", "syncnet.yaml").trainer.seed
        for i in range(1, cfg.scorers):
            member = f"syncnet_s{i}"
            expert.append(Path(cfg.models[member]) if member in cfg.models else train_or_reuse(
                "syncnet", run_cfg("syncnet", "syncnet.yaml", last=[f"trainer.seed={seed + i}"], name=member)).model)
    budget = None if cfg.minutes is None else Budget(cfg.minutes, record=runs / BUDGET_FILE)
    # a given FREAK needs no expert to train with
    guide = [] if "freak" in cfg.models else guide_for_stage1(run_cfg("stage1", "freak.yaml"), trained)
    freak = trained("stage1", "freak.yaml", *guide, budget=budget, share=cfg.stage1_share)
    who = f"data.identities=[{','.join(split.identities)}]"
    # a given refiner needs no stage-1 outputs to train on
    pairs = [] if "refiner" in cfg.models else stage1_pairs(run_cfg("refiner", "refiner.yaml", who), stage1=freak,
                                                             data=prep, out=out, quiet=quiet)
    refiner = trained("refiner", "refiner.yaml", who, *pairs, budget=budget)
    notes = []
    if budget is not None:
        budget.close()
        say(f"training budget: {budget.plan['used_seconds'] / 60:.1f} of {budget.minutes:g} min used")
        if short := budget.shortfall():
            say(short)
            notes.append(f"Training: {short}.")

    say(f"dubbing the held-out clip {split.target.name} with its own audio")
    plain, refined = dub(split.target, stage1=freak, refiner=refiner, out_dir=out / "dubbed", name="freak")

    if cfg.new_audio:  # before the report, which states its verdict next to the table
        say("new-audio check: the held-out face dubbed with the speaker's other speech")
        check = check_new_audio(split, stage1=freak, refiner=refiner, syncnet=expert, out=out / "new_audio",
                                crop_size=cfg.crop_size, windows=cfg.new_audio_windows)
        say(check.verdict)
        notes.append(check.verdict)
    say("evaluating stage 1 and stage 1 + refiner against the real clip")
    evaluate_dubs(split.target, {"FREAK": plain, "FREAK+SOVQAE": refined}, out=out / "report", syncnet=expert,
                  refiner=refiner, crop_size=cfg.crop_size, quiet=quiet, notes=notes)
    report = out / "report" / "report.html"
    say(f"report: {report}")
    return report
