"""syncnet_python's face tracks: ``track_shot`` and the box smoothing of ``crop_video`` (joonson/syncnet_python
``run_pipeline.py``), behaviour for behaviour, for LSE measured by its protocol.

:func:`track_shot` takes one shot's per-frame detections (S3FD's in the original, best first) and repeats until no
detection is left:

* a new track starts at the first detection left (earliest frame, first in its frame's list);
* a later detection joins it when its frame is at most ``num_failed_det`` (25) frames after the track's last one and
  its IoU with that last box is above ``iou_thres`` (0.5). The detections of a frame are tried in list order, and a
  detection taken out of a frame's list makes the original's loop skip the next one of that frame (it removes items
  from the list it iterates over); once a frame more than ``num_failed_det`` frames after the last box has a
  detection, the track is over;
* a track of more than ``min_track`` (100) detections - a count of detections, not of frames - is interpolated
  linearly over the frames it misses (``scipy.interpolate.interp1d``, each coordinate) and kept when the larger of
  its mean width and mean height is above ``min_face_size`` (100 px); every detection it took is used up either
  way.

run_pipeline.py calls it once per PySceneDetect shot of at least ``min_track`` frames; :func:`clip_tracks` treats
the whole clip as one shot (what the original does when it finds no cut).

:func:`crop_centres` is the first half of ``crop_video``: per frame the half side ``s = max(h, w) / 2`` and the
centre ``x, y`` of the box, each median-filtered over ``median_kernel`` (13) frames by ``scipy.signal.medfilt``
(which pads with zeros: at a track's ends the median leans towards its smaller values, as in the original). The
crop itself is :func:`talkfreq.metrics.sync_v2.crop_syncnet_v2_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
from scipy.interpolate import interp1d
from scipy.signal import medfilt

from talkfreq.errors import ConfigError

__all__ = ["ShotTrack", "TrackShotConfig", "bbox_iou", "clip_tracks", "crop_centres", "track_shot"]


@dataclass
class TrackShotConfig:
    """run_pipeline.py's tracking and cropping options, its defaults (section ``sync_pipeline`` of evaluate).

    iou_thres: a detection continues a track when its IoU with the track's last box is above this (track_shot's
        ``iouThres``).
    num_failed_det: at most this many frames from the track's last detection to the next (``--num_failed_det``).
    min_track: tracks of this many detections or fewer are dropped; shots shorter than this are not tracked
        (``--min_track``).
    min_face_size: the larger of a track's mean box width and height must be above this, in frame pixels
        (``--min_face_size``).
    crop_scale: the crop extends the face box by this on each side and twice this below (``--crop_scale``).
    median_kernel: frames of crop_video's median filter of the box centre and size (odd).
    """

    iou_thres: float = 0.5
    num_failed_det: int = 25
    min_track: int = 100
    min_face_size: float = 100.0
    crop_scale: float = 0.4
    median_kernel: int = 13

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_thres < 1.0:
            raise ConfigError(f"sync_pipeline.iou_thres must be in [0, 1), got {self.iou_thres}")
        if self.num_failed_det < 1 or self.min_track < 0 or self.min_face_size < 0:
            raise ConfigError(f"sync_pipeline: need num_failed_det >= 1, min_track >= 0 and min_face_size >= 0, got "
                              f"{self.num_failed_det}, {self.min_track}, {self.min_face_size}")
        if not 0.0 <= self.crop_scale <= 2.0:
            raise ConfigError(f"sync_pipeline.crop_scale must be in [0, 2], got {self.crop_scale}")
        if self.median_kernel < 1 or self.median_kernel % 2 == 0:
            raise ConfigError(f"sync_pipeline.median_kernel must be odd and >= 1, got {self.median_kernel}")


class ShotTrack(NamedTuple):
    """One kept track: ``frames`` (T,) consecutive clip frame indices, ``boxes`` (T, 4) float64 ``[x0, y0, x1,
    y1]`` (interpolated where the detector missed) and ``detections`` (how many it took)."""

    frames: np.ndarray
    boxes: np.ndarray
    detections: int


def bbox_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x0, y0, x1, y1]`` boxes as run_pipeline.py computes it (no +1 on the sides, no epsilon)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def track_shot(dets: Sequence[Optional[np.ndarray]], *, cfg: TrackShotConfig | None = None,
               first_frame: int = 0) -> list[ShotTrack]:
    """syncnet_python's ``track_shot`` over one shot (see the module docstring).

    ``dets``: per frame a (K, >=4) array of boxes ``[x0, y0, x1, y1, ...]`` (score etc. ignored), best first, or
    None / empty; frame ``k`` of the list is clip frame ``first_frame + k``.
    """
    cfg = cfg or TrackShotConfig()
    # Faces are (frame, box tuple, extra tuple): tuples compare by value as the original's dicts do, so
    # list.remove takes out the same item it would.
    pool: list[list[tuple]] = []
    for k, d in enumerate(dets):
        rows = np.zeros((0, 4)) if d is None else np.atleast_2d(np.asarray(d, np.float64))
        if rows.size and rows.shape[1] < 4:
            raise ValueError(f"frame {first_frame + k}: detections must be (K, >=4), got {rows.shape}")
        pool.append([(first_frame + k, tuple(r[:4].tolist()), tuple(r[4:].tolist())) for r in rows if r.size])
    tracks: list[ShotTrack] = []
    while True:
        track: list[tuple] = []
        for faces in pool:
            # Mutating `faces` while iterating over it is deliberate: the original does, and it decides which of a
            # frame's detections are even tried after one was taken.
            for face in faces:
                if not track:
                    track.append(face)
                    faces.remove(face)
                elif face[0] - track[-1][0] <= cfg.num_failed_det:
                    if bbox_iou(face[1], track[-1][1]) > cfg.iou_thres:
                        track.append(face)
                        faces.remove(face)
                else:
                    break
        if not track:
            return tracks
        if len(track) <= cfg.min_track:
            continue
        frames = np.array([f[0] for f in track])
        boxes = np.array([f[1] for f in track], np.float64)
        span = np.arange(frames[0], frames[-1] + 1)
        filled = np.stack([interp1d(frames, boxes[:, j])(span) for j in range(4)], axis=1)
        if max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1])) > cfg.min_face_size:
            tracks.append(ShotTrack(frames=span, boxes=filled, detections=len(track)))


def clip_tracks(dets: Sequence[Optional[np.ndarray]], *, cfg: TrackShotConfig | None = None) -> list[ShotTrack]:
    """:func:`track_shot` over a whole clip taken as one shot; none when the clip is shorter than ``min_track``
    frames (run_pipeline.py skips such shots)."""
    cfg = cfg or TrackShotConfig()
    return track_shot(dets, cfg=cfg) if len(dets) >= cfg.min_track else []


def crop_centres(boxes: np.ndarray, *, kernel: int = 13) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """crop_video's smoothed ``(x, y, s)`` per frame, each (T,) float64, of a track's (T, 4) boxes."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    y, x = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
    return medfilt(x, kernel_size=kernel), medfilt(y, kernel_size=kernel), medfilt(s, kernel_size=kernel)
