"""Does the restoring refiner put back detail on real faces it has not seen, within a CPU budget per identity?

For each clip: prepare it at ``crop_size`` px, train one refiner per variant (the recipe ``refiner_config`` plus the
variant's overrides) on the first ``train_fraction`` of its frames — the rest is never read in training, not even
for validation (``data.frame_range``) — then degrade the held-out crops with each fixed degradation, refine them,
and print per (clip, variant, degradation), against the clean crops: PSNR and SSIM of the degraded input and of the
refined output on the whole crop and on the mouth region (:data:`talkfreq.face.config.MOUTH_REGION`), the
high-frequency energy ratio of clean / degraded / refined, the code flips under the degradation (``flips``: the
nearest-code path's, from the NRoUB diagnostic of :mod:`talkfreq.metrics.robustness`; ``used``: the codes the refiner
really decodes, the predicted ones with a code predictor) with the NRoUB margin in units of the latents' spread,
and whether the target holds (the acceptance of the
restoring refiner: gain >= ``target_psnr_db`` and >= ``target_ssim`` on the face and on the mouth, refined HF ratio
within ``target_hf`` of the clean one). ``recon`` is the refiner on the *clean* crops (a restorer must not harm a
clean input). With ``stage1={CLIP_STEM: MODEL_DIR}`` (a stage-1 model trained on the same first ``train_fraction``
of that clip, e.g. a ``talkfreq personalize`` run's ``runs/freak/model``), the generator's own outputs on the
held-out crops are one more degradation (``stage1``: the pipeline's real restoration input, as
:mod:`talkfreq.pipeline.stage1_pairs` writes it), and a variant with ``data.stage1_prob`` > 0 also trains on its
outputs over the training frames. Writes ``results.json`` and one ``strip_<clip>.png`` (clean | degraded |
refined) per clip into the work folder; those show real people: keep them out of the repository.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python experiments/refiner_restore.py [--out DIR] [--steps N]
        [--quick] [--video CLIP.mp4] [--eval-only] [-c configs/experiments/refiner_restore.yaml] [key=value ...]

Finished runs with the same config are reused (re-running only re-evaluates); ``--eval-only`` evaluates the trained
models in ``--out`` without comparing configs (after a code change that added config fields, say).
"""

from __future__ import annotations

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

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "experiments" / "refiner_restore.yaml"
DEFAULT_OUT = REPO / "outputs" / "experiments" / "refiner_restore"
STAGE1 = "stage1"  # the degradation that is a stage-1 model's own output (config `stage1`)


@dataclass
class ExperimentConfig:
    """``configs/experiments/refiner_restore.yaml``."""

    clips: list[str] = field(default_factory=list)  # videos, relative to the repository root
    crop_size: int = 128
    train_fraction: float = 0.8
    refiner_config: str = "configs/refiner/restore_128.yaml"
    variants: dict[str, list[str]] = field(default_factory=lambda: {"recipe": []})  # name -> overrides
    degradations: list[list[Any]] = field(default_factory=list)  # [kind, strength] (apply_kind units)
    # clip stem -> a stage-1 model/ folder trained on the same first train_fraction of that clip (e.g. a
    # `talkfreq personalize` run's runs/freak/model): its own outputs on the held-out crops are one more
    # degradation ("stage1"), and a variant with data.stage1_prob > 0 trains on its outputs on the training frames
    stage1: dict[str, str] = field(default_factory=dict)
    target_psnr_db: float = 1.5
    target_ssim: float = 0.03
    target_hf: float = 0.2  # relative distance of the refined HF ratio to the clean one
    strip_frames: int = 4
    steps: Optional[int] = None  # overrides the recipe's trainer.max_steps
    threads: int = 0
    quick: list[str] = field(default_factory=list)


def quality(clean: np.ndarray, degraded: np.ndarray, refined: np.ndarray, *, mouth: tuple[int, int, int, int]
            ) -> dict[str, float]:
    """Face and mouth PSNR/SSIM of degraded and refined (T, S, S, 3) uint8 crops against clean, and HF ratios."""
    from talkfreq.metrics.fidelity import psnr, region_psnr, region_ssim, ssim
    from talkfreq.metrics.frequency import high_frequency_ratio

    row = {"hf_clean": high_frequency_ratio(clean)}
    for name, x in (("deg", degraded), ("ref", refined)):
        row |= {f"psnr_{name}": psnr(x, clean), f"ssim_{name}": ssim(x, clean),
                f"mouth_psnr_{name}": region_psnr(x, clean, box=mouth),
                f"mouth_ssim_{name}": region_ssim(x, clean, box=mouth), f"hf_{name}": high_frequency_ratio(x)}
    return row


def pasted_lower(refined: np.ndarray, stage1: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) uint8: the refined crops' lower region feathered over the stage-1 crops, as the dubbing
    pipeline pastes (:func:`talkfreq.pipeline.paste.feather_mask`, region ``lower``, infer's default feather)."""
    from talkfreq.pipeline.infer import InferConfig
    from talkfreq.pipeline.paste import feather_mask

    m = feather_mask(refined.shape[1], region="lower", feather=InferConfig().feather)[None, ..., None]
    return np.round(m * refined.astype(np.float32) + (1.0 - m) * stage1.astype(np.float32)).astype(np.uint8)


def verdict(row: dict[str, float], cfg: ExperimentConfig) -> dict[str, bool]:
    """Which parts of the target one row meets."""
    out = {}
    for p in ("", "mouth_"):
        out[f"{p}psnr"] = row[f"{p}psnr_ref"] - row[f"{p}psnr_deg"] >= cfg.target_psnr_db
        out[f"{p}ssim"] = row[f"{p}ssim_ref"] - row[f"{p}ssim_deg"] >= cfg.target_ssim
    out["hf"] = abs(row["hf_ref"] - row["hf_clean"]) <= cfg.target_hf * row["hf_clean"]
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'clip':10} {'variant':10} {'degradation':14} {'recon':>6} {'PSNR d>r':>13} {'SSIM d>r':>13} "
            f"{'mouth PSNR d>r':>14} {'mouth SSIM d>r':>14} {'HF c/d/r':>17} {'flips':>5} {'used':>5} "
            f"{'margin':>6}  target")
    lines = [head, "-" * len(head)]
    for r in rows:
        v = r["target"]
        miss = [k for k, ok in v.items() if not ok]
        lines.append(
            f"{r['clip'][:10]:10} {r['variant'][:10]:10} {r['degradation']:14} {r['psnr_recon']:6.2f} "
            f"{r['psnr_deg']:6.2f}>{r['psnr_ref']:6.2f} {r['ssim_deg']:6.4f}>{r['ssim_ref']:6.4f} "
            f"{r['mouth_psnr_deg']:6.2f}>{r['mouth_psnr_ref']:6.2f} "
            f"{r['mouth_ssim_deg']:6.4f}>{r['mouth_ssim_ref']:6.4f} "
            f"{r['hf_clean']:.3f}/{r['hf_deg']:.3f}/{r['hf_ref']:.3f} {r.get('flip_rate', float('nan')):5.3f} "
            f"{r.get('used_code_flips', float('nan')):5.3f} {r.get('relative_margin_mean', float('nan')):6.4f}  "
            f"{'MET' if not miss else 'missed: ' + ', '.join(miss)}")
    return "\n".join(lines)


def restore(config: ConfigOpt = None, out: OutOpt = None, video: VideoOpt = None, steps: StepsOpt = None,
            quick: QuickOpt = False, overrides: Overrides = None,
            eval_only: Annotated[bool, typer.Option(
                "--eval-only", help="Evaluate the models already trained in --out (whatever config they were "
                                    "trained with).")] = False) -> int:
    """Train a refiner per (clip, variant), evaluate it on the held-out crops, print the table (``--video``: that
    clip instead of the config's clips)."""
    import cv2
    from rich.console import Console

    from talkfreq.data.degradations import apply_kind
    from talkfreq.data.prepared import PreparedDataset
    from talkfreq.data.refiner_data import uint8_to_tensor
    from talkfreq.demo import prepare_inputs, run_config, train_or_reuse
    from talkfreq.errors import ConfigError, require_file
    from talkfreq.face.config import MOUTH_REGION, fraction_box
    from talkfreq.metrics.fidelity import psnr
    from talkfreq.metrics.robustness import robustness_report
    from talkfreq.models.sovqae import SOVQAE
    from talkfreq.pipeline.refine import refine_sequence
    from talkfreq.pipeline.stage1_pairs import cached_stage1_outputs
    from talkfreq.report.denoise_eval import strip_image

    cfg = experiment_config(ExperimentConfig, config, DEFAULT_CONFIG, overrides, quick=quick, steps=steps)
    known = {(REPO / c).stem for c in cfg.clips} | ({video.stem} if video is not None else set())
    unknown = sorted(set(cfg.stage1) - known)
    if unknown:  # a typo would silently drop the stage-1 row
        raise ConfigError(f"stage1: no clip named {unknown[0]!r} among the clips")
    if video is not None:  # the config's stage-1 models stay valid for their clips
        cfg.clips = [str(video.resolve())]
    console = Console()
    work = (out or DEFAULT_OUT).resolve()
    t_start = time.perf_counter()
    s = cfg.crop_size
    mouth = fraction_box(MOUTH_REGION, s)
    rows, seconds = [], {}
    for clip_path in cfg.clips:
        video = (REPO / clip_path).resolve()
        data = prepare_inputs([video], out=work / "prepared" / video.stem, crop_size=s, who="restore")
        ds = PreparedDataset(data)
        meta = ds.metas[0]
        clip = ds.clip(meta.clip_id)
        train_stop = int(round(cfg.train_fraction * meta.n_frames))
        clean = np.ascontiguousarray(clip.frames[train_stop:])
        console.log(f"{video.name}: {meta.n_frames} frames; train [0, {train_stop}), test [{train_stop}, "
                    f"{meta.n_frames}) at {s} px")
        degradations = [(str(kind), float(strength)) for kind, strength in cfg.degradations]
        stage1_dir = None
        if video.stem in cfg.stage1:
            stage1_model = require_file(REPO / cfg.stage1[video.stem] / "config.json", "stage-1 model").parent
            console.log(f"{video.name}: the outputs of stage 1 ({stage1_model}) over every frame")
            stage1_dir, _ = cached_stage1_outputs(stage1_model, data=data, root=work / "stage1_outputs" / video.stem)
            degradations.append((STAGE1, 0.0))
        strips = []
        for variant, overrides in cfg.variants.items():
            def refiner_cfg(*extra: str):
                return run_config("refiner", REPO / cfg.refiner_config, data=data, runs=work / "runs" / video.stem,
                                  name=variant, steps=cfg.steps,
                                  overrides=[*overrides, f"data.frame_range=[0,{train_stop}]", *extra])

            rcfg = refiner_cfg()
            if rcfg.data.stage1_prob > 0:
                if stage1_dir is None:
                    raise ConfigError(f"variant {variant}: data.stage1_prob > 0 needs a stage-1 model for "
                                      f"{video.stem} (stage1: {{{video.stem}: MODEL_DIR}})")
                rcfg = refiner_cfg(f"data.stage1_outputs={stage1_dir}")
            if eval_only:
                from talkfreq.training.common import run_dir

                model_dir, seconds[f"{video.stem}/{variant}"] = run_dir(rcfg.run) / "model", None
            else:
                trained = train_or_reuse("refiner", rcfg, who="restore")
                model_dir, seconds[f"{video.stem}/{variant}"] = trained.model, trained.seconds
            model = SOVQAE.from_pretrained(model_dir).eval()
            recon, idx_clean = refine_sequence(model, clean, batch_size=16)
            psnr_recon = psnr(recon, clean)
            for kind, strength in degradations:
                if kind == STAGE1:  # the generator's own output on the held-out frames (aligned by frame)
                    degraded = np.ascontiguousarray(np.load(stage1_dir / f"{meta.clip_id}.npy")[train_stop:])
                else:
                    degraded = np.stack([apply_kind(f, kind=kind, strength=strength) for f in clean])
                refined, idx = refine_sequence(model, degraded, batch_size=16)
                # NRoUB of the nearest-code path, and how often the codes the refiner really uses flip
                rep = robustness_report(model, uint8_to_tensor(clean), uint8_to_tensor(degraded)).as_dict()
                label = kind if kind == STAGE1 else f"{kind} {strength:g}"
                versions = [(label, refined)]
                if kind == STAGE1:  # also as the dubbing pipeline shows it: the refined lower region over stage 1
                    versions.append((f"{STAGE1} pasted", pasted_lower(refined, degraded)))
                codes = {"used_code_flips": float((idx != idx_clean).float().mean()),
                         **{k: rep[k] for k in ("relative_margin_mean", "relative_shift_mean", "flip_rate")}}
                for name, frames in versions:
                    row = {"clip": video.stem, "variant": variant, "degradation": name, "psnr_recon": psnr_recon,
                           **quality(clean, degraded, frames, mouth=mouth), **codes}
                    row["target"] = verdict(row, cfg)
                    rows.append(row)
                    strips.append((f"{variant} {name}", clean, degraded, frames))
            console.print(format_table([r for r in rows if r["clip"] == video.stem and r["variant"] == variant]),
                          highlight=False, soft_wrap=True)
        strip = strip_image(strips, frames=cfg.strip_frames)
        cv2.imwrite(str(work / f"strip_{video.stem}.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))

    console.print(format_table(rows), highlight=False, soft_wrap=True)
    from talkfreq.config import to_dict
    from talkfreq.io.files import write_json

    write_json(work / "results.json", {"rows": rows, "train_seconds": seconds, "config": to_dict(cfg),
                                       "total_seconds_wall": time.perf_counter() - t_start})
    console.print(f"wrote {work / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_experiment(restore, argv, script=__file__, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
