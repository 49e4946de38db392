"""Face detectors: one call per frame, boxes in full-frame pixel coordinates.

Every detector has ``detect(frame, *, index=None, near=None) -> (K, 5) float32`` rows ``[x0, y0, x1, y1, score]``
for an ``(H, W, 3)`` uint8 RGB frame; ``x1``/``y1`` are exclusive pixel edges, so a box covering the whole frame is
``[0, 0, W, H]``. ``index`` is the frame's position in the clip: only :class:`BoxesDetector` needs it. ``near`` is
where the followed face was last (a box in this frame's pixels): a detector may search there first (Haar does,
5x cheaper), the others ignore it.
Detectors find candidates only; choosing and following one face is :mod:`talkfreq.face.track`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

import cv2
import numpy as np

from talkfreq.errors import TalkfreqError, require_file
from talkfreq.face.config import FaceConfig
from talkfreq.face.track import JUMP_MAX, SIZE_RATIO_MAX, Follower


class FaceDetector(Protocol):
    def detect(self, frame: np.ndarray, *, index: Optional[int] = None,
               near: Optional[np.ndarray] = None) -> np.ndarray: ...


def _empty() -> np.ndarray:
    return np.zeros((0, 5), np.float32)


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")


# (scaleFactor, minNeighbors) tried in turn until one finds a face: see HaarDetector.
HAAR_PASSES: tuple[tuple[float, int], ...] = ((1.15, 4), (1.1, 3))
# Searching ``near`` a box: as far and as much bigger or smaller as the tracker would still take the face.
NEAR_MARGIN, NEAR_SIZE = JUMP_MAX, SIZE_RATIO_MAX


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade (no download, CPU only).

    The frame is downscaled to ``max_side`` and histogram-equalised; the score is the cascade's last-stage weight
    (``detectMultiScale3`` level weights; larger = more face-like, can be negative).

    Tuning (our measurements on the shared sample media, 320 px, one thread): scaleFactor 1.15 / minNeighbors 4
    costs about half of 1.1 but skips scales, so it misses a few frames of a frontal 700x700 clip (6 of its first
    135); 1.1 / 3 misses none there but doubles the false positives on plain backgrounds. So 1.15 / 4 runs first and
    1.1 / 3 only on frames where it found nothing: no miss on any sampled frame of the five clips (every 3rd of
    the first 300), at the cost and false-positive count of the first pass. The profile cascade found nothing the
    frontal one missed, and padding the frame (for tight crops) lost detections, so neither is used.
    """

    def __init__(
        self,
        *,
        max_side: int = 320,
        min_face_frac: float = 0.08,
        passes: Sequence[tuple[float, int]] = HAAR_PASSES,
    ):
        path = str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise TalkfreqError(f"{path}: cannot load OpenCV's face cascade (broken opencv-python install?)")
        self.max_side = int(max_side)
        self.min_face_frac = float(min_face_frac)
        self.passes = tuple((float(sf), int(mn)) for sf, mn in passes)

    def detect(self, frame: np.ndarray, *, index: Optional[int] = None,
               near: Optional[np.ndarray] = None) -> np.ndarray:
        _check_frame(frame)
        h, w = frame.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)  # of the whole frame, also for a search near: the same pixels either way
        to_grey = np.array([grey.shape[1] / w, grey.shape[0] / h] * 2)  # grey pixels per frame pixel, x y x y
        if near is not None and np.isfinite(near).all():
            out = self._near(grey, np.asarray(near, np.float64)[:4] * to_grey)
            if len(out):
                out[:, :4] /= to_grey
                return out
        # The cascade window is 24 px: a smaller minSize changes nothing, a larger one skips useless scales.
        min_side = max(24, int(self.min_face_frac * min(grey.shape)))
        if min(grey.shape) < min_side:
            return _empty()
        out = self._cascade_boxes(grey, min_side=min_side, max_side=0)
        out[:, :4] /= to_grey
        return out

    def _near(self, grey: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Search the region within NEAR_MARGIN sides of ``box`` for faces of NEAR_SIZE^-1..NEAR_SIZE its side
        (``grey`` pixels): most of a full-frame search is small scales and far places where the followed face is
        not. Nothing found there (it moved or zoomed more, or left) = empty, and the caller searches everywhere."""
        side = float(np.sqrt(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0)))
        m = NEAR_MARGIN * side
        h, w = grey.shape
        x0, y0 = max(0, int(box[0] - m)), max(0, int(box[1] - m))
        x1, y1 = min(w, int(np.ceil(box[2] + m))), min(h, int(np.ceil(box[3] + m)))
        lo, hi = max(24, int(side / NEAR_SIZE)), int(np.ceil(side * NEAR_SIZE))
        if min(x1 - x0, y1 - y0) < lo:
            return _empty()
        out = self._cascade_boxes(np.ascontiguousarray(grey[y0:y1, x0:x1]), min_side=lo, max_side=hi)
        out[:, [0, 2]] += x0
        out[:, [1, 3]] += y0
        return out

    def _cascade_boxes(self, grey: np.ndarray, *, min_side: int, max_side: int) -> np.ndarray:
        """The passes on an equalised ``grey`` image -> (K, 5) boxes in its pixels (max_side 0: no upper limit)."""
        for scale_factor, min_neighbors in self.passes:
            rects, _levels, weights = self._cascade.detectMultiScale3(
                grey,
                scaleFactor=scale_factor,
                minNeighbors=min_neighbors,
                minSize=(min_side, min_side),
                maxSize=(max_side, max_side),
                outputRejectLevels=True,
            )
            if len(rects):
                break
        else:
            return _empty()
        r = np.asarray(rects, np.float32).reshape(-1, 4)
        out = np.empty((len(r), 5), np.float32)
        out[:, :2] = r[:, :2]
        out[:, 2:4] = r[:, :2] + r[:, 2:4]
        out[:, 4] = np.asarray(weights, np.float32).reshape(-1)
        return out


_MEDIAPIPE_HOW = (
    "install it with `pip install talkfreq[mediapipe]`, download face_landmarker.task "
    "(https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task) "
    "and pass face.mediapipe_model=PATH"
)


class MediaPipeDetector:
    """Optional backend: MediaPipe's face landmarker; the box is the bounds of the landmarks, the score is 1.

    Needs the ``mediapipe`` package and a face-landmarker ``.task`` model file; raises one TalkfreqError naming
    whatever of the two is missing. Not exercised by the test suite beyond those errors (no model file offline).
    """

    def __init__(self, *, model: Optional[str], max_faces: int = 5):
        missing = []
        try:
            import mediapipe as mp  # noqa: F401  (optional dependency)
        except Exception as exc:  # a broken install can raise more than ImportError
            missing.append(f"the mediapipe package cannot be imported ({type(exc).__name__}: {exc})")
            mp = None
        if not model:
            missing.append("face.mediapipe_model is not set")
        elif not Path(model).is_file():
            missing.append(f"{model}: face landmarker model file not found")
        elif not str(model).endswith(".task"):
            missing.append(f"{model}: expected a MediaPipe .task model file")
        if missing:
            raise TalkfreqError(f"face.backend=mediapipe: {'; '.join(missing)}; {_MEDIAPIPE_HOW}")
        assert mp is not None
        options = mp.tasks.vision.FaceLandmarkerOptions(
            base_options=mp.tasks.BaseOptions(model_asset_path=str(model)),
            running_mode=mp.tasks.vision.RunningMode.IMAGE,
            num_faces=int(max_faces),
        )
        try:
            self._landmarker = mp.tasks.vision.FaceLandmarker.create_from_options(options)
        except Exception as exc:
            raise TalkfreqError(f"{model}: MediaPipe cannot load this face landmarker model ({exc})") from exc
        self._mp = mp

    def detect(self, frame: np.ndarray, *, index: Optional[int] = None,
               near: Optional[np.ndarray] = None) -> np.ndarray:
        _check_frame(frame)
        h, w = frame.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        result = self._landmarker.detect(image)
        rows = []
        for landmarks in result.face_landmarks:
            pts = np.array([(p.x, p.y) for p in landmarks], np.float32)
            rows.append([pts[:, 0].min() * w, pts[:, 1].min() * h, pts[:, 0].max() * w, pts[:, 1].max() * h, 1.0])
        return np.array(rows, np.float32).reshape(-1, 5)

    def close(self) -> None:
        self._landmarker.close()


class BoxesDetector:
    """User-supplied boxes, one (or none) per frame, score 1.

    Accepted files (pixel coordinates of the full frame, ``[x0, y0, x1, y1]``):

    * JSON ``[x0, y0, x1, y1]``: the same box on every frame;
    * JSON list with one entry per frame, each a box or ``null`` (no face on that frame);
    * JSON ``{"frame_index": box or null}``: frames not listed have no face;
    * ``.npy`` of shape (N, 4): one row per frame, a row of NaN = no face.

    ``detect`` uses ``index`` when given, else counts its own calls (frames passed in order from 0). A per-frame
    list shorter than the video is an error rather than silent misses. User boxes are trusted: the tracker should
    not drop them for being small (see :func:`talkfreq.face.track.track_faces`).
    """

    def __init__(self, path: str | Path):
        self.path = require_file(path, "face boxes file")
        self._single: Optional[np.ndarray] = None
        self._per_frame: Optional[list[Optional[np.ndarray]]] = None
        self._sparse: dict[int, np.ndarray] = {}
        self._next = 0
        if self.path.suffix.lower() == ".npy":
            self._load_npy()
        else:
            self._load_json()

    def _fail(self, what: str) -> TalkfreqError:
        return TalkfreqError(f"{self.path}: {what}")

    def _box(self, value: Any, where: str) -> np.ndarray:
        if not isinstance(value, (list, tuple)) or len(value) != 4:
            raise self._fail(f"{where}: expected a box [x0, y0, x1, y1] or null, got {json.dumps(value)[:60]}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise self._fail(f"{where}: box coordinates must be numbers, got {json.dumps(value)[:60]}")
        box = np.asarray(value, np.float32)
        if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
            raise self._fail(f"{where}: box {value} is not a finite box with x1 > x0 and y1 > y0")
        return box

    def _load_json(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._fail(f"not valid JSON ({str(exc).splitlines()[0]})") from exc
        if isinstance(data, dict):
            if not data:
                raise self._fail("holds no boxes (an empty mapping)")
            for key, value in data.items():
                try:
                    idx = int(key)
                except ValueError:
                    idx = -1
                if idx < 0:
                    raise self._fail(f"key {key!r} is not a frame index (an integer >= 0)")
                if value is not None:
                    self._sparse[idx] = self._box(value, f"frame {key}")
        elif isinstance(data, list) and len(data) == 4 and all(isinstance(v, (int, float)) for v in data):
            self._single = self._box(data, "box")
        elif isinstance(data, list) and data:
            self._per_frame = [None if v is None else self._box(v, f"frame {i}") for i, v in enumerate(data)]
        else:
            raise self._fail("expected a box [x0, y0, x1, y1], a list of boxes (null = no face) or {index: box}")

    def _load_npy(self) -> None:
        try:
            arr = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise self._fail(f"not a readable .npy array ({exc})") from exc
        if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.number):
            raise self._fail(f"expected a numeric array of shape (N, 4), got {arr.shape} {arr.dtype}")
        self._per_frame = []
        for i, row in enumerate(arr.astype(np.float64)):
            missing = np.isnan(row)
            if missing.all():
                self._per_frame.append(None)
            elif missing.any():
                raise self._fail(f"row {i} mixes NaN and numbers (a row of NaN means no face)")
            else:
                self._per_frame.append(self._box(row.tolist(), f"row {i}"))

    def detect(self, frame: np.ndarray, *, index: Optional[int] = None,
               near: Optional[np.ndarray] = None) -> np.ndarray:
        i = self._next if index is None else int(index)
        self._next = i + 1
        if self._single is not None:
            box = self._single
        elif self._per_frame is not None:
            if i >= len(self._per_frame):
                raise self._fail(f"holds boxes for {len(self._per_frame)} frames, but frame {i} was asked for")
            box = self._per_frame[i]
        else:
            box = self._sparse.get(i)
        if box is None:
            return _empty()
        return np.append(box, np.float32(1.0)).reshape(1, 5).astype(np.float32)


def make_detector(cfg: FaceConfig) -> FaceDetector:
    """The detector ``cfg.backend`` names, built from ``cfg``."""
    if cfg.backend == "haar":
        return HaarDetector(max_side=cfg.detect_max_side, min_face_frac=cfg.min_face_frac)
    if cfg.backend == "mediapipe":
        return MediaPipeDetector(model=cfg.mediapipe_model, max_faces=max(5, cfg.face_index + 2))
    if cfg.backend == "boxes":
        if not cfg.boxes_file:
            raise TalkfreqError("face.backend=boxes needs face.boxes_file=PATH (a .json or .npy of boxes)")
        return BoxesDetector(cfg.boxes_file)
    if cfg.backend == "s3fd":
        if not cfg.s3fd_model:
            raise TalkfreqError("face.backend=s3fd needs face.s3fd_model=PATH (syncnet_python's sfd_face.pth or "
                                "face-alignment's s3fd.pth)")
        from talkfreq.face.s3fd import S3FDDetector

        return S3FDDetector(cfg.s3fd_model, scale=cfg.s3fd_scale)
    raise TalkfreqError(f"face.backend must be haar, mediapipe, boxes or s3fd, got {cfg.backend!r}")


def detect_all(
    detector: FaceDetector,
    frames: Iterable[np.ndarray],
    *,
    every: int = 1,
    scale: tuple[float, float] = (1.0, 1.0),
    follow: Optional[Follower] = None,
    on_frame: Optional[Callable[[int], None]] = None,
) -> list[Optional[np.ndarray]]:
    """Run ``detector`` over ``frames`` (an iterable, so a decoder can stream) -> one (K, 5) array per frame.

    ``every`` = k > 1 runs it on frames 0, k, 2k, ... and on the last frame; the other entries are None (not
    looked at, which :func:`talkfreq.face.track_faces` bridges, unlike an empty array = looked, no face). Where the
    detector's answer flips between "no face" and "some face" from one key frame to the next (a face leaving or
    entering), the frames between are looked at too, so where a face starts and stops is exact, not +-k frames;
    the last k - 1 frames are kept for that (small detection frames).
    ``scale`` (sx, sy): the frames were resized by this from the source, so boxes are divided by it (user boxes,
    already in source pixels, pass (1, 1)). ``follow``: a :class:`~talkfreq.face.track.Follower` (source pixels)
    updated with every looked-at frame, whose last kept box is passed to the detector as ``near``; the detections
    are the same kind as without it, only cheaper to find. ``on_frame(i)`` is called after each frame (progress).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    sx, sy = scale
    to_frame = np.array([sx, sy, sx, sy])

    def look(frame: np.ndarray, i: int, hint: dict) -> np.ndarray:
        d = detector.detect(frame, index=i, **hint).astype(np.float32, copy=True)
        if len(d) and (sx, sy) != (1.0, 1.0):
            d[:, :4] /= to_frame
        return d

    def run(frame: np.ndarray, i: int) -> np.ndarray:
        if follow is None or follow.box is None:
            return look(frame, i, {})
        d = look(frame, i, {"near": follow.box * to_frame})
        # A search near the face that does not find it again (but maybe something else) is redone everywhere, so
        # the hint changes what a frame costs, not which face is followed.
        return d if follow.pick(i, d) is not None else look(frame, i, {})

    def keep(i: int, d: np.ndarray) -> None:
        dets[i] = d
        if follow is not None:
            follow.update(i, d)  # in frame order, as select_track will

    dets: list[Optional[np.ndarray]] = []
    skipped: list[tuple[int, np.ndarray]] = []  # frames since the last key frame

    def key(i: int, frame: np.ndarray) -> None:
        d = run(frame, i)
        prev = next((dets[j] for j in range(i - 1, -1, -1) if dets[j] is not None), None)
        if prev is not None and (len(prev) == 0) != (len(d) == 0):
            for j, f in skipped:
                keep(j, run(f, j))
        skipped.clear()
        keep(i, d)

    for i, frame in enumerate(frames):
        dets.append(None)
        if i % every == 0:
            key(i, frame)
        else:
            skipped.append((i, frame))
        if on_frame is not None:
            on_frame(i)
    if skipped:  # the last frame is always looked at: only the loop's end says which it is
        i, frame = skipped.pop()
        key(i, frame)
    return dets


def detect_clip(
    detector: FaceDetector,
    frames: Iterable[np.ndarray],
    *,
    cfg: FaceConfig,
    scale: tuple[float, float],
    frame_size: tuple[int, int],
    on_frame: Optional[Callable[[int], None]] = None,
) -> list[Optional[np.ndarray]]:
    """:func:`detect_all` over a clip's detection frames with the settings of ``cfg`` (``detect_every``,
    ``detect_near``); ``frame_size`` (W, H) is the source's. User boxes (backend ``boxes``) are read for every frame,
    in source pixels, as given."""
    if cfg.backend == "boxes":
        return detect_all(detector, frames, on_frame=on_frame)
    follow = (Follower(frame_size=frame_size, face_index=cfg.face_index, min_face_frac=cfg.min_face_frac)
              if cfg.detect_near else None)
    return detect_all(detector, frames, every=cfg.detect_every, scale=scale, follow=follow, on_frame=on_frame)
