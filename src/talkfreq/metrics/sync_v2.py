"""LSE-D / LSE-C with the original SyncNet weights (``syncnet_v2.model``): its crop, its MFCC front end, its windows.

What joonson/syncnet_python feeds syncnet_v2 (``run_pipeline.py`` ``crop_video`` and ``SyncNetInstance.evaluate``):

* **crop**: per frame, ``s`` = half the longer side of the face box (S3FD there, each coordinate median-filtered
  over 13 frames) and ``(x, y)`` its centre; the crop spans rows ``y - s .. y + 1.8 s`` and columns
  ``x - 1.4 s .. x + 1.4 s`` (``crop_scale`` 0.4: a 2.8 s square with the face box at the top and 0.8 s of chin and
  neck below), grey 110 outside the frame, resized to 224 x 224 with ``cv2.resize`` (bilinear), fed as BGR 0..255;
* **audio**: 13 MFCCs of the 16 kHz int16 audio, 100 frames/s (:func:`talkfreq.audio.mfcc.syncnet_mfcc`); the
  window of video frames ``i .. i + 4`` is MFCC columns ``4 i .. 4 i + 19``;
* **windows**: ``min(frames, samples // 640) - 5`` of them (one fewer than a full sliding count), distances over
  +-15 frame offsets as in :mod:`talkfreq.metrics.sync`.

Boxes: with ``evaluate``'s default ``sync_protocol=talkfreq`` the face box is talkfreq's own track of the
reference (recovered from its crop box by undoing ``face.padding`` and ``face.shift_y``,
:func:`face_boxes_from_crop_boxes`), smoothed by ``face.smooth_window`` (a centred mean); Haar boxes sit a little
higher and narrower than S3FD's, so scores with the published weights approximate syncnet_python's. With
``sync_protocol=syncnet_python`` each video gets syncnet_python's own tracks and smoothing
(:mod:`talkfreq.report.sync_pipeline`; S3FD with ``face.backend=s3fd``). Everything after the box (crop, grey
padding, resize, colour order, MFCCs, window count, distances) follows the original exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import torch

from talkfreq.audio.mfcc import MFCC_WINDOW, SYNCNET_SAMPLE_RATE, syncnet_mfcc
from talkfreq.metrics.sync import LSEResult, SyncEmbeddingStream, SyncEmbedFn, lse_scores

__all__ = ["V2_CROP_SCALE", "V2_SIZE", "crop_syncnet_v2", "crop_syncnet_v2_at", "face_boxes_from_crop_boxes",
           "lse_syncnet_v2", "syncnet_v2_boxes", "syncnet_v2_embedder", "syncnet_v2_stream", "syncnet_v2_windows"]

V2_CROP_SCALE = 0.4  # run_pipeline.py --crop_scale
V2_SIZE = 224
V2_PAD_VALUE = 110  # run_pipeline.py pads frames with this grey
V2_FPS = 25.0  # syncnet_python works on 25 fps video only


def face_boxes_from_crop_boxes(crop_boxes: np.ndarray, *, padding: float, shift_y: float) -> np.ndarray:
    """(N, 4) square face boxes from talkfreq crop boxes: the inverse of :func:`talkfreq.face.track.square_boxes`
    with the same ``padding`` and ``shift_y`` (the detector's box is squared there, so this gives its longer side)."""
    b = np.asarray(crop_boxes, np.float64).reshape(-1, 4)
    side = (b[:, 2] - b[:, 0]) / (1 + 2 * padding)
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2 - shift_y * side
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def syncnet_v2_boxes(face_boxes: np.ndarray, *, crop_scale: float = V2_CROP_SCALE) -> np.ndarray:
    """(N, 4) ``[x0, y0, x1, y1]`` syncnet_v2 crop boxes (frame pixels) of (N, 4) face boxes (see the docstring)."""
    b = np.asarray(face_boxes, np.float64).reshape(-1, 4)
    s = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2
    x, y = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    return np.stack([x - s * (1 + crop_scale), y - s, x + s * (1 + crop_scale), y + s * (1 + 2 * crop_scale)], axis=1)


def crop_syncnet_v2(frame: np.ndarray, face_box, *, crop_scale: float = V2_CROP_SCALE) -> np.ndarray:
    """(224, 224, 3) uint8 crop of an (H, W, 3) uint8 frame for a face box ``[x0, y0, x1, y1]``, exactly as
    ``run_pipeline.py`` cuts it for one unsmoothed box (:func:`crop_syncnet_v2_at`)."""
    x0, y0, x1, y1 = (float(v) for v in np.asarray(face_box, np.float64).reshape(4))
    return crop_syncnet_v2_at(frame, (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2, crop_scale=crop_scale)


def crop_syncnet_v2_at(frame: np.ndarray, x: float, y: float, s: float, *,
                       crop_scale: float = V2_CROP_SCALE) -> np.ndarray:
    """(224, 224, 3) uint8 crop of an (H, W, 3) uint8 frame around a face of centre ``(x, y)`` and half side ``s``
    (crop_video's smoothed ``dets``), exactly as ``run_pipeline.py`` cuts it: the frame padded by
    ``bsi = int(s (1 + 2 crop_scale))`` with grey 110, rows ``int(y + bsi - s) .. int(y + bsi + s (1 + 2
    crop_scale))`` and columns ``int(x + bsi - s (1 + crop_scale)) .. int(x + bsi + s (1 + crop_scale))`` of it
    (truncation, as ``int``), then ``cv2.resize`` to 224 x 224 (bilinear). Channel order is kept (talkfreq frames
    are RGB; :func:`syncnet_v2_embedder` flips to BGR)."""
    bs = float(s)
    if not (np.isfinite(bs) and np.isfinite(x) and np.isfinite(y)) or bs <= 0:
        raise ValueError(f"face centre ({x}, {y}) and half side {s} must be finite with a positive size")
    bsi = int(bs * (1 + 2 * crop_scale))
    my, mx = float(y) + bsi, float(x) + bsi
    h, w = frame.shape[:2]
    # Bounds in the coordinates of the frame padded by bsi on every side, kept inside that padded frame as numpy
    # slicing keeps them there (a box far outside the frame would give garbage in the original; here grey).
    r0, r1 = (min(max(int(v), 0), h + 2 * bsi) for v in (my - bs, my + bs * (1 + 2 * crop_scale)))
    c0, c1 = (min(max(int(v), 0), w + 2 * bsi) for v in (mx - bs * (1 + crop_scale), mx + bs * (1 + crop_scale)))
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"face centre ({x}, {y}) with half side {s} gives an empty syncnet_v2 crop")
    # Only the crop is padded (the original pads the whole frame by bsi; the pixels taken are the same).
    crop = np.full((r1 - r0, c1 - c0, frame.shape[2]), V2_PAD_VALUE, np.uint8)
    fr0, fr1, fc0, fc1 = max(r0 - bsi, 0), min(r1 - bsi, h), max(c0 - bsi, 0), min(c1 - bsi, w)
    if fr1 > fr0 and fc1 > fc0:
        crop[fr0 + bsi - r0:fr1 + bsi - r0, fc0 + bsi - c0:fc1 + bsi - c0] = frame[fr0:fr1, fc0:fc1]
    return cv2.resize(crop, (V2_SIZE, V2_SIZE))


def syncnet_v2_embedder(model) -> SyncEmbedFn:
    """A :data:`~talkfreq.metrics.sync.SyncEmbedFn` for :class:`~talkfreq.models.SyncNetV2`: faces (B, 5, 3, 224,
    224) RGB in [0, 1] (from :func:`crop_syncnet_v2` crops) -> BGR 0..255; MFCC windows (B, 13, 20)."""
    from talkfreq.models.syncnet_v2 import to_syncnet_v2_video

    def embed(faces: torch.Tensor, mfcc: torch.Tensor):
        out = model(to_syncnet_v2_video(faces * 2.0 - 1.0), mfcc[:, None])
        return out.audio_emb, out.video_emb

    return embed


def syncnet_v2_windows(frames: int, samples: int, *, fps: float = V2_FPS) -> int:
    """Number of windows syncnet_python scores: ``min(frames, samples // (16000 / fps)) - 5`` (at least 0)."""
    return max(min(int(frames), int(samples // (SYNCNET_SAMPLE_RATE / fps))) - 5, 0)


def syncnet_v2_stream(wav: np.ndarray, *, model, fps: float = V2_FPS, batch_size: int = 16,
                      device: str | torch.device = "cpu") -> SyncEmbeddingStream:
    """A :class:`~talkfreq.metrics.sync.SyncEmbeddingStream` over syncnet_v2 crops, fed by the MFCCs of ``wav``
    (mono float, 16 kHz). Trim its ``result()`` to :func:`syncnet_v2_windows` for the original's window count."""
    if abs(fps - V2_FPS) > 1e-6:
        raise ValueError(f"syncnet_v2 pairs 4 MFCC frames with each video frame: needs {V2_FPS:g} fps, got {fps}")
    return SyncEmbeddingStream(syncnet_mfcc(wav), embed=syncnet_v2_embedder(model), fps=fps, mel_cfg=MFCC_WINDOW,
                               batch_size=batch_size, device=device)


def lse_syncnet_v2(crops: Iterable | np.ndarray, wav: np.ndarray, *, model, vshift: int = 15, batch_size: int = 16,
                   device: str | torch.device = "cpu") -> LSEResult:
    """LSE-D / LSE-C / offset of one 25 fps clip with syncnet_v2: ``crops`` are its (224, 224, 3) uint8 RGB
    :func:`crop_syncnet_v2` crops (an array or any iterable, consumed once) and ``wav`` its 16 kHz mono audio."""
    stream = syncnet_v2_stream(wav, model=model, batch_size=batch_size, device=device)
    if isinstance(crops, np.ndarray):
        stream.add(crops)
    else:
        for crop in crops:
            stream.add(np.asarray(crop)[None])
    n = syncnet_v2_windows(stream.frames, len(wav))
    if n == 0:
        raise ValueError(f"need at least 6 frames (and 0.24 s of audio) for one syncnet_v2 window, got "
                         f"{stream.frames} frames and {len(wav)} samples")
    audio, video = stream.result()
    return lse_scores(audio[:n], video[:n], vshift=vshift)
