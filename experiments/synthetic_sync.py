"""Do tiny stage-1 models learn lip sync from `talkfreq synth` data in CPU minutes? (issue 3, Acceptance)

Synthesizes a dataset whose mouth is an exact function of the audio (:mod:`talkfreq.data.synth`), prepares it, holds
out the last clip of every identity (``data.val_clips``: unseen audio and head motion of seen faces), then:

1. trains a tiny SyncNet expert and measures its accuracy on the held-out clips: every 5-frame window once with its
   own mel window and once with a mel window shifted by at least ``data.neg_min_shift`` frames (so exactly
   balanced), "in sync" when the sync probability (cosine) exceeds 0.5 — before and after training;
2. trains a tiny FREAK (mel audio, mixed half/full masks) and measures the validation L1 over every held-out frame
   (the run's own mask mix; the same fixed reference and mask per frame) at step 0 (the seeded initial weights
   ``fit`` starts from) and at the end;
3. trains the same FREAK with ``data.zero_audio=true`` (same seed, steps and samples) and, in dubbing mode (half
   mask) on every held-out frame, measures how far the generated mouth opening follows the truth openness: the
   Pearson r, per clip then averaged, of :func:`mouth_opening` on the generated crop with the synth ground truth.
   The measure is first checked on the real crops (its r with the truth must reach ``targets.measure_r``); each
   FREAK run sees the audio it was trained with (zeros for the ablation). LSE-D / LSE-C
   (:func:`talkfreq.metrics.sync.lse_scores`) with the trained expert's embeddings are added for real, audio and
   zeroed sequences.

Prints one table (numbers, targets, pass/fail) and writes ``results.json`` into the work folder. Nothing is tuned on
the held-out clips. Runs (and the data) are reused when their config is unchanged, so a re-run only re-evaluates.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python experiments/synthetic_sync.py [--steps-syncnet N]
        [--steps-freak N] [--minutes M] [--quick] [--out DIR] [-c configs/experiments/synthetic_sync.yaml]
        [key=value ...]   (experiment keys, e.g. synth.seconds=8 crop_size=64)
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from talkfreq.cli.experiment import ConfigOpt, Overrides, experiment_config, run_experiment
from talkfreq.data.synth import SynthConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "experiments" / "synthetic_sync.yaml"
DEFAULT_OUT = REPO / "outputs" / "experiments" / "synthetic_sync"
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601


@dataclass
class RunSpec:
    config: str  # a stage-1 run config file, relative to the repository root
    overrides: list[str] = field(default_factory=list)  # dotted keys of that run config


@dataclass
class Steps:
    syncnet: int = 450
    freak: int = 900


@dataclass
class MeasureConfig:
    half_width: float = 0.14
    half_height: float = 0.10
    dark_fraction: float = 0.55
    percentile: float = 90.0


@dataclass
class Targets:
    syncnet_accuracy: float = 0.8
    l1_drop: float = 0.5
    measure_r: float = 0.7


@dataclass
class ExperimentConfig:
    """``configs/experiments/synthetic_sync.yaml`` (the comments there say why each value)."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    crop_size: int = 96
    threads: int = 1
    steps: Steps = field(default_factory=Steps)
    syncnet: RunSpec = field(default_factory=lambda: RunSpec("configs/stage1/tiny_syncnet.yaml"))
    freak: RunSpec = field(default_factory=lambda: RunSpec("configs/stage1/tiny_freak.yaml"))
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    targets: Targets = field(default_factory=Targets)
    lse_vshift: int = 15
    eval_batch_size: int = 32
    budget_syncnet_share: float = 0.34
    quick: list[str] = field(default_factory=list)


# -- pure functions (imported by the tests) --------------------------------------------------------------------


def held_out_clips(metas) -> list[str]:
    """The last clip (by id) of every identity that has at least two, so every face is also seen in training."""
    by_id: dict[str, list[str]] = {}
    for m in metas:
        by_id.setdefault(m.identity, []).append(m.clip_id)
    return sorted(max(ids) for ids in by_id.values() if len(ids) > 1)


def truth_of(source: str | Path) -> dict[str, np.ndarray]:
    """The synth ground truth beside a clip's video: ``<dir>/<clip>.mp4`` -> ``<dir>/<clip>.truth.npz``."""
    with np.load(Path(source).with_suffix(".truth.npz")) as z:
        return {k: z[k] for k in z.files}


def to_crop(points: np.ndarray, boxes: np.ndarray, *, size: int) -> np.ndarray:
    """(N, 2) source-frame pixels -> pixels of the (size x size) crops of the (N, 4) [x0, y0, x1, y1] boxes."""
    lo, side = boxes[:, :2], boxes[:, 2:] - boxes[:, :2]
    return (np.asarray(points, np.float64) - lo) / side * size


def mouth_opening(frames: np.ndarray, centres: np.ndarray, *, cfg: MeasureConfig) -> np.ndarray:
    """(N,) mouth-opening score of (N, S, S, 3) uint8 crops: the fraction of dark pixels in a box around each
    (N, 2) mouth centre (crop pixels). Dark is relative to the box's own ``percentile`` luminance (the skin around
    the lips), so one threshold serves every skin tone; the synth mouth cavity is near black, the lips are not."""
    n, s = frames.shape[:2]
    out = np.zeros(n)
    for i in range(n):
        cx, cy = centres[i]
        x0, x1 = int(round(cx - cfg.half_width * s)), int(round(cx + cfg.half_width * s)) + 1
        y0, y1 = int(round(cy - cfg.half_height * s)), int(round(cy + cfg.half_height * s)) + 1
        y = frames[i, max(0, y0):y1, max(0, x0):x1].astype(np.float32) @ LUMA
        if y.size:
            out[i] = float((y < cfg.dark_fraction * np.percentile(y, cfg.percentile)).mean())
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; 0 when either side is constant (a mouth that never moves follows nothing)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def verdicts(r: dict[str, Any], t: Targets) -> dict[str, bool]:
    return {"syncnet_accuracy": r["syncnet"]["accuracy"] >= t.syncnet_accuracy,
            "l1_drop": r["freak"]["l1_drop"] >= t.l1_drop,
            "measure_valid": r["mouth"]["r_real"] >= t.measure_r,
            "audio_beats_zeroed": r["mouth"]["r_audio"] > r["mouth"]["r_zeroed"]}


def format_table(r: dict[str, Any], t: Targets) -> str:
    """The plain-text table of the results (pastes into RESULTS.md)."""
    ok = verdicts(r, t)
    s, f, m, lse = r["syncnet"], r["freak"], r["mouth"], r["lse"]
    mark = {True: "PASS", False: "FAIL"}
    rows = [
        ("SyncNet held-out accuracy (init -> trained)", f"{s['accuracy_init']:.3f} -> {s['accuracy']:.3f}",
         f">= {t.syncnet_accuracy:g}", mark[ok["syncnet_accuracy"]]),
        ("  in-sync / shifted windows correct", f"{s['tpr']:.3f} / {s['tnr']:.3f}", f"n = {s['windows']} x 2", ""),
        ("FREAK val L1 (step 0 -> end)", f"{f['l1_init']:.4f} -> {f['l1']:.4f}",
         f"drop >= {100 * t.l1_drop:.0f}%", mark[ok["l1_drop"]]),
        ("  L1 drop / half-mask L1 / full-mask L1", f"{100 * f['l1_drop']:.1f}% / {f['l1_half']:.4f} / "
         f"{f['l1_full']:.4f}", "", ""),
        ("FREAK zeroed-audio val L1 (end)", f"{f['l1_zeroed']:.4f}", "", ""),
        ("mouth measure vs truth, real crops (r)", f"{m['r_real']:.3f}", f">= {t.measure_r:g}",
         mark[ok["measure_valid"]]),
        ("mouth follows audio, dubbing (r): audio model", f"{m['r_audio']:.3f}", "> zeroed",
         mark[ok["audio_beats_zeroed"]]),
        ("                                  zeroed audio", f"{m['r_zeroed']:.3f}", "", ""),
        ("LSE-D real / audio / zeroed (lower = better)",
         f"{lse['real']['lse_d']:.3f} / {lse['audio']['lse_d']:.3f} / {lse['zeroed']['lse_d']:.3f}", "", ""),
        ("LSE-C real / audio / zeroed (higher = better)",
         f"{lse['real']['lse_c']:.3f} / {lse['audio']['lse_c']:.3f} / {lse['zeroed']['lse_c']:.3f}", "", ""),
    ]
    w = max(len(q) for q, *_ in rows)
    head = f"{'quantity':{w}}  {'value':>26}  {'target':>16}  result"
    return "\n".join([head, "-" * len(head)] + [f"{q:{w}}  {v:>26}  {tg:>16}  {p}" for q, v, tg, p in rows])


# -- data and training -----------------------------------------------------------------------------------------


def make_data(cfg: ExperimentConfig, work: Path, console) -> Path:
    """Synthesize and prepare into ``work`` (reused while the synth config and crop size are unchanged)."""
    from dataclasses import asdict

    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset
    from talkfreq.data.synth import synthesize

    stamp = work / "data.json"
    want = json.dumps({"synth": asdict(cfg.synth), "crop_size": cfg.crop_size}, sort_keys=True)
    root = work / "prepared"
    if stamp.is_file() and stamp.read_text() == want and (root / "index.json").is_file():
        console.log(f"reusing {root}")
        return root
    for d in (work / "synth", root):  # a changed config: nothing stale may be mixed in
        shutil.rmtree(d, ignore_errors=True)
    console.log(f"synthesizing {cfg.synth.identities} x {cfg.synth.clips_per_identity} clips of "
                f"{cfg.synth.seconds:g} s at {cfg.synth.frame_size} px, preparing {cfg.crop_size} px crops")
    synthesize(cfg=cfg.synth, out=work / "synth")
    prepare_dataset([work / "synth"], out=root, cfg=load_config(PrepareConfig, None,
                                                                 [f"face.crop_size={cfg.crop_size}"]),
                    show_progress=False)
    stamp.write_text(want)
    return root


def run_config(kind: str, spec: RunSpec, *, name: str, steps: int, root: Path, val_clips: list[str], work: Path,
               extra: tuple[str, ...] = ()):
    """The run config: ``spec``'s file and overrides, then what the experiment fixes (data, split, folder, steps)."""
    from talkfreq.training.registry import load_run_config

    fixed = [f"data.root={root}", f"data.val_clips=[{','.join(val_clips)}]", f"run.out_dir={work / 'runs'}",
             f"run.name={name}", f"trainer.max_steps={steps}", "run.resume=null", *extra]
    return load_run_config(kind, REPO / spec.config, [*spec.overrides, *fixed])


def train(kind: str, cfg, console) -> tuple[Path, dict[str, float]]:
    """Train one run, or reuse a finished run with exactly this config; (model folder, wall/CPU seconds)."""
    from talkfreq.config import to_yaml
    from talkfreq.training.common import run_dir
    from talkfreq.training.registry import kind_module

    out = run_dir(cfg.run)
    stamp = out / "train_seconds.json"
    if (out / "model" / "config.json").is_file() and stamp.is_file() and (out / "config.yaml").read_text() == \
            to_yaml(cfg):
        console.log(f"{cfg.run.name}: reusing {out} (same config)")
        return out / "model", json.loads(stamp.read_text())
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: no stale checkpoint or log is picked up
    console.log(f"{cfg.run.name}: training {cfg.trainer.max_steps} steps")
    t0, c0 = time.perf_counter(), time.process_time()
    kind_module(kind).fit(cfg)
    seconds = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    stamp.write_text(json.dumps(seconds))
    return out / "model", seconds


def seconds_per_step(kind: str, cfg, *, steps: int = 3) -> float:
    """Wall seconds of one training step (forward, backward, Adam) on real batches, after one warm-up step."""
    import torch

    from talkfreq.data.datasets import Stage1DataModule, SyncNetDataModule

    if kind == "syncnet":
        from talkfreq.training.syncnet import SyncNetModule

        module = SyncNetModule(cfg=cfg)
        data = SyncNetDataModule(cfg.data, image_size=cfg.model.image_size)
        loss = lambda b: module.scores(b)[0]  # noqa: E731
    else:
        from talkfreq.training.stage1 import Stage1Module, image_size, resolve_audio

        data = Stage1DataModule(cfg.data, image_size=image_size(cfg))
        module = Stage1Module(cfg=resolve_audio(cfg, speech_dim=data.speech_dim))
        loss = lambda b: module.losses(*module._frames(b), b)["loss"]  # noqa: E731
    opt = torch.optim.Adam(module.parameters(), lr=1e-4)
    batches = iter(data.train_dataloader())
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        loss(next(batches)).backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


# -- evaluation ------------------------------------------------------------------------------------------------


def eval_syncnet(model, data, segments, cfg) -> dict[str, float]:
    """Held-out accuracy of ``model``: each window with its own and with a shifted mel window (fixed shifts)."""
    import torch

    from talkfreq.data.datasets import SyncNetDataset, mel_tensor
    from talkfreq.models.syncnet import sync_probability

    ds = SyncNetDataset(data, segments, cfg=cfg.data, image_size=model.config.image_size, seed=cfg.trainer.seed,
                        val=True)
    p_pos, p_neg = [], []
    for lo in range(0, len(ds), 64):
        faces, pos, neg = [], [], []
        for i in range(lo, min(len(ds), lo + 64)):
            clip, t = ds._clip(ds.clip_ids[ds.clip_of[i]]), int(ds.starts[i])
            faces.append(ds.sample(i, rng=ds.rng(i))["faces"])
            shifts = np.arange(-t, len(clip) - t)
            shifts = shifts[np.abs(shifts) >= cfg.data.neg_min_shift]  # the training negatives' rule
            pos.append(mel_tensor(clip, t))
            neg.append(mel_tensor(clip, t + int(np.random.default_rng([cfg.trainer.seed, 3, i]).choice(shifts))))
        faces = torch.stack(faces)
        with torch.no_grad():
            p_pos.append(sync_probability(*model(faces, torch.stack(pos))))
            p_neg.append(sync_probability(*model(faces, torch.stack(neg))))
    tpr = float((torch.cat(p_pos) > 0.5).float().mean())
    tnr = float((torch.cat(p_neg) <= 0.5).float().mean())
    return {"accuracy": (tpr + tnr) / 2, "tpr": tpr, "tnr": tnr, "windows": len(ds)}


def generate(model, ds, *, batch_size: int) -> dict[str, np.ndarray]:
    """Every sample of a Stage1Dataset through ``model``, in dataset order (clip by clip, frame by frame):
    ``fake``/``real`` (N, S, S, 3) uint8, per-sample ``l1`` (N,) in [-1, 1] units, ``half`` (N,) bool mask kind."""
    import torch
    from torch.utils.data import default_collate

    from talkfreq.training.callbacks import to_uint8

    out: dict[str, list] = {"fake": [], "real": [], "l1": [], "half": []}
    for lo in range(0, len(ds), batch_size):
        b = default_collate([ds[i] for i in range(lo, min(len(ds), lo + batch_size))])
        with torch.no_grad():
            fake = model(b["reference"], b["masked"], b["audio"], b["mask"])
        out["l1"].append((fake - b["target"]).abs().mean(dim=(1, 2, 3)).numpy())
        out["half"].append(b["mask"].mean(dim=(1, 2, 3)).numpy() < 1.0)
        out["fake"].append(to_uint8(fake))
        out["real"].append(to_uint8(b["target"]))
    return {k: np.concatenate(v) for k, v in out.items()}


def val_set(data, segments, cfg, **data_changes):
    from talkfreq.data.datasets import Stage1Dataset

    return Stage1Dataset(data, segments, cfg=replace(cfg.data, **data_changes), image_size=cfg.freak.image_size,
                         seed=cfg.trainer.seed, val=True)


def lse_of(frames: np.ndarray, clip, expert, *, vshift: int) -> dict[str, float]:
    """LSE-D / LSE-C of one clip's (T, S, S, 3) uint8 crop sequence, embedded by the trained expert."""
    import torch
    import torch.nn.functional as F

    from talkfreq.audio.mel import MelConfig
    from talkfreq.metrics.sync import lse_scores, sync_embeddings
    from talkfreq.models.syncnet import stack_lower_halves

    s = expert.config.image_size

    def embed(faces: torch.Tensor, mel: torch.Tensor):
        b, w = faces.shape[:2]
        x = F.interpolate(faces.reshape(b * w, *faces.shape[2:]) * 2 - 1, size=(s, s), mode="bilinear",
                          align_corners=False, antialias=True)
        return expert(stack_lower_halves(x.reshape(b, w, 3, s, s)), mel[:, None])

    mel_cfg = MelConfig(sample_rate=clip.meta.sample_rate, hop_length=clip.meta.hop_length)
    a, v = sync_embeddings(frames, np.asarray(clip.mel), embed=embed, fps=clip.meta.fps, mel_cfg=mel_cfg)
    res = lse_scores(a, v, vshift=vshift)
    return {"lse_d": res.lse_d, "lse_c": res.lse_c, "offset": res.offset}


def eval_freak(models: dict[str, Any], cfgs: dict[str, Any], data, segments, expert, exp: ExperimentConfig,
               console) -> dict[str, Any]:
    """L1 (init, audio, zeroed; the run's mask mix), then dubbing: the mouth measure's r with truth openness on
    real and generated crops, per clip then averaged, and LSE-D/C of each sequence."""
    l1 = {}
    for name in ("init", "audio", "zeroed"):
        g = generate(models[name], val_set(data, segments, cfgs["zeroed" if name == "zeroed" else "audio"]),
                     batch_size=exp.eval_batch_size)
        l1[name] = {"all": float(g["l1"].mean()), "half": float(g["l1"][g["half"]].mean()),
                    "full": float(g["l1"][~g["half"]].mean())}
        console.log(f"val L1 {name}: {l1[name]['all']:.4f}")
    # dubbing: every held-out frame with a half mask; targets and references are the same for both runs
    seq: dict[str, np.ndarray] = {}
    for name in ("audio", "zeroed"):
        ds = val_set(data, segments, cfgs[name], p_half=1.0)
        g = generate(models[name], ds, batch_size=exp.eval_batch_size)
        seq["real"], seq[name] = g["real"], g["fake"]
    r: dict[str, list] = {k: [] for k in seq}
    lse: dict[str, list] = {k: [] for k in seq}
    for c, cid in enumerate(ds.clip_ids):
        rows = np.flatnonzero(ds.clip_of == c)
        t = ds.starts[rows]
        clip = ds._clip(cid)
        truth = truth_of(clip.meta.source)
        centres = to_crop(truth["mouth_center"][t], np.asarray(clip.boxes)[t], size=ds.image_size)
        openness = truth["openness"][t]
        for name, frames in seq.items():
            r[name].append(pearson(mouth_opening(frames[rows], centres, cfg=exp.measure), openness))
            if np.all(np.diff(t) == 1):  # LSE needs an unbroken frame sequence
                lse[name].append(lse_of(frames[rows], clip, expert, vshift=exp.lse_vshift))
        console.log(f"{cid}: mouth r real {r['real'][-1]:.3f}, audio {r['audio'][-1]:.3f}, "
                    f"zeroed {r['zeroed'][-1]:.3f}")
    mean_lse = {k: {m: float(np.mean([x[m] for x in v])) if v else float("nan") for m in ("lse_d", "lse_c")}
                for k, v in lse.items()}
    return {"freak": {"l1_init": l1["init"]["all"], "l1": l1["audio"]["all"], "l1_half": l1["audio"]["half"],
                      "l1_full": l1["audio"]["full"], "l1_zeroed": l1["zeroed"]["all"],
                      "l1_drop": 1.0 - l1["audio"]["all"] / l1["init"]["all"], "l1_detail": l1},
            "mouth": {f"r_{k}": float(np.mean(v)) for k, v in r.items()} | {"per_clip": r, "clips": ds.clip_ids},
            "lse": mean_lse}


def synthetic_sync(
        config: ConfigOpt = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", help=f"Work folder (default {DEFAULT_OUT.relative_to(REPO)}, or ..._quick with --quick).")] = None,
        steps_syncnet: Annotated[Optional[int], typer.Option(
            "--steps-syncnet", help="SyncNet training steps (steps.syncnet).")] = None,
        steps_freak: Annotated[Optional[int], typer.Option(
            "--steps-freak", help="Steps of each FREAK run (steps.freak).")] = None,
        minutes: Annotated[Optional[float], typer.Option(
            "--minutes", help="Total training budget in CPU minutes: steps are set from a timing of each model's "
                              "step.")] = None,
        quick: Annotated[bool, typer.Option(
            "--quick", help="A smoke run on tiny sizes (the YAML's `quick` list).")] = False,
        overrides: Overrides = None) -> int:
    """Train the expert and both FREAKs, evaluate them on the held-out clips, print the table."""
    import lightning as L
    from rich.console import Console

    from talkfreq.config import to_dict
    from talkfreq.data.datasets import split_segments
    from talkfreq.data.prepared import PreparedDataset
    from talkfreq.models import FREAK, SyncNet

    cfg = experiment_config(ExperimentConfig, config, DEFAULT_CONFIG, overrides, quick=quick,
                            steps__syncnet=steps_syncnet, steps__freak=steps_freak)
    console = Console()
    t_start, c_start = time.perf_counter(), time.process_time()
    work = (out or (DEFAULT_OUT.with_name(DEFAULT_OUT.name + "_quick") if quick else DEFAULT_OUT))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    root = make_data(cfg, work, console)
    data = PreparedDataset(root)
    val_clips = held_out_clips(data.metas)
    console.log(f"{len(data)} clips; held out: {', '.join(val_clips)}")

    def configs(steps: Steps) -> dict[str, Any]:
        common = dict(steps=steps.freak, root=root, val_clips=val_clips, work=work)
        return {"syncnet": run_config("syncnet", cfg.syncnet, name="syncnet", steps=steps.syncnet, root=root,
                                      val_clips=val_clips, work=work),
                "audio": run_config("stage1", cfg.freak, name="freak_audio", **common),
                "zeroed": run_config("stage1", cfg.freak, name="freak_zeroed", extra=("data.zero_audio=true",),
                                     **common)}

    steps = cfg.steps
    if minutes is not None:
        cfgs = configs(steps)
        budget = minutes * 60
        per = {k: seconds_per_step("syncnet" if k == "syncnet" else "stage1", cfgs[k]) for k in ("syncnet", "audio")}
        steps = Steps(syncnet=max(1, int(budget * cfg.budget_syncnet_share / per["syncnet"])),
                      freak=max(1, int(budget * (1 - cfg.budget_syncnet_share) / 2 / per["audio"])))
        console.log(f"--minutes {minutes:g}: {per['syncnet']:.3f} / {per['audio']:.3f} s per SyncNet / FREAK "
                    f"step -> {steps.syncnet} / {steps.freak} steps")
    cfgs = configs(steps)

    seconds, paths = {}, {}
    for name, kind in (("syncnet", "syncnet"), ("audio", "stage1"), ("zeroed", "stage1")):
        paths[name], seconds[name] = train(kind, cfgs[name], console)
    expert = SyncNet.from_pretrained(paths["syncnet"]).eval()
    L.seed_everything(cfgs["syncnet"].trainer.seed, verbose=False)  # fit() builds its model right after this
    expert_init = SyncNet(config=expert.config).eval()
    models = {"audio": FREAK.from_pretrained(paths["audio"]).eval(),
              "zeroed": FREAK.from_pretrained(paths["zeroed"]).eval()}
    L.seed_everything(cfgs["audio"].trainer.seed, verbose=False)
    models["init"] = FREAK(config=models["audio"].config).eval()

    t_eval, c_eval = time.perf_counter(), time.process_time()
    _, segments, _ = split_segments(data, holdout_fraction=cfgs["audio"].data.holdout_fraction, val_clips=val_clips)
    result: dict[str, Any] = {"syncnet": eval_syncnet(expert, data, segments, cfgs["syncnet"])}
    result["syncnet"]["accuracy_init"] = eval_syncnet(expert_init, data, segments, cfgs["syncnet"])["accuracy"]
    console.log(f"SyncNet held-out accuracy {result['syncnet']['accuracy']:.3f}")
    result |= eval_freak(models, cfgs, data, segments, expert, cfg, console)
    seconds["eval"] = {"wall": time.perf_counter() - t_eval, "cpu": time.process_time() - c_eval}

    table = format_table(result, cfg.targets)
    console.print(table, highlight=False, soft_wrap=True)
    ok = verdicts(result, cfg.targets)
    total = {"wall": time.perf_counter() - t_start, "cpu": time.process_time() - c_start}
    trained_cpu = sum(s["cpu"] for k, s in seconds.items() if k != "eval")
    console.print(f"targets: {', '.join(f'{k} {chr(10003) if v else chr(10007)}' for k, v in ok.items())} -> "
                  f"{'ALL MET' if all(ok.values()) else 'NOT all met'}; steps SyncNet {steps.syncnet}, FREAK "
                  f"{steps.freak} x 2; CPU minutes: training {trained_cpu / 60:.1f}, this process "
                  f"{total['cpu'] / 60:.1f} (wall {total['wall'] / 60:.1f})", highlight=False)
    result |= {"targets": to_dict(cfg.targets), "verdicts": ok, "all_met": all(ok.values()), "val_clips": val_clips,
               "steps": {"syncnet": steps.syncnet, "freak": steps.freak}, "seconds": seconds,
               "process_seconds": total, "config": to_dict(cfg),
               "run_configs": {k: to_dict(v) for k, v in cfgs.items()}}
    (work / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {work / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_experiment(synthetic_sync, argv, script=__file__, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
