"""How well the landmark-free mouth-opening measure (`talkfreq.metrics.mouth`) tracks the mouth, on synth and real
clips, cropped as `talkfreq evaluate` crops them (256 px, the reference's face boxes).

* synth (3 identities x 2 clips x 6 s, 256 px frames): Pearson r of the opening with the ground-truth openness;
* every clip: mean opening in voiced and in silent frames (`silent_frames` of its 16 kHz audio), and the mean
  frame-to-frame change of the opening (how much the mouth moves) in each;
* the real clips: hand-labelled frames (:data:`LABELS`, lips apart with a dark gap vs lips together, labelled by
  looking at the crops before the measure was tuned): AUC (open frames above closed ones) and the two means;
* ``--blur``: instead, how the real clips' own crops read after a Gaussian blur of sigma 1-4 px (at 256 px): the
  silent-opening ratio and open r against the sharp crops, i.e. what blur alone does to the report's columns.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python benchmarks/mouth_measure.py [--json OUT] [--blur]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media" / "video"
SIZE, FPS = 256, 25.0
REAL = ("sadtalker_WDA_KatieHill_000.mp4", "real3dportrait_May_5s.mp4", "edtalk_pose_source2.mp4")
# {clip: (open frames, closed frames)}; smiles showing closed teeth and half-open mouths are left out
LABELS = {
    "sadtalker_WDA_KatieHill_000.mp4": ([25, 30, 50, 55, 70, 170, 190], [60, 75, 90, 115, 175]),
    "real3dportrait_May_5s.mp4": ([17, 29, 32, 50, 101, 104], [44, 56, 116]),
    "edtalk_pose_source2.mp4": ([3, 77, 188, 299, 521, 780, 854, 891, 965],
                                [151, 225, 262, 447, 1002, 1039, 1150, 1187, 1298]),
}


def face_crops(video: Path, *, size: int = SIZE) -> np.ndarray:
    """(N, size, size, 3) face crops of ``video`` cut the way ``talkfreq evaluate`` cuts them."""
    from talkfreq.face import FaceConfig, crop_face
    from talkfreq.io import VideoReader
    from talkfreq.report.common import reference_track

    track = reference_track(video, face=FaceConfig(crop_size=size), fps=FPS)
    return np.stack([crop_face(f, track.boxes[i], size=size)
                     for i, f in zip(range(len(track)), VideoReader(video, fps=FPS))])


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half."""
    d = np.asarray(pos, np.float64)[:, None] - np.asarray(neg, np.float64)[None, :]
    return float(((d > 0) + 0.5 * (d == 0)).mean())


def crops_and_silence(video: Path) -> tuple[np.ndarray, np.ndarray]:
    """``video``'s face crops (:func:`face_crops`) and its (N,) bool silent frames (``silent_frames`` of its audio)."""
    from talkfreq.io import load_video_audio
    from talkfreq.metrics.mouth import SILENCE_SAMPLE_RATE, silent_frames

    crops = face_crops(video)
    wav = load_video_audio(video, sample_rate=SILENCE_SAMPLE_RATE)
    return crops, silent_frames(wav, sample_rate=SILENCE_SAMPLE_RATE, fps=FPS, n_frames=len(crops))


def clip_stats(video: Path) -> dict:
    from talkfreq.metrics.mouth import mouth_opening

    crops, silent = crops_and_silence(video)
    opening = mouth_opening(crops)
    step = np.abs(np.diff(opening))
    both = {"voiced": ~silent[1:] & ~silent[:-1], "silent": silent[1:] & silent[:-1]}
    out = {"frames": len(crops), "silent_frames": int(silent.sum()),
           "open_voiced": float(opening[~silent].mean()),
           "open_silent": float(opening[silent].mean()) if silent.any() else float("nan"),
           **{f"move_{k}": float(step[m].mean()) if m.any() else float("nan") for k, m in both.items()}}
    return out | {"opening": opening}


def synth_rows(work: Path) -> list[dict]:
    from talkfreq.data.synth import SynthConfig, synthesize
    from talkfreq.metrics.mouth import pearson

    rows = []
    for p in synthesize(cfg=SynthConfig(identities=3, clips_per_identity=2, seconds=6.0, frame_size=SIZE, seed=1),
                        out=work):
        s = clip_stats(Path(p))
        with np.load(Path(p).with_suffix(".truth.npz")) as z:
            s["r_truth"] = pearson(s["opening"], z["openness"][: s["frames"]])
        rows.append({"clip": f"synth {Path(p).stem}", **s})
    return rows


def real_rows() -> list[dict]:
    rows = []
    for name in REAL:
        video = MEDIA / name
        if not video.is_file():
            print(f"skipped (not found): {video}")
            continue
        s = clip_stats(video)
        pos, neg = (s["opening"][LABELS[name][k]] for k in (0, 1))
        rows.append({"clip": name.removesuffix(".mp4"), **s, "label_auc": auc(pos, neg),
                     "labelled_open": float(pos.mean()), "labelled_closed": float(neg.mean())})
    return rows


BLUR_SIGMAS = (1.0, 2.0, 3.0, 4.0)


def blur_rows() -> list[str]:
    """Per real clip and blur sigma: the blurred crops' silent-opening ratio and open r against the sharp ones."""
    from scipy.ndimage import gaussian_filter

    from talkfreq.metrics.mouth import mouth_opening, mouth_rows, pearson, silent_opening_ratio

    lines = [f"{'clip':34s} {'sigma':>5s} {'silent ratio':>12s} {'open r':>6s} {'mean open':>9s}"]
    for name in REAL:
        video = MEDIA / name
        if not video.is_file():
            continue
        crops, silent = crops_and_silence(video)
        rows = mouth_rows(crops)  # the sharp mouth's boxes for every version, as evaluate measures candidates
        sharp = mouth_opening(crops, rows=rows)
        lines.append(f"{name.removesuffix('.mp4'):34s} {0:5.1f} {1:12.2f} {1:6.2f} {sharp.mean():9.4f}")
        for sigma in BLUR_SIGMAS:
            blurred = np.stack([gaussian_filter(c.astype(np.float32), (sigma, sigma, 0)) for c in crops])
            o = mouth_opening(np.clip(blurred + 0.5, 0, 255).astype(np.uint8), rows=rows)
            ratio = silent_opening_ratio(o, silent, ref_opening=sharp, ref_silent=silent)
            lines.append(f"{'':34s} {sigma:5.1f} {ratio:12.2f} {pearson(o, sharp):6.2f} {o.mean():9.4f}")
    return lines


def table(rows: list[dict]) -> str:
    def f(v, fmt):
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)

    lines = [f"{'clip':34s} {'frames':>6s} {'silent':>6s} {'r truth':>7s} {'open voiced':>11s} {'open silent':>11s} "
             f"{'move voiced':>11s} {'move silent':>11s} {'label AUC':>9s} {'open/closed (labels)':>20s}"]
    for r in rows:
        lab = (f"{r['labelled_open']:.3f} / {r['labelled_closed']:.3f}" if "label_auc" in r else "-")
        lines.append(f"{r['clip']:34s} {r['frames']:6d} {r['silent_frames']:6d} {f(r.get('r_truth'), '{:.3f}'):>7s} "
                     f"{f(r['open_voiced'], '{:.4f}'):>11s} {f(r['open_silent'], '{:.4f}'):>11s} "
                     f"{f(r['move_voiced'], '{:.4f}'):>11s} {f(r['move_silent'], '{:.4f}'):>11s} "
                     f"{f(r.get('label_auc'), '{:.2f}'):>9s} {lab:>20s}")
    synth = [r["r_truth"] for r in rows if "r_truth" in r]
    if synth:
        lines.append(f"synth r vs truth: mean {np.mean(synth):.3f}, min {np.min(synth):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--blur", action="store_true", help="only the blur table of the real clips")
    args = ap.parse_args(argv)
    if args.blur:
        print("\n".join(blur_rows()))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rows = synth_rows(Path(tmp)) + real_rows()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "opening"} for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
