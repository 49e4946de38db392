"""Frames/s and peak memory of `talkfreq prepare` on the 60 s sample clip and on its first 10 s.

Each run is a fresh subprocess so its peak RSS (ru_maxrss) is its own. Memory must not grow with the video's length:
the 60 s run's peak should stay within 1.2x of the 10 s run's.

    .venv/bin/python benchmarks/prepare_speed.py [--video PATH] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from talkfreq.model_cost import clip_head as head

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "media" / "video" / "edtalk_pose_source2.mp4"

CHILD = r"""
import json, resource, sys, time
from talkfreq.config import load_config
from talkfreq.data.prepare import PrepareConfig, prepare_dataset
video, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = load_config(PrepareConfig, None, [f"face.crop_size={size}"])
t = time.perf_counter()
res = prepare_dataset([video], out=out, cfg=cfg, show_progress=False)
dt = time.perf_counter() - t
frames = sum(m.n_frames for m in res.prepared)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"frames": frames, "seconds": dt, "peak_mb": peak_mb}))
"""


def run(video: Path, out: Path, size: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(video), str(out), str(size)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed on {video}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video}: sample video not found")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        short = head(args.video, 10.0, tmp / "head10.mp4")
        rows = {"first 10 s": run(short, tmp / "p10", args.size),
                "whole video": run(args.video, tmp / "pall", args.size)}
    print(f"prepare speed: {args.video.name}, {args.size} px crops, 1 worker")
    print(f"{'input':<12} {'frames':>7} {'seconds':>8} {'frames/s':>9} {'peak MB':>8}")
    for name, r in rows.items():
        fps = r["frames"] / r["seconds"]
        print(f"{name:<12} {r['frames']:>7} {r['seconds']:>8.1f} {fps:>9.1f} {r['peak_mb']:>8.0f}")
    ratio = rows["whole video"]["peak_mb"] / rows["first 10 s"]["peak_mb"]
    print(f"peak memory ratio whole/10 s: {ratio:.2f} ({'OK' if ratio <= 1.2 else 'OVER'} the 1.2x target)")


if __name__ == "__main__":
    main()
