"""Does the per-identity recipe draw a real mouth on real faces within the CPU budget? (issue 13)

For each clip and each variant (dotted overrides per network on top of configs/personal), runs what
``talkfreq personalize CLIP`` runs - split (first 80 % trains, last 20 % is dubbed with its own audio), prepare at
256 px, train the SyncNet scorer, FREAK and the refiner, dub, evaluate at 256 px - into ``OUT/<clip>/<variant>``,
then prints one row per (clip, variant, candidate) with the numbers issue 13 judges and whether each target holds:
mouth PSNR >= 27 dB, mouth SSIM >= 0.80, mouth_open_r >= 0.6, silent opening within 20 % of the real clip's, seam
(gradient across the paste boundary) within 10 % of the real frames'; with the training minutes of each network.
Writes ``results.json``; the reports (with close-up strips of real people) stay in ``OUT``: never commit them.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python experiments/personal.py [--out DIR] [--steps N] [--quick]
        [--video CLIP.mp4]  (that clip instead of the config's clips) [-c configs/experiments/personal.yaml]
        ["variants={audio_ref: {freak: [data.reference=audio]}}" ...]
        ["share={blur_only: recipe}"]  (a variant that reuses an earlier one's scorer and FREAK)
        ["only=[blur_only]"]  (the variants to run; given variants add to the config's)

Finished runs with the same config are reused, so re-running only re-evaluates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

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
DEFAULT_CONFIG = REPO / "configs" / "experiments" / "personal.yaml"
DEFAULT_OUT = REPO / "outputs" / "experiments" / "personal"
KEYS = ("psnr", "mouth_psnr", "mouth_ssim", "mouth_hf_ratio", "mouth_spectrum_gap", "mouth_open", "mouth_open_r",
        "mouth_open_lag", "mouth_open_silent", "seam", "lse_d", "lse_c", "lse_offset")
TARGETS = {"mouth_psnr": (">=", 27.0), "mouth_ssim": (">=", 0.80), "mouth_open_r": (">=", 0.6),
           "mouth_open_silent": ("within", 0.2), "seam": ("within", 0.1)}


@dataclass
class ExperimentConfig:
    """``configs/experiments/personal.yaml``."""

    clips: list[str] = field(default_factory=list)  # videos, relative to the repository root
    variants: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # the YAML's, plus any given
    only: list[str] = field(default_factory=list)  # run only these variants (an override adds to the YAML's)
    # variant -> an earlier variant whose trained scorer and FREAK it uses as they are (only its refiner trains)
    share: dict[str, str] = field(default_factory=dict)
    steps: Optional[int] = None  # overrides every network's trainer.max_steps (and then no budget)
    minutes: Optional[float] = None  # FREAK + refiner training budget, as `talkfreq personalize --minutes`
    threads: int = 0
    quick: list[str] = field(default_factory=list)


def meets(key: str, value: Optional[float]) -> Optional[bool]:
    if value is None or key not in TARGETS:
        return None
    how, target = TARGETS[key]
    return value >= target if how == ">=" else abs(value - 1.0) <= target


def format_table(rows: list[dict]) -> str:
    head = ["clip", "variant", "video", "min", *KEYS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["clip"], r["variant"], r["video"], "" if r["minutes"] is None else f"{r['minutes']:.1f}"]
        for k in KEYS:
            v = r["values"].get(k)
            if not isinstance(v, (int, float)):  # None, or evaluate's "unavailable"
                cells.append("-")
                continue
            ok = meets(k, v) if r["video"] != "real" else None
            cells.append("-" if v is None else f"{v:.3f}{'' if ok is None else (' ✓' if ok else ' ✗')}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def personal(config: ConfigOpt = None, out: OutOpt = None, video: VideoOpt = None, steps: StepsOpt = None,
             quick: QuickOpt = False, overrides: Overrides = None) -> int:
    """Run every (clip, variant) and print the table (``--video``: that clip instead of the config's clips)."""
    from talkfreq.config import load_config
    from talkfreq.demo import BUDGET_FILE, FINISHED_FILE, SCORER, DemoConfig, personal_options, run_demo, say
    from talkfreq.errors import ConfigError

    cfg = experiment_config(ExperimentConfig, config, DEFAULT_CONFIG, overrides, quick=quick, steps=steps)
    if video is not None:
        cfg.clips = [str(video.resolve())]
    out = out or DEFAULT_OUT
    rows = []
    for clip in cfg.clips:
        video = REPO / clip
        unknown = [v for v in cfg.only if v not in cfg.variants]
        if unknown:
            raise ConfigError(f"only: no variant {unknown[0]!r} (the variants: {', '.join(cfg.variants)})")
        for name, overrides in cfg.variants.items():
            if cfg.only and name not in cfg.only:
                continue
            work = out / video.stem / name
            say(f"{video.stem} / {name}", who="personal")
            demo = load_config(DemoConfig, None, personal_options(),
                               extra={"steps": cfg.steps, "minutes": None if cfg.steps is not None else cfg.minutes})
            demo.overrides = {k: list(v) for k, v in overrides.items()}
            shared = {}
            if name in cfg.share:  # an earlier variant of this run, or one finished by an earlier run in OUT
                order = list(cfg.variants)
                if cfg.share[name] in order and order.index(cfg.share[name]) >= order.index(name):
                    raise ConfigError(f"share: {name} must name an earlier variant, got {cfg.share[name]!r}")
                runs = out / video.stem / cfg.share[name] / "runs"
                scorers = [p.name for p in runs.glob("syncnet_s*") if SCORER.fullmatch(p.name)]
                shared = {net: runs / net for net in ("syncnet", *scorers, "freak")}
                demo.models = {net: str(run / "model") for net, run in shared.items()}
            run_demo(out=work, cfg=demo, video=video, quiet=True)
            minutes = {}
            for net in ("syncnet", "freak", "refiner"):
                stamp = shared.get(net, work / "runs" / net) / FINISHED_FILE
                minutes[net] = json.loads(stamp.read_text())["seconds"] / 60 if stamp.is_file() else None
            budget = work / "runs" / BUDGET_FILE
            if budget.is_file():  # the budget's own clock: probes and FREAK's outputs for the refiner included
                minutes["budget"] = json.loads(budget.read_text()).get("used_seconds", 0.0) / 60
            metrics = json.loads((work / "report" / "metrics.json").read_text())
            for row in metrics["rows"]:
                both = minutes.get("budget") or (minutes["freak"] or 0) + (minutes["refiner"] or 0)
                spent = {"real": None, "FREAK": minutes["freak"]}.get(row["name"], both)
                rows.append({"clip": video.stem, "variant": name, "video": row["name"], "minutes": spent,
                             "values": {k: row["metrics"].get(k) for k in KEYS}, "train_minutes": minutes})
    # rows of (clip, variant) pairs this run did not compute stay: a later run adds variants to the same table
    done = {(r["clip"], r["variant"]) for r in rows}
    results = out / "results.json"
    kept = [r for r in (json.loads(results.read_text()) if results.is_file() else [])
            if (r["clip"], r["variant"]) not in done]
    rows = kept + rows
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(rows, indent=2) + "\n")
    print(format_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_experiment(personal, argv, script=__file__, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
