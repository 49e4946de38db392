"""Face detection, tracking, miss policy and crops (real media from ../shared/media where present)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkfreq.config import load_config
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.face import (
    BoxesDetector,
    FaceConfig,
    Follower,
    HaarDetector,
    MediaPipeDetector,
    box_to_affine,
    bridge_skipped,
    crop_face,
    crop_faces,
    crop_to_frame_affine,
    detect_all,
    detect_clip,
    fill_and_smooth,
    make_detector,
    select_track,
    square_boxes,
    track_faces,
)

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
VIDEOS = [
    "sadtalker_WDA_KatieHill_000.mp4",
    "real3dportrait_May_5s.mp4",
    "edtalk_pose_source2.mp4",
    "videoretalking_face4.mp4",
    "videoretalking_face1_vfr.mp4",
]
IMAGES = [
    "aniportrait_lyl.png",
    "edtalk_leijun.png",
    "hallo_ref3_grayscale.jpg",
    "real3dportrait_Macron.png",
    "sadtalker_happy1.png",
]


def _media(rel: str) -> Path:
    path = MEDIA / rel
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def _frames(path: Path, *, step: int, count: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= count:
                break
            if i % step == 0:
                out.append(frame.to_ndarray(format="rgb24"))
    return out


def _image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


# ---------------------------------------------------------------------------------------------- real media


@pytest.mark.media
@pytest.mark.parametrize("name", VIDEOS)
def test_haar_finds_face_in_real_videos(haar, name):
    frames = _frames(_media(f"video/{name}"), step=10, count=100)
    hits = [len(haar.detect(f)) > 0 for f in frames]
    assert np.mean(hits) >= 0.95, f"{name}: face on {sum(hits)}/{len(hits)} sampled frames"


@pytest.mark.media
@pytest.mark.parametrize("name", IMAGES)
def test_haar_finds_face_in_real_images(haar, name):
    img = _image(_media(f"image/{name}"))
    det = haar.detect(img)
    assert len(det) >= 1, f"{name}: no face"
    h, w = img.shape[:2]
    big = det[np.argmax((det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]))]
    assert 0 <= big[0] < big[2] <= w and 0 <= big[1] < big[3] <= h


@pytest.mark.media
def test_haar_near_finds_the_same_face_and_falls_back_to_the_whole_frame(haar):
    frame = _frames(_media("video/videoretalking_face4.mp4"), step=1, count=1)[0]  # 700x700, detected at 320
    whole = haar.detect(frame)
    face = whole[np.argmax(whole[:, 2] - whole[:, 0])]
    near = haar.detect(frame, near=face[:4] + 7)  # where it was a few frames ago
    best = near[np.argmax(near[:, 2] - near[:, 0])]
    iou = _iou_1(best[:4], face[:4])
    assert iou > 0.8, (best, face)
    assert all(_iou_1(b[:4], face[:4]) > 0.1 for b in near)  # only what is near the face
    nowhere = haar.detect(frame, near=np.array([0, 0, 60, 60], np.float32))  # no face there: the whole frame
    assert np.allclose(nowhere, whole)


def _iou_1(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.heavy
@pytest.mark.media
def test_detect_clip_defaults_follow_the_face_like_the_whole_frame_pass():
    frames = _frames(_media("video/sadtalker_WDA_KatieHill_000.mp4"), step=1, count=40)
    h, w = frames[0].shape[:2]
    cfg, ref_cfg = FaceConfig(), FaceConfig(detect_every=1, detect_near=False)
    got = track_faces(detect_clip(make_detector(cfg), frames, cfg=cfg, scale=(1.0, 1.0), frame_size=(w, h)),
                      cfg=cfg, frame_size=(w, h))
    ref = track_faces(detect_all(make_detector(ref_cfg), frames), cfg=ref_cfg, frame_size=(w, h))
    side = ref.crop_boxes[:, 2] - ref.crop_boxes[:, 0]
    assert got.valid.all() and ref.valid.all()
    assert (np.abs(got.crop_boxes - ref.crop_boxes).max(axis=1) / side).max() < 0.03


@pytest.mark.media
def test_track_real_clip_with_false_positives():
    # This clip has Haar false positives on the plain background; the track must stay on the speaker.
    frames = _frames(_media("video/videoretalking_face4.mp4"), step=1, count=30)
    h, w = frames[0].shape[:2]
    dets = detect_all(make_detector(FaceConfig()), frames)
    track = track_faces(dets, cfg=FaceConfig(crop_size=96), frame_size=(w, h))
    assert track.valid.all()
    centres = (track.boxes[:, :2] + track.boxes[:, 2:]) / 2
    assert np.abs(np.diff(centres, axis=0)).max() < 0.02 * w  # smooth, no jump to another candidate
    crops = crop_faces(frames, track.crop_boxes, size=96)
    assert crops.shape == (30, 96, 96, 3) and crops.dtype == np.uint8


# ---------------------------------------------------------------------------------------------- tracking


def _det(*boxes):
    return np.array([[*b, 1.0] for b in boxes], np.float32).reshape(-1, 5)


SMALL = (50, 50, 110, 110)  # side 60
BIG = (200, 40, 300, 140)  # side 100
FRAME = (400, 300)


def test_largest_face_is_chosen():
    boxes, found = select_track([_det(SMALL, BIG)] * 3, frame_size=FRAME)
    assert found.all() and np.allclose(boxes, BIG)


def test_face_index_one_picks_second_largest():
    boxes, found = select_track([_det(BIG, SMALL)] * 3, frame_size=FRAME, face_index=1)
    assert found.all() and np.allclose(boxes, SMALL)


def test_small_detections_are_ignored():
    tiny = (10, 10, 20, 20)  # side 10 < 0.08 * 300
    _, found = select_track([_det(tiny)], frame_size=FRAME)
    assert not found.any()


def test_second_face_appearing_does_not_steal_track():
    dets = [_det(SMALL)] * 3 + [_det(SMALL, BIG)] * 3 + [_det(BIG)] * 2 + [_det((52, 51, 112, 111), BIG)]
    boxes, found = select_track(dets, frame_size=FRAME)
    assert found.tolist() == [True] * 6 + [False] * 2 + [True]
    assert np.allclose(boxes[found][:, 0], [50] * 6 + [52])


def test_reacquire_after_long_loss_is_opt_in():
    dets = [_det(SMALL)] * 2 + [_det(BIG)] * 4
    _, found = select_track(dets, frame_size=FRAME)
    assert found.tolist() == [True, True, False, False, False, False]
    boxes, found = select_track(dets, frame_size=FRAME, reacquire_after=2)
    assert found.tolist() == [True, True, False, False, True, True] and np.allclose(boxes[4], BIG)


def test_moving_face_is_followed():
    dets = [_det((50 + 8 * i, 50, 110 + 8 * i, 110), *([BIG] if i > 2 else [])) for i in range(10)]
    boxes, found = select_track(dets, frame_size=FRAME)
    assert found.all() and np.allclose(boxes[:, 0], 50 + 8 * np.arange(10))


def test_nested_half_face_box_does_not_take_the_track():
    # Haar's eyes-and-nose box inside the face (half its side, IoU 0.25) must be a miss, not the face.
    face, inner = (100, 100, 200, 200), (125, 110, 175, 160)
    dets = [_det(face), _det(inner), _det(inner), _det(face)]
    boxes, found = select_track(dets, frame_size=FRAME)
    assert found.tolist() == [True, False, False, True] and np.allclose(boxes[3], face)


class _Counting:
    def __init__(self):
        self.seen = []

    def detect(self, frame, *, index=None):
        self.seen.append(index)
        return _det((float(frame[0, 0, 0]), 10, float(frame[0, 0, 0]) + 40, 50))


@pytest.mark.parametrize("n, every, looked", [(10, 3, [0, 3, 6, 9]), (11, 3, [0, 3, 6, 9, 10]), (1, 4, [0]),
                                              (5, 1, [0, 1, 2, 3, 4])])
def test_detect_all_looks_at_every_kth_and_the_last_frame(n, every, looked):
    frames = (np.full((8, 8, 3), 2 * i, np.uint8) for i in range(n))  # a generator: the clip streams
    det = _Counting()
    dets = detect_all(det, frames, every=every, scale=(0.5, 2.0))
    assert det.seen == looked and [i for i, d in enumerate(dets) if d is not None] == looked
    for i in looked:  # boxes are brought back to source pixels
        assert np.allclose(dets[i][0, :4], [2 * i / 0.5, 10 / 2.0, (2 * i + 40) / 0.5, 50 / 2.0])


def test_detect_all_looks_between_key_frames_where_the_face_comes_or_goes():
    class FaceOnly(_Counting):  # frames 5..12 have no face
        def detect(self, frame, *, index=None):
            out = super().detect(frame, index=index)
            return _det() if 5 <= index <= 12 else out

    det = FaceOnly()
    dets = detect_all(det, [np.zeros((8, 8, 3), np.uint8)] * 17, every=4)
    assert det.seen == [0, 4, 8, 5, 6, 7, 12, 16, 13, 14, 15]  # 4 -> 8 and 12 -> 16 flip; 8 -> 12 does not
    assert [i for i, d in enumerate(dets) if d is not None and len(d) == 0] == [5, 6, 7, 8, 12]
    track = track_faces(dets, cfg=FaceConfig(miss_policy="skip"), frame_size=FRAME)
    assert track.valid.tolist() == [True] * 5 + [False] * 8 + [True] * 4


def test_detect_all_tells_the_detector_where_the_face_was_and_redoes_a_bad_near_search():
    class Hinted:
        def __init__(self):
            self.calls = []

        def detect(self, frame, *, index=None, near=None):
            self.calls.append((index, None if near is None else np.round(near, 3).tolist()))
            if near is not None and index == 2:
                return _det((300, 10, 340, 50))  # something else near: not the face, so look everywhere
            return _det((20 + index, 10, 60 + index, 50))

    det = Hinted()
    follow = Follower(frame_size=(200, 200))
    dets = detect_all(det, [np.zeros((8, 8, 3), np.uint8)] * 3, scale=(0.5, 0.5), follow=follow)
    # hints are in the detection frame's pixels (source box x scale); frame 2 is searched twice
    assert det.calls == [(0, None), (1, [20, 10, 60, 50]), (2, [21, 10, 61, 50]), (2, None)]
    assert np.allclose(dets[2][0, :4], [44, 20, 124, 100]) and np.allclose(follow.box, [44, 20, 124, 100])


def test_bridge_interpolates_only_between_found_key_frames():
    b = np.full((7, 4), np.nan, np.float32)
    b[0], b[2], b[6] = (0, 0, 10, 10), (20, 0, 30, 10), (60, 0, 70, 10)
    found = np.array([1, 0, 1, 0, 0, 0, 1], bool)
    looked = np.array([1, 0, 1, 0, 1, 0, 1], bool)  # frame 4 was looked at and missed
    out, f = bridge_skipped(b, found, looked)
    assert f.tolist() == [True, True, True, False, False, False, True]
    assert np.allclose(out[1], (10, 0, 20, 10)) and np.isnan(out[3:6]).all()


@pytest.mark.parametrize("policy", ["interpolate", "hold", "skip"])
def test_sparse_detection_matches_dense_on_steady_motion(policy):
    # Linear motion: bridging key frames gives the every-frame boxes exactly, whatever the miss policy.
    dense = [_det((50 + 3 * i, 40 + i, 150 + 3 * i, 140 + i)) for i in range(13)]
    sparse = [d if i % 4 == 0 or i == 12 else None for i, d in enumerate(dense)]
    cfg = FaceConfig(miss_policy=policy, smooth_window=5)
    a = track_faces(dense, cfg=cfg, frame_size=FRAME)
    b = track_faces(sparse, cfg=cfg, frame_size=FRAME)
    assert b.valid.all() and b.found.all() and np.allclose(a.crop_boxes, b.crop_boxes, atol=1e-3)


def test_sparse_detection_miss_follows_the_miss_policy():
    dense = [_det((50 + 3 * i, 40, 150 + 3 * i, 140)) for i in range(9)]
    sparse = [dense[0], None, _det(), None, dense[4], None, None, None, dense[8]]  # frame 2 looked: no face
    assert not track_faces(sparse, cfg=FaceConfig(miss_policy="skip"), frame_size=FRAME).valid[1:4].any()
    t = track_faces(sparse, cfg=FaceConfig(miss_policy="interpolate", smooth_window=1), frame_size=FRAME)
    assert t.valid.all() and t.found.tolist() == [True, False, False, False] + [True] * 5
    assert np.allclose(t.boxes[:, 0], 50 + 3 * np.arange(9))


def test_gap_is_interpolated_linearly():
    boxes = np.array([[0, 0, 10, 10], [np.nan] * 4, [np.nan] * 4, [np.nan] * 4, [40, 20, 60, 40]], np.float32)
    found = np.array([True, False, False, False, True])
    out, valid = fill_and_smooth(boxes, found, miss_policy="interpolate", max_gap=3, smooth_window=1)
    assert valid.all()
    assert np.allclose(out[2], [20, 10, 35, 25])  # exact midpoint
    assert np.allclose(out[1], [10, 5, 22.5, 17.5])


def test_long_gap_is_invalid_under_interpolate():
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (8, 1))
    found = np.array([True] + [False] * 6 + [True])
    boxes[~found] = np.nan
    out, valid = fill_and_smooth(boxes, found, miss_policy="interpolate", max_gap=5, smooth_window=1)
    assert valid.tolist() == [True] + [False] * 6 + [True]
    assert np.isnan(out[1:7]).all()


def test_ends_are_held_when_short():
    boxes = np.full((10, 4), np.nan, np.float32)
    boxes[2] = boxes[3] = [1, 2, 3, 4]
    found = np.isfinite(boxes[:, 0])
    out, valid = fill_and_smooth(boxes, found, miss_policy="interpolate", max_gap=3, smooth_window=1)
    # 2 leading misses (<= max_gap) take the first box; 6 trailing misses (> max_gap) are left face-less.
    assert valid.tolist() == [True] * 4 + [False] * 6
    assert np.allclose(out[:4], [1, 2, 3, 4]) and np.isnan(out[4:]).all()


def test_hold_carries_forward_and_backward():
    boxes = np.full((6, 4), np.nan, np.float32)
    boxes[1], boxes[3] = [0, 0, 10, 10], [5, 5, 15, 15]
    found = np.isfinite(boxes[:, 0])
    out, valid = fill_and_smooth(boxes, found, miss_policy="hold", max_gap=0, smooth_window=1)
    assert valid.all()
    assert np.allclose(out[:3], [0, 0, 10, 10]) and np.allclose(out[3:], [5, 5, 15, 15])


def test_skip_leaves_misses_invalid():
    boxes = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]], np.float32)
    out, valid = fill_and_smooth(boxes, np.isfinite(boxes[:, 0]), miss_policy="skip", max_gap=25, smooth_window=3)
    assert valid.tolist() == [True, False, True] and np.isnan(out[1]).all()


def test_no_face_anywhere_is_all_invalid():
    boxes, found = select_track([_det()] * 4, frame_size=FRAME)
    for policy in ("interpolate", "hold", "skip"):
        out, valid = fill_and_smooth(boxes, found, miss_policy=policy, max_gap=25, smooth_window=5)
        assert not valid.any() and np.isnan(out).all() and out.shape == (4, 4)


def test_smoothing_reduces_jitter_and_keeps_constant_box():
    rng = np.random.default_rng(0)
    n = 200
    base = np.array([100, 80, 200, 180], np.float64)
    jitter = base + rng.normal(0, 3, (n, 1)) * np.array([1, 1, 1, 1]) + rng.normal(0, 2, (n, 4))
    found = np.ones(n, bool)
    smooth, _ = fill_and_smooth(jitter, found, miss_policy="skip", max_gap=0, smooth_window=5)

    def centre_step_std(b):
        return np.diff((b[:, :2] + b[:, 2:]) / 2, axis=0).std()

    assert centre_step_std(smooth) < 0.5 * centre_step_std(jitter)
    const, _ = fill_and_smooth(np.tile(base, (n, 1)), found, miss_policy="skip", max_gap=0, smooth_window=5)
    assert np.allclose(const, base, atol=1e-4)
    # Steady motion is unbiased (symmetric window), also at the run ends.
    ramp = base + np.arange(n)[:, None] * np.array([1.5, 0.5, 1.5, 0.5])
    moved, _ = fill_and_smooth(ramp, found, miss_policy="skip", max_gap=0, smooth_window=7)
    assert np.allclose(moved, ramp, atol=1e-3)


def test_smoothing_does_not_cross_gaps():
    boxes = np.array([[0, 0, 10, 10]] * 3 + [[np.nan] * 4] * 30 + [[100, 100, 110, 110]] * 3, np.float32)
    out, valid = fill_and_smooth(boxes, np.isfinite(boxes[:, 0]), miss_policy="skip", max_gap=0, smooth_window=9)
    assert np.allclose(out[:3], [0, 0, 10, 10]) and np.allclose(out[-3:], [100, 100, 110, 110])


def test_square_boxes():
    sq = square_boxes(np.array([[10, 20, 50, 100]]), padding=0.25, shift_y=0.1)
    side = 80 * 1.5
    assert np.allclose(sq[0], [30 - side / 2, 60 + 8 - side / 2, 30 + side / 2, 68 + side / 2])
    assert np.isnan(square_boxes(np.full((1, 4), np.nan))).all()


# ---------------------------------------------------------------------------------------------- crops


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    return cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 2)


@pytest.mark.parametrize("size", [64, 96, 160, 240, 512])
def test_full_frame_crop_equals_resize(frame, size):
    square = frame[:, 40:280]  # 240 x 240: crop boxes are square
    interp = cv2.INTER_AREA if size < 240 else cv2.INTER_LINEAR
    ref = cv2.resize(square, (size, size), interpolation=interp).astype(np.float32)
    diff = np.abs(crop_face(square, [0, 0, 240, 240], size=size).astype(np.float32) - ref)
    assert diff.mean() < 0.5 and diff.max() <= 4


def test_integer_box_crop_at_native_scale_is_exact(frame):
    crop = crop_face(frame, [40, 30, 140, 130], size=100)
    assert np.array_equal(crop, frame[30:130, 40:140])


def test_box_outside_frame(frame):
    h, w = frame.shape[:2]
    half_out = crop_face(frame, [w - 50, h - 50, w + 50, h + 50], size=64)
    assert half_out.shape == (64, 64, 3) and half_out.dtype == np.uint8
    assert np.array_equal(half_out[-1, -1], frame[-1, -1])  # replicated corner
    gone = crop_face(frame, [w + 100, h + 100, w + 300, h + 300], size=32)
    assert (gone == frame[-1, -1]).all()


def test_affine_round_trip():
    box = [12.3, -7.5, 212.3, 192.5]
    fwd, inv = box_to_affine(box, size=128), crop_to_frame_affine(box, size=128)
    pt = np.array([57.25, 33.5, 1.0])
    back = inv @ np.append(fwd @ pt, 1.0)
    assert np.allclose(back, pt[:2])
    # The matrices use OpenCV's pixel-centre coordinates: the box's edges (x0 - 0.5 there) land on the crop's edges.
    assert np.allclose(fwd @ np.array([12.3 - 0.5, -7.5 - 0.5, 1.0]), [-0.5, -0.5])
    assert np.allclose(fwd @ np.array([212.3 - 0.5, 192.5 - 0.5, 1.0]), [127.5, 127.5])


def test_crop_faces_batch(frame):
    frames = np.stack([frame, frame])
    crops = crop_faces(frames, np.array([[0, 0, 100, 100], [10.5, 20.25, 90.5, 100.25]]), size=48)
    assert crops.shape == (2, 48, 48, 3)
    with pytest.raises(ValueError):
        crop_faces(frames, np.array([[0, 0, 100, 100], [np.nan] * 4]), size=48)


# ---------------------------------------------------------------------------------------------- boxes files


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_boxes_single_box(tmp_path):
    det = BoxesDetector(_write(tmp_path, "b.json", [1, 2, 30, 40]))
    rows = [det.detect(np.zeros((4, 4, 3), np.uint8)) for _ in range(3)]
    assert all(r.shape == (1, 5) and np.allclose(r[0], [1, 2, 30, 40, 1]) for r in rows)


def test_boxes_per_frame_list(tmp_path):
    det = BoxesDetector(_write(tmp_path, "b.json", [[1, 2, 30, 40], None, [5, 6, 70, 80]]))
    frame = np.zeros((4, 4, 3), np.uint8)
    assert len(det.detect(frame)) == 1 and len(det.detect(frame)) == 0  # counts calls
    assert np.allclose(det.detect(frame, index=2)[0, :4], [5, 6, 70, 80])
    with pytest.raises(TalkfreqError, match="b.json.*3 frames"):
        det.detect(frame, index=3)


def test_boxes_dict(tmp_path):
    det = BoxesDetector(_write(tmp_path, "b.json", {"0": [1, 2, 30, 40], "5": [0, 0, 9, 9], "6": None}))
    frame = np.zeros((4, 4, 3), np.uint8)
    assert [len(det.detect(frame, index=i)) for i in range(8)] == [1, 0, 0, 0, 0, 1, 0, 0]


def test_boxes_npy(tmp_path):
    arr = np.array([[1, 2, 30, 40], [np.nan] * 4, [3, 4, 50, 60]], np.float32)
    np.save(tmp_path / "b.npy", arr)
    det = BoxesDetector(tmp_path / "b.npy")
    dets = detect_all(det, [np.zeros((4, 4, 3), np.uint8)] * 3)
    assert [len(d) for d in dets] == [1, 0, 1]
    track = track_faces(dets, cfg=FaceConfig(backend="boxes", boxes_file="x", smooth_window=1), frame_size=(8, 8))
    assert track.valid.all() and np.allclose(track.boxes[1], [2, 3, 40, 50])  # tiny user boxes kept


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ([1, 2, 3], "expected a box"),
        ([[1, 2, 30, 40], [5, 6, 1, 80]], "x1 > x0"),
        ({"a": [1, 2, 3, 4]}, "not a frame index"),
        ([[1, 2, 30, 40], "x"], "expected a box"),
        ([], "expected a box"),
        ({}, "no boxes"),
        ([1, 2, "3", 4], "expected a box"),
    ],
)
def test_boxes_malformed_json(tmp_path, content, problem):
    path = _write(tmp_path, "bad.json", content)
    with pytest.raises(TalkfreqError, match=problem) as info:
        BoxesDetector(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_boxes_malformed_npy_and_missing(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    with pytest.raises(TalkfreqError, match=r"bad\.npy.*shape \(N, 4\)"):
        BoxesDetector(tmp_path / "bad.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(TalkfreqError, match=r"junk\.npy"):
        BoxesDetector(tmp_path / "junk.npy")
    with pytest.raises(TalkfreqError, match=r"nope\.json.*not found"):
        BoxesDetector(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------- config, factory


def test_config_defaults_and_validation():
    cfg = load_config(FaceConfig, overrides=["crop_size=96", "miss_policy=hold"])
    assert cfg.crop_size == 96 and cfg.miss_policy == "hold" and cfg.backend == "haar"
    with pytest.raises(ConfigError, match="face.miss_policy"):
        load_config(FaceConfig, overrides=["miss_policy=guess"])
    with pytest.raises(ConfigError, match="face.crop_size"):
        FaceConfig(crop_size=8)
    with pytest.raises(ConfigError, match="face.backend must be one of haar, mediapipe, boxes"):
        load_config(FaceConfig, overrides=["backend=dlib"])
    with pytest.raises(ConfigError, match="face.detect_every must be >= 1"):
        load_config(FaceConfig, overrides=["detect_every=0"])


def test_make_detector(tmp_path):
    assert isinstance(make_detector(FaceConfig()), HaarDetector)
    with pytest.raises(TalkfreqError, match="face.boxes_file"):
        make_detector(FaceConfig(backend="boxes"))
    path = _write(tmp_path, "b.json", [0, 0, 5, 5])
    assert isinstance(make_detector(FaceConfig(backend="boxes", boxes_file=str(path))), BoxesDetector)


def test_mediapipe_errors_say_what_is_missing(tmp_path):
    with pytest.raises(TalkfreqError, match="face.mediapipe_model is not set.*face_landmarker.task"):
        make_detector(FaceConfig(backend="mediapipe"))
    with pytest.raises(TalkfreqError, match=r"missing\.task: face landmarker model file not found"):
        MediaPipeDetector(model=str(tmp_path / "missing.task"))
