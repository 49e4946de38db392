"""End-to-end frames/s, per-stage seconds and peak memory of `talkfreq infer` (dubbing a video with its own audio)
on the first 10 s and on the whole 60 s of the sample clip.

Models are randomly initialised and saved to a temporary folder: the tiny FREAK of configs/stage1/tiny_freak.yaml
and the SOVQAE of configs/refiner/tiny.yaml at the same face size (speed and memory do not depend on training; the
default 256 px models take about 3.4 s per frame on one CPU thread, too slow for a 60 s clip here). ``--size``
changes the face size of both.

Each run is a fresh subprocess so its peak RSS (ru_maxrss) is its own. Memory must not grow with the video's length:
the 60 s run's peak should stay within 1.2x of the 10 s run's.

    .venv/bin/python benchmarks/pipeline.py [--video PATH] [--size 64] [--threads 1] [--device cpu] [--no-overlap]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from prepare_speed import DEFAULT_VIDEO, REPO, head

STAGES = ("decode", "detect", "audio", "crop", "stage1", "refiner", "paste", "encode")

CHILD = r"""
import json, resource, sys, torch
video, s1, ref, out, threads, device, overlap = sys.argv[1:8]
torch.set_num_threads(int(threads))
from talkfreq.pipeline.accel import AccelConfig
from talkfreq.pipeline.infer import InferConfig, infer
res = infer(video, audio=video, stage1=s1, refiner=ref, out=out,
            cfg=InferConfig(device=device, accel=AccelConfig(overlap=overlap == "1")))
print(json.dumps({"frames": res.frames, "generated": res.generated, "seconds": res.seconds, "timings": res.timings,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_models(out: Path, *, size: int) -> tuple[Path, Path]:
    """Randomly initialised tiny stage-1 FREAK and SOVQAE (architectures from the tiny configs) at ``size`` px."""
    import torch
    from omegaconf import OmegaConf

    from talkfreq.config import load_yaml
    from talkfreq.models import FREAK, SOVQAE, SOVQAEConfig

    torch.manual_seed(0)
    freak = OmegaConf.to_container(load_yaml(REPO / "configs/stage1/tiny_freak.yaml").freak)
    sovqae = OmegaConf.to_container(load_yaml(REPO / "configs/refiner/tiny.yaml").sovqae)
    FREAK(config={**freak, "image_size": size}).save_pretrained(out / "stage1")
    SOVQAE(config=SOVQAEConfig(**{**sovqae, "image_size": size})).save_pretrained(out / "refiner")
    return out / "stage1", out / "refiner"


def run(video: Path, models: tuple[Path, Path], out: Path, *, threads: int, device: str, overlap: bool) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(video), *map(str, models), str(out), str(threads), device,
                           str(int(overlap))],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"infer failed on {video}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--size", type=int, default=64, help="face crop size of both models")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the shared 2-core machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-overlap", action="store_true", help="decode/paste/encode in line with the networks")
    args = ap.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video}: sample video not found")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_models(tmp, size=args.size)
        short = head(args.video, 10.0, tmp / "head10.mp4")
        kw = dict(threads=args.threads, device=args.device, overlap=not args.no_overlap)
        rows = {"first 10 s": run(short, models, tmp / "o10.mp4", **kw),
                "whole video": run(args.video, models, tmp / "oall.mp4", **kw)}
    print(f"infer speed: {args.video.name} dubbed with its own audio, models: tiny FREAK + tiny SOVQAE at {args.size} "
          f"px, randomly initialised; {args.threads} torch thread(s), {args.device}, "
          f"overlap {'off' if args.no_overlap else 'on'}")
    print(f"{'input':<12} {'frames':>6} {'seconds':>8} {'frames/s':>8} " + " ".join(f"{s:>7}" for s in STAGES)
          + f" {'peak MB':>8}")
    for name, r in rows.items():
        t = r["timings"]
        print(f"{name:<12} {r['frames']:>6} {r['seconds']:>8.1f} {r['frames'] / r['seconds']:>8.1f} "
              + " ".join(f"{t[s]:>7.1f}" for s in STAGES) + f" {r['peak_mb']:>8.0f}")
    ratio = rows["whole video"]["peak_mb"] / rows["first 10 s"]["peak_mb"]
    print("stage columns: seconds each stage was busy, measured in the thread it runs in; decode/crop and "
          "paste/encode overlap the networks (accel.overlap), so they can add up to more than the seconds column")
    print(f"peak memory ratio whole/10 s: {ratio:.2f} ({'OK' if ratio <= 1.2 else 'OVER'} the 1.2x target)")


if __name__ == "__main__":
    main()
