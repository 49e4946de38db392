"""What `face.detect_every` = k and `face.detect_near` cost in crop-box accuracy and gain in detection time, on the
sample videos.

Each variant runs the real detection (`talkfreq.face.detect_clip`, timed without decoding) and tracking over the
clip's detection frames. The reference is the every-frame, whole-frame track (k = 1, near off; smoothing and miss
policy as configured). Errors are in per cent of the reference crop side: how far the crop centre moves, and how
much its side changes. For scale, `jitter` is the reference's own frame-to-frame centre motion (mean, % of side).

    .venv/bin/python benchmarks/detect_every.py [--variants 1 1n 2 2n 3n] [--videos PATH ...] [--json OUT]

A variant is k, with `n` when `detect_near` is on (the default configuration is 2n).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from talkfreq.face import FaceConfig, detect_clip, make_detector, track_faces
from talkfreq.io import VideoReader

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media" / "video"


def _errors(ref: np.ndarray, got: np.ndarray, valid: np.ndarray) -> dict:
    side = ref[valid, 2] - ref[valid, 0]
    centre = lambda b: np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)  # noqa: E731
    dc = np.hypot(*(centre(got[valid]) - centre(ref[valid])).T) / side * 100
    ds = np.abs((got[valid, 2] - got[valid, 0]) - side) / side * 100
    return {"centre_mean": float(dc.mean()), "centre_p95": float(np.percentile(dc, 95)), "centre_max": float(dc.max()),
            "side_mean": float(ds.mean()), "side_max": float(ds.max())}


def _variant(name: str, base: FaceConfig) -> FaceConfig:
    return replace(base, detect_every=int(name.rstrip("n")), detect_near=name.endswith("n"))


def measure(video: Path, variants: list[str], base: FaceConfig) -> list[dict]:
    reader = VideoReader(video, fps=25.0, max_side=base.detect_max_side)
    frames = list(reader)  # a few hundred small frames: timing detection alone, without decoding
    size = (reader.source_width, reader.source_height)

    def run(cfg: FaceConfig):
        t = time.perf_counter()
        dets = detect_clip(make_detector(cfg), frames, cfg=cfg, scale=reader.scale, frame_size=size)
        ms = (time.perf_counter() - t) / len(frames) * 1000
        return track_faces(dets, cfg=cfg, frame_size=size), ms, sum(d is not None for d in dets)

    ref, _, _ = run(_variant("1", base))
    c = (ref.crop_boxes[:, :2] + ref.crop_boxes[:, 2:]) / 2
    sides = ref.crop_boxes[:, 2] - ref.crop_boxes[:, 0]
    jitter = (np.hypot(*np.diff(c, axis=0).T) / sides[1:])[ref.valid[1:] & ref.valid[:-1]]
    rows = []
    for name in variants:
        got, ms, looked = run(_variant(name, base))
        rows.append({"video": video.name, "variant": name, "frames": len(frames), "looked": looked,
                     "detect_ms_per_frame": ms, "valid": int(got.valid.sum()), "valid_ref": int(ref.valid.sum()),
                     "jitter_mean": float(jitter.mean() * 100),
                     **_errors(ref.crop_boxes, got.crop_boxes, ref.valid & got.valid)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["1", "1n", "2", "2n", "3n"])
    ap.add_argument("--videos", type=Path, nargs="+", default=sorted(MEDIA.glob("*.mp4")))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    base = FaceConfig()
    print(f"crop boxes of detect_every=k (n: detect_near on) vs every frame, whole frame (Haar at "
          f"{base.detect_max_side} px, smooth_window {base.smooth_window}); errors in % of the crop side")
    print(f"{'video':32s} {'var':>3s} {'looked':>9s} {'valid':>9s} {'det ms/f':>8s} {'jitter':>6s} {'ctr mean':>8s} "
          f"{'ctr p95':>7s} {'ctr max':>7s} {'side mean':>9s} {'side max':>8s}")
    rows = []
    for video in args.videos:
        for r in measure(video, args.variants, base):
            rows.append(r)
            print(f"{r['video'][:32]:32s} {r['variant']:>3s} {r['looked']:4d}/{r['frames']:<4d} "
                  f"{r['valid']:4d}/{r['valid_ref']:<4d} {r['detect_ms_per_frame']:8.1f} {r['jitter_mean']:6.2f} "
                  f"{r['centre_mean']:8.2f} {r['centre_p95']:7.2f} {r['centre_max']:7.2f} {r['side_mean']:9.2f} "
                  f"{r['side_max']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
