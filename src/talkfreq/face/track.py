"""Follow one face through a clip, fill the frames where it was missed, smooth, and make square crop boxes.

Everything here is offline over a whole clip's detections (a detection pass runs first): N x 4 arrays are tiny even
for long videos, and looking both ways in time is what makes interpolation and centred smoothing possible.
Boxes are ``[x0, y0, x1, y1]`` float pixel edges of the full frame (see :mod:`talkfreq.face.detect`).

The rules below (the IoU threshold, the allowed jump, shrinking the smoothing window symmetrically at the ends
of a run) are our design, not taken from a paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional

import numpy as np

from talkfreq.face.config import FaceConfig

# A candidate overlapping the last kept box this much is the same face (two different people overlap that much
# only under occlusion, when any choice is a guess).
_SAME_FACE_IOU = 0.3
# Without enough overlap, a candidate may still be taken when its centre moved at most this many sides of the last
# kept box: 0.5 one frame later, 0.75 after longer gaps. Below 1, so a neighbour's face never qualifies.
_JUMP_PER_FRAME = 0.25
JUMP_MAX = 0.75
# ... and when its side is within this ratio of the last box's. Haar sometimes fires on the eyes-and-nose part of
# a face, a box half the face's side inside it (IoU ~0.25); at 2.0 the track took such a box on
# videoretalking_face1_vfr.mp4 and then lost the face for good (benchmarks/detect_every.py), so 1.5.
SIZE_RATIO_MAX = 1.5


def _candidates(det: np.ndarray, min_side: float) -> np.ndarray:
    """(K, >=4) detections -> (M, 4) float64 usable boxes, largest first."""
    d = np.asarray(det, np.float64)
    if d.size == 0:
        return np.zeros((0, 4))
    d = np.atleast_2d(d)[:, :4]
    d = d[np.isfinite(d).all(axis=1)]
    w, h = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    ok = (w > 0) & (h > 0)
    ok[ok] &= np.sqrt(w[ok] * h[ok]) >= min_side
    d, area = d[ok], (w * h)[ok]
    return d[np.argsort(-area, kind="stable")]


def _iou(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    ix = np.maximum(np.minimum(ref[2], cand[:, 2]) - np.maximum(ref[0], cand[:, 0]), 0.0)
    iy = np.maximum(np.minimum(ref[3], cand[:, 3]) - np.maximum(ref[1], cand[:, 1]), 0.0)
    inter = ix * iy
    union = (ref[2] - ref[0]) * (ref[3] - ref[1]) + (cand[:, 2] - cand[:, 0]) * (cand[:, 3] - cand[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def _follow(ref: np.ndarray, cand: np.ndarray, elapsed: int) -> Optional[np.ndarray]:
    """The candidate that continues ``ref`` after ``elapsed`` frames, or None (a miss, not another person)."""
    if len(cand) == 0:
        return None
    iou = _iou(ref, cand)
    best = int(np.argmax(iou))
    if iou[best] >= _SAME_FACE_IOU:
        return cand[best]
    side = np.sqrt((ref[2] - ref[0]) * (ref[3] - ref[1]))
    sides = np.sqrt((cand[:, 2] - cand[:, 0]) * (cand[:, 3] - cand[:, 1]))
    dist = np.hypot((cand[:, 0] + cand[:, 2] - ref[0] - ref[2]) / 2, (cand[:, 1] + cand[:, 3] - ref[1] - ref[3]) / 2)
    ratio = np.maximum(sides / side, side / sides)
    max_jump = side * min(_JUMP_PER_FRAME * (1 + elapsed), JUMP_MAX)
    ok = (dist <= max_jump) & (ratio <= SIZE_RATIO_MAX)
    if not ok.any():
        return None
    return cand[int(np.argmin(np.where(ok, dist, np.inf)))]


class Follower:
    """The online part of :func:`select_track`: ``update(i, detections)`` frame by frame -> the kept box or None.

    :func:`talkfreq.face.detect_all` runs one during detection, so that the detector can be told where the face
    was (``near``); :func:`select_track` runs one over stored detections. Same rules, same result.
    """

    def __init__(self, *, frame_size: tuple[int, int], face_index: int = 0, min_face_frac: float = 0.08,
                 reacquire_after: Optional[int] = None):
        self.min_side = float(min_face_frac) * min(frame_size)
        self.face_index, self.reacquire_after = int(face_index), reacquire_after
        self.box: Optional[np.ndarray] = None  # the last kept box (float64 [x0, y0, x1, y1])
        self.last = -1  # its frame

    def update(self, i: int, det: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The box kept at frame ``i`` from its detections (None: not looked at, or a miss); remembered."""
        pick = self.pick(i, det)
        if pick is not None:
            self.box, self.last = pick, i
        return pick

    def pick(self, i: int, det: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """What :meth:`update` would keep at frame ``i``, without remembering it."""
        if det is None:
            return None
        cand = _candidates(det, self.min_side)
        k = self.face_index
        if self.box is None:
            pick = cand[k] if len(cand) > k else None
        else:
            pick = _follow(self.box, cand, i - self.last)
            if pick is None and self.reacquire_after is not None and i - self.last > self.reacquire_after:
                pick = cand[k] if len(cand) > k else None
        return pick


def select_track(
    detections: Sequence[Optional[np.ndarray]],
    *,
    frame_size: tuple[int, int],
    face_index: int = 0,
    min_face_frac: float = 0.08,
    reacquire_after: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick one face and follow it: ``detections`` (one (K, 5) array per frame) -> (boxes (N, 4), found (N,)).

    The face is the ``face_index``-th largest (0 = largest) at the first frame that has that many faces of side
    >= ``min_face_frac`` x the short side of ``frame_size`` (W, H). Later frames keep the candidate overlapping the
    last kept box most, or else the nearest one if it moved little; otherwise the frame is a miss, so the track
    never jumps to another person. A None entry (a frame the detector did not look at) is not found either, but
    its frames still count in how far the face may have moved. ``reacquire_after``: after that many frames in a
    row without the face, pick again by rank (a scene cut); None (default) never does. Boxes are float32, NaN where
    ``found`` is False.
    """
    follower = Follower(frame_size=frame_size, face_index=face_index, min_face_frac=min_face_frac,
                        reacquire_after=reacquire_after)
    boxes = np.full((len(detections), 4), np.nan, np.float32)
    found = np.zeros(len(detections), bool)
    for i, det in enumerate(detections):
        pick = follower.update(i, det)
        if pick is not None:
            boxes[i], found[i] = pick, True
    return boxes, found


def bridge_skipped(boxes: np.ndarray, found: np.ndarray, looked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames the detector did not look at (``looked`` False, ``detect_every`` > 1) between two looked-at frames
    where the face was found: boxes interpolated linearly, and found. (N, 4), (N,), (N,) -> (boxes, found).

    Frames next to a real miss stay not found, so the miss policy decides about them as about the miss itself.
    """
    b = np.array(boxes, np.float64).reshape(-1, 4)
    f = np.array(found, bool).reshape(-1)
    keys = np.flatnonzero(np.asarray(looked, bool))
    for a, z in zip(keys[:-1], keys[1:]):
        if z - a > 1 and f[a] and f[z]:
            t = (np.arange(1, z - a) / (z - a))[:, None]
            b[a + 1 : z] = b[a] * (1 - t) + b[z] * t
            f[a + 1 : z] = True
    return b.astype(np.float32), f


def fill_and_smooth(
    boxes: np.ndarray,
    found: np.ndarray,
    *,
    miss_policy: str = "interpolate",
    max_gap: int = 25,
    smooth_window: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill missed frames by ``miss_policy``, then smooth: (N, 4) boxes + (N,) found -> (boxes (N, 4), valid (N,)).

    * ``interpolate``: a gap of at most ``max_gap`` frames between two found frames is filled linearly; the misses
      at the start (end) of the clip take the first (last) found box when there are at most ``max_gap`` of them.
      Longer gaps, inner or at the ends, stay invalid as a whole: a face gone that long is not guessed at.
    * ``hold``: every miss takes the last found box (leading misses the first found box).
    * ``skip``: misses stay invalid.

    Smoothing is a centred moving average of box centre and size over ``smooth_window`` frames (even windows
    round down to odd; 1 = off), within each run of valid frames only, so it never reaches across a gap. Near the
    ends of a run the window shrinks symmetrically, which keeps steady motion unbiased. If no frame has a face the
    result is all invalid; the caller decides whether that is fatal. Boxes are float32, NaN where invalid.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    f = np.asarray(found, bool).reshape(-1) & np.isfinite(b).all(axis=1)
    if len(f) != len(b):
        raise ValueError(f"boxes has {len(b)} rows but found has {len(f)}")
    n = len(b)
    out = np.full((n, 4), np.nan)
    valid = f.copy()
    out[f] = b[f]
    idx = np.flatnonzero(f)
    if idx.size == 0:
        return out.astype(np.float32), valid
    if miss_policy == "hold":
        last = np.maximum.accumulate(np.where(f, np.arange(n), -1))
        last[last < 0] = idx[0]
        out, valid = b[last].copy(), np.ones(n, bool)
    elif miss_policy == "interpolate":
        for a, z in zip(idx[:-1], idx[1:]):
            gap = z - a - 1
            if 0 < gap <= max_gap:
                t = (np.arange(1, gap + 1) / (gap + 1))[:, None]
                out[a + 1 : z] = b[a] * (1 - t) + b[z] * t
                valid[a + 1 : z] = True
        lead, trail = idx[0], n - 1 - idx[-1]
        if lead <= max_gap:
            out[:lead], valid[:lead] = b[idx[0]], True
        if trail <= max_gap:
            out[idx[-1] + 1 :], valid[idx[-1] + 1 :] = b[idx[-1]], True
    elif miss_policy != "skip":
        raise ValueError(f"miss_policy must be interpolate, hold or skip, got {miss_policy!r}")
    return _smooth(out, valid, smooth_window).astype(np.float32), valid


def _smooth(b: np.ndarray, valid: np.ndarray, window: int) -> np.ndarray:
    half = (int(window) - 1) // 2
    if half <= 0:
        return b
    rep = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        seg = rep[s:e]
        length = len(seg)
        csum = np.concatenate([np.zeros((1, 4)), np.cumsum(seg, axis=0)])
        i = np.arange(length)
        r = np.minimum(half, np.minimum(i, length - 1 - i))
        rep[s:e] = (csum[i + r + 1] - csum[i - r]) / (2 * r + 1)[:, None]
    cx, cy, w, h = rep.T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def square_boxes(boxes: np.ndarray, *, padding: float = 0.25, shift_y: float = 0.1) -> np.ndarray:
    """(N, 4) face boxes -> (N, 4) float32 square crop boxes.

    Side = max(w, h) * (1 + 2 * padding), centred on the box, moved down by ``shift_y`` * max(w, h). The result may
    extend outside the frame (the crop replicates the border there). NaN rows stay NaN.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2 + shift_y * side
    half = side * (1 + 2 * padding) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)


class FaceTrack(NamedTuple):
    boxes: np.ndarray  # (N, 4) float32 filled and smoothed face boxes, NaN where not valid
    crop_boxes: np.ndarray  # (N, 4) float32 square crop boxes (kept per frame: paste-back needs them)
    valid: np.ndarray  # (N,) bool: the frame has a face (found or filled) to crop
    found: np.ndarray  # (N,) bool: the detector found the face on the frame (or on both key frames around it)


def track_faces(
    detections: Sequence[Optional[np.ndarray]], *, cfg: FaceConfig, frame_size: tuple[int, int], fps: float = 25.0
) -> FaceTrack:
    """:func:`select_track`, :func:`bridge_skipped`, :func:`fill_and_smooth` and :func:`square_boxes` with the
    settings of ``cfg`` (``fps``: the detections' frame rate, which turns ``cfg.max_gap_seconds`` into frames). A None
    detection is a frame the detector skipped (``detect_every``; see
    :func:`talkfreq.face.detect_all`).

    User boxes (backend ``boxes``) skip :func:`select_track`: they are taken as given.
    """
    looked = np.array([d is not None for d in detections], bool)
    if cfg.backend == "boxes":
        # User boxes are trusted as given: no size filter, no ranking, no jump check.
        raw = np.full((len(detections), 4), np.nan, np.float32)
        for i, det in enumerate(detections):
            if det is not None and len(det):
                raw[i] = np.asarray(det, np.float32)[0, :4]
        found = np.isfinite(raw).all(axis=1)
    else:
        raw, found = select_track(
            detections, frame_size=frame_size, face_index=cfg.face_index, min_face_frac=cfg.min_face_frac
        )
    if not looked.all():
        raw, found = bridge_skipped(raw, found, looked)
    boxes, valid = fill_and_smooth(
        raw, found, miss_policy=cfg.miss_policy, max_gap=cfg.max_gap_frames(fps), smooth_window=cfg.smooth_window
    )
    return FaceTrack(boxes, square_boxes(boxes, padding=cfg.padding, shift_y=cfg.shift_y), valid, found)
