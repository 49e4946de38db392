"""syncnet_python's own face pipeline for LSE (``sync_protocol=syncnet_python``): ``track_shot`` against a direct
transcription of run_pipeline.py on synthetic detection sequences, ``crop_video``'s geometry on a real frame, and
``talkfreq evaluate`` with a randomly initialised syncnet_v2 saved like the published file.

The transcriptions below restate joonson/syncnet_python's run_pipeline.py (dict detections, list removal while
iterating, interp1d, medfilt, np.pad with 110, int() bounds, cv2.resize) so that talkfreq's code is checked against
the original's behaviour, not against itself.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy import signal
from scipy.interpolate import interp1d

from conftest import media, rewrite_video
from talkfreq.cli import main
from talkfreq.errors import ConfigError
from talkfreq.face.shot_track import TrackShotConfig, clip_tracks, crop_centres, track_shot
from talkfreq.io import VideoReader, load_video_audio
from talkfreq.metrics.sync_v2 import crop_syncnet_v2_at, lse_syncnet_v2
from talkfreq.report.evaluate import EvalConfig
from talkfreq.report.sync_pipeline import check_protocol

# the syncnet_v2 fixtures of test_sync_v2 (a random net saved as the published syncnet_v2.model)
from test_sync_v2 import v2_model, v2_weights  # noqa: F401


# ------------------------------------------------------------------------------------------------ the original
def _original_track_shot(scenefaces, *, num_failed_det=25, min_track=100, min_face_size=100, iou_thres=0.5):
    def iou(a, b):
        ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return ix * iy / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy)

    tracks = []
    while True:
        track = []
        for framefaces in scenefaces:
            for face in framefaces:
                if track == []:
                    track.append(face)
                    framefaces.remove(face)
                elif face["frame"] - track[-1]["frame"] <= num_failed_det:
                    if iou(face["bbox"], track[-1]["bbox"]) > iou_thres:
                        track.append(face)
                        framefaces.remove(face)
                        continue
                else:
                    break
        if track == []:
            break
        if len(track) > min_track:
            framenum = np.array([f["frame"] for f in track])
            bboxes = np.array([np.array(f["bbox"]) for f in track])
            frame_i = np.arange(framenum[0], framenum[-1] + 1)
            bboxes_i = np.stack([interp1d(framenum, bboxes[:, j])(frame_i) for j in range(4)], axis=1)
            if max(np.mean(bboxes_i[:, 2] - bboxes_i[:, 0]), np.mean(bboxes_i[:, 3] - bboxes_i[:, 1])) > min_face_size:
                tracks.append({"frame": frame_i, "bbox": bboxes_i})
    return tracks


def _as_dicts(dets):
    """run_pipeline.py inference_video's structure: per frame a list of {'frame', 'bbox', 'conf'}."""
    return [[{"frame": i, "bbox": d[:4].tolist(), "conf": d[4]} for d in frame] for i, frame in enumerate(dets)]


def _original_crops(frames, track, cs=0.4):
    """crop_video for one track: medfilt(13) of s, y, x, the padded frame, the int() slice, cv2.resize."""
    dets = {"x": [], "y": [], "s": []}
    for det in track["bbox"]:
        dets["s"].append(max((det[3] - det[1]), (det[2] - det[0])) / 2)
        dets["y"].append((det[1] + det[3]) / 2)
        dets["x"].append((det[0] + det[2]) / 2)
    dets = {k: signal.medfilt(v, kernel_size=13) for k, v in dets.items()}
    out = []
    for fidx, frame in enumerate(track["frame"]):
        bs = dets["s"][fidx]
        bsi = int(bs * (1 + 2 * cs))
        padded = np.pad(frames[frame], ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
        my, mx = dets["y"][fidx] + bsi, dets["x"][fidx] + bsi
        face = padded[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
        out.append(cv2.resize(face, (224, 224)))
    return out


def _box(cx, cy, side, score=0.99):
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, score]


def _seq(n, *, start=(200.0, 150.0), side=120.0, drift=0.4, score=0.99):
    return [_box(start[0] + drift * i, start[1] + 0.5 * drift * i, side, score) for i in range(n)]


def _frames(per_frame):
    return [np.asarray(f, np.float32).reshape(-1, 5) for f in per_frame]


def _check_same(dets, cfg):
    ours = track_shot(dets, cfg=cfg)
    ref = _original_track_shot(_as_dicts(dets), num_failed_det=cfg.num_failed_det, min_track=cfg.min_track,
                               min_face_size=cfg.min_face_size, iou_thres=cfg.iou_thres)
    assert len(ours) == len(ref)
    for t, r in zip(ours, ref):
        np.testing.assert_array_equal(t.frames, r["frame"])
        np.testing.assert_array_equal(t.boxes, r["bbox"])
    return ours


# ------------------------------------------------------------------------------------------------ track_shot
def test_track_shot_splits_and_drops_as_the_original():
    cfg = TrackShotConfig()
    # IoU break: the face jumps 200 px at frame 150 (IoU 0) -> two tracks, split exactly there
    seq = _seq(150) + _seq(150, start=(420.0, 150.0))
    t = _check_same(_frames([[b] for b in seq]), cfg)
    assert [(x.frames[0], x.frames[-1]) for x in t] == [(0, 149), (150, 299)]

    # gaps: frames 120..143 missing (next detection 25 frames after the last: kept, interpolated linearly);
    # frames 120..144 missing (26 frames after: a new track, and the first part alone is kept)
    seq = _seq(260)
    bridged = _check_same(_frames([[] if 120 <= i < 144 else [b] for i, b in enumerate(seq)]), cfg)
    assert len(bridged) == 1 and (bridged[0].frames[0], bridged[0].frames[-1]) == (0, 259)
    assert bridged[0].detections == 260 - 24
    np.testing.assert_allclose(bridged[0].boxes[130], np.array(seq[130][:4]), atol=1e-3)  # linear drift: exact
    split = _check_same(_frames([[] if 120 <= i < 145 else [b] for i, b in enumerate(seq)]), cfg)
    assert [(x.frames[0], x.frames[-1]) for x in split] == [(0, 119), (145, 259)]

    # short tracks: more than min_track detections are needed (101 kept, 100 dropped), however long the span
    assert len(_check_same(_frames([[b] for b in _seq(101)]), cfg)) == 1
    assert _check_same(_frames([[b] for b in _seq(100)] + [[]] * 50), cfg) == []
    assert clip_tracks(_frames([[b] for b in _seq(99)]), cfg=cfg) == []  # shot shorter than min_track
    # min_face_size: the larger mean side must be above 100 px
    assert _check_same(_frames([[b] for b in _seq(150, side=100.0)]), cfg) == []
    assert len(_check_same(_frames([[b] for b in _seq(150, side=100.5)]), cfg)) == 1

    # two people: the best-scored face (listed first) starts the first track, the other face a second one
    two = _frames([[a, b] for a, b in zip(_seq(130, score=0.99), _seq(130, start=(500.0, 160.0), score=0.95))])
    t = _check_same(two, cfg)
    assert len(t) == 2 and t[0].boxes[0, 0] < t[1].boxes[0, 0]


def test_track_shot_random_sequences_equal_the_original():
    """Several faces per frame, misses, jumps and overlapping boxes (the original's list removal skips the face
    after a taken one): the tracks are the original's, frame for frame and box for box."""
    rng = np.random.default_rng(0)
    cfg = TrackShotConfig(min_track=8, min_face_size=20.0, num_failed_det=4)
    for _ in range(40):
        n = int(rng.integers(20, 80))
        people = [[rng.uniform(50, 400), rng.uniform(50, 300), rng.uniform(30, 90)] for _ in range(3)]
        per_frame = []
        for _ in range(n):
            faces = []
            for p in people:
                p[0] += rng.normal(0, 3 if rng.random() > 0.05 else 60)
                p[1] += rng.normal(0, 3)
                if rng.random() < 0.8:
                    faces.append(_box(p[0], p[1], p[2] * rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.0)))
                if rng.random() < 0.1:  # a near-duplicate box (overlaps the last face)
                    faces.append(_box(p[0] + 4, p[1], p[2], 0.91))
            faces.sort(key=lambda f: -f[4])
            per_frame.append(faces)
        _check_same(_frames(per_frame), cfg)


# ------------------------------------------------------------------------------------------------ crop_video
def test_crop_video_geometry_on_a_real_frame():
    """Smoothed centres and sizes, padding, integer bounds and resize equal crop_video's, on real frames with a
    track that jitters, shrinks and leaves the frame at the top left (grey padding)."""
    reader = VideoReader(media("video/sadtalker_WDA_KatieHill_000.mp4"), fps=25.0)
    frames = []
    for f in reader:
        frames.append(f)
        if len(frames) == 40:
            break
    rng = np.random.default_rng(3)
    i = np.arange(40)
    cx, cy = 256 - 6.3 * i + rng.normal(0, 2.5, 40), 230 - 5.1 * i + rng.normal(0, 2.5, 40)
    side = 210 - 1.7 * i + rng.normal(0, 4, 40)
    boxes = np.stack([cx - side / 2, cy - side * 0.55, cx + side / 2, cy + side * 0.45], axis=1)
    track = {"frame": np.arange(40), "bbox": boxes}
    expected = _original_crops(frames, track)
    x, y, s = crop_centres(boxes, kernel=13)
    for k in range(40):
        np.testing.assert_array_equal(crop_syncnet_v2_at(frames[k], x[k], y[k], s[k], crop_scale=0.4), expected[k])
    # the grey padding is reached (the track leaves the frame) and the first rows of the crop show it
    assert (expected[-1][:10] == 110).all()


# ------------------------------------------------------------------------------------------------ evaluate
FRAMES = 50


@pytest.mark.heavy
def test_evaluate_with_syncnet_python_protocol(synth_dir, v2_weights, v2_model, tmp_path, capsys):  # noqa: F811
    """``talkfreq evaluate --syncnet syncnet_v2.model sync_protocol=syncnet_python``: every video is tracked and
    cropped on its own, one track per run of faces; a video's LSE is the mean over its tracks, each equal to
    syncnet_v2 on crop_video's crops of the track with the track's audio; the column labels name the protocol."""
    src = next(synth_dir.glob("id00/*.mp4"))
    wav = load_video_audio(src, sample_rate=16000)[:FRAMES * 640]
    real = rewrite_video(src, tmp_path / "real.mp4", audio=wav, frames=FRAMES)
    late = rewrite_video(src, tmp_path / "late.mp4", audio=np.concatenate([np.zeros(3 * 640, np.float32), wav])
                         [:len(wav)], frames=FRAMES)
    # given boxes with a jump at frame 24 (IoU 0.25): two tracks, frames 0-23 and 24-49
    boxes = [[30.0 + 0.2 * k, 28.0, 94.0 + 0.2 * k, 100.0] if k < 24 else [4.0, 30.0, 60.0, 96.0]
             for k in range(FRAMES)]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "rep"
    assert main(["evaluate", "-r", str(real), "--candidate", f"late={late}", "--out", str(out), "--syncnet",
                 str(v2_weights), "--no-video", "--size", "64", "closeup_frames=1", "batch_size=8", "-q",
                 "sync_protocol=syncnet_python", "face.backend=boxes", f"face.boxes_file={tmp_path / 'boxes.json'}",
                 "sync_pipeline.min_track=20", "sync_pipeline.min_face_size=50"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["lse_protocol"] == "syncnet_python"
    assert {c["key"]: c["label"] for c in doc["columns"]}["lse_d"] == "LSE-D (syncnet_python)"
    assert "LSE-C (syncnet_python)" in (out / "report.html").read_text()
    assert any("2 face tracks" in n and n.startswith("LSE (syncnet_python): real") for n in doc["notes"])
    rows = {r["name"]: r["metrics"] for r in doc["rows"]}

    # By hand from the public pieces and the original's rules, for each video
    cfg = TrackShotConfig(min_track=20, min_face_size=50)
    tracks = clip_tracks([np.array([b + [1.0]], np.float32) for b in boxes], cfg=cfg)
    assert [(t.frames[0], t.frames[-1]) for t in tracks] == [(0, 23), (24, 49)]
    for name, path in (("real", real), ("late", late)):
        frames = list(VideoReader(path, fps=25.0))
        audio = load_video_audio(path, sample_rate=16000)
        per_track = []
        for t in tracks:
            crops = np.stack(_original_crops(frames, {"frame": t.frames, "bbox": t.boxes}))
            seg = audio[640 * t.frames[0]:640 * (t.frames[-1] + 1)]
            per_track.append(lse_syncnet_v2(crops, seg, model=v2_model))
        assert rows[name]["lse_d"] == pytest.approx(np.mean([r.lse_d for r in per_track]), rel=1e-5), name
        assert rows[name]["lse_c"] == pytest.approx(np.mean([r.lse_c for r in per_track]), rel=1e-4, abs=1e-6), name
        assert rows[name]["lse_offset"] == per_track[1].offset, name  # the longer track's


def test_protocol_errors_one_line():
    with pytest.raises(ConfigError, match="sync_protocol must be one of talkfreq, syncnet_python"):
        EvalConfig(sync_protocol="wav2lip")
    with pytest.raises(ConfigError, match="syncnet_v2.model only"):
        check_protocol("syncnet_python", kind="talkfreq")
    with pytest.raises(ConfigError, match="median_kernel must be odd"):
        TrackShotConfig(median_kernel=12)
    check_protocol("syncnet_python", kind="syncnet_v2")
