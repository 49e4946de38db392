"""What `face.detect_every` = k costs in crop-box accuracy and gains in detection time, on the sample videos.

The detector is stateless (each frame's candidates depend on that frame only), so one every-frame detection pass per
clip gives the exact k > 1 result too: `detect_all(every=k)` is run again over a replay of the stored answers, which
also counts the frames it looks at (key frames, the last one, and the frames around a face coming or going).
The reference is the every-frame track (k = 1, smoothing and miss policy as configured). Errors are in per cent of
the reference crop side: how far the crop centre moves, and how much its side changes. For scale, `jitter` is the
reference's own frame-to-frame centre motion (mean, % of side).

    .venv/bin/python benchmarks/detect_every.py [--every 1 2 3 4] [--videos PATH ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from talkfreq.face import FaceConfig, detect_all, make_detector, track_faces
from talkfreq.io import VideoReader

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media" / "video"


class _Replay:
    """A detector answering with stored source-pixel detections, counting its calls."""

    def __init__(self, dets: list):
        self.dets, self.calls = dets, 0

    def detect(self, frame: np.ndarray, *, index: int) -> np.ndarray:
        self.calls += 1
        return self.dets[index]


def _errors(ref: np.ndarray, got: np.ndarray, valid: np.ndarray) -> dict:
    side = ref[valid, 2] - ref[valid, 0]
    centre = lambda b: np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)  # noqa: E731
    dc = np.hypot(*(centre(got[valid]) - centre(ref[valid])).T) / side * 100
    ds = np.abs((got[valid, 2] - got[valid, 0]) - side) / side * 100
    return {"centre_mean": float(dc.mean()), "centre_p95": float(np.percentile(dc, 95)), "centre_max": float(dc.max()),
            "side_mean": float(ds.mean()), "side_max": float(ds.max())}


def measure(video: Path, everies: list[int], cfg: FaceConfig) -> list[dict]:
    reader = VideoReader(video, fps=25.0, max_side=cfg.detect_max_side)
    detector = make_detector(cfg)
    frames = list(reader)  # a few hundred small frames: timing detection alone, without decoding
    t = time.perf_counter()
    dets = detect_all(detector, frames, scale=reader.scale)
    ms_per_frame = (time.perf_counter() - t) / len(frames) * 1000
    size = (reader.source_width, reader.source_height)
    ref = track_faces(dets, cfg=cfg, frame_size=size)
    both = ref.valid.copy()
    c = (ref.crop_boxes[:, :2] + ref.crop_boxes[:, 2:]) / 2
    jitter = np.hypot(*np.diff(c[ref.valid], axis=0).T) / (ref.crop_boxes[ref.valid, 2] - ref.crop_boxes[ref.valid, 0])[1:]
    rows = []
    for k in everies:
        replay = _Replay(dets)
        sparse = detect_all(replay, frames, every=k)
        got = track_faces(sparse, cfg=cfg, frame_size=size)
        valid = both & got.valid
        looked = replay.calls
        rows.append({"video": video.name, "every": k, "frames": len(dets), "detect_ms_per_frame": ms_per_frame * looked
                     / len(dets), "valid": int(got.valid.sum()), "valid_ref": int(ref.valid.sum()),
                     "jitter_mean": float(jitter.mean() * 100), **_errors(ref.crop_boxes, got.crop_boxes, valid)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--videos", type=Path, nargs="+", default=sorted(MEDIA.glob("*.mp4")))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cfg = FaceConfig()
    print(f"crop-box error of detect_every=k vs every frame (Haar at {cfg.detect_max_side} px, smooth_window "
          f"{cfg.smooth_window}); % of the crop side")
    print(f"{'video':32s} {'k':>2s} {'frames':>6s} {'valid':>9s} {'det ms/f':>8s} {'jitter':>6s} {'ctr mean':>8s} "
          f"{'ctr p95':>7s} {'ctr max':>7s} {'side mean':>9s} {'side max':>8s}")
    rows = []
    for video in args.videos:
        for r in measure(video, args.every, cfg):
            rows.append(r)
            print(f"{r['video'][:32]:32s} {r['every']:2d} {r['frames']:6d} {r['valid']:4d}/{r['valid_ref']:<4d} "
                  f"{r['detect_ms_per_frame']:8.1f} {r['jitter_mean']:6.2f} {r['centre_mean']:8.2f} "
                  f"{r['centre_p95']:7.2f} {r['centre_max']:7.2f} {r['side_mean']:9.2f} {r['side_max']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
