"""LSE by syncnet_python's own protocol (``talkfreq evaluate ... sync_protocol=syncnet_python``).

What joonson/syncnet_python's ``run_pipeline.py`` + ``run_syncnet.py`` (and Wav2Lip's ``calculate_scores_real_videos``
built on them) do to one video, and what this module does to each video of the evaluation - its own faces, not the
reference's boxes:

1. detect faces on every frame of the 25 fps video (``face.backend=s3fd``: S3FD at 0.25 scale, conf > 0.9,
   :mod:`talkfreq.face.s3fd`); ``face.detect_every`` is not used, the original looks at every frame;
2. ``track_shot`` over the clip (:func:`talkfreq.face.shot_track.clip_tracks`: IoU > 0.5, gaps of up to 25
   frames, more than 100 detections, faces above 100 px, settings in ``sync_pipeline``);
3. per track, ``crop_video``: centre and half side median-filtered over 13 frames, the 224 px crop of the padded
   frame (:func:`talkfreq.metrics.sync_v2.crop_syncnet_v2_at`), and the audio cut to the track, samples
   ``640 f0 .. 640 (f1 + 1)`` (``ffmpeg -ss f0/25 -to (f1+1)/25``);
4. per track, syncnet_v2 over ``min(frames, samples // 640) - 5`` windows, 13 MFCCs of the track's audio, distances
   over +-15 frames: one ``dist conf`` line per track in the original. A video's LSE-D / LSE-C here is the mean
   over its tracks (what averaging those lines gives) and its offset that of its longest track; with several
   tracks a note lists each.

Not reproduced: PySceneDetect's shot cuts (the clip is one shot, as when the original finds no cut) and the lossy
round trips of the original (``-qscale:v 2`` MPEG-4 and JPEG frames, the XVID crop video read back through JPEG):
talkfreq crops the decoded frames directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from talkfreq.errors import ConfigError
from talkfreq.face import FaceConfig, detect_all, make_detector
from talkfreq.face.shot_track import ShotTrack, TrackShotConfig, clip_tracks, crop_centres
from talkfreq.metrics.sync import LSEResult

PROTOCOLS = ("talkfreq", "syncnet_python")


def check_protocol(protocol: str, *, kind: Optional[str]) -> None:
    """One-line ConfigError for an unknown protocol, or ``syncnet_python`` with an expert other than syncnet_v2."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"sync_protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "syncnet_python" and kind is not None and kind != "syncnet_v2":
        raise ConfigError("sync_protocol=syncnet_python scores with the original syncnet_v2.model only (its crops "
                          "and MFCCs); this --syncnet is a Wav2Lip-style expert: use sync_protocol=talkfreq")


def detect_every_frame(video: Path, *, face: FaceConfig, fps: float, progress=None) -> list[np.ndarray]:
    """(K, 5) detections per frame of ``video`` on the ``fps`` timeline, full frames, best score first."""
    from talkfreq.io import VideoReader

    reader = VideoReader(video, fps=fps)
    total = len(reader) or None

    def on_frame(i: int) -> None:
        if progress and i % 10 == 9:
            progress("lse faces", i + 1, total)

    dets = detect_all(make_detector(face), reader, on_frame=on_frame)
    # S3FD's list is already best first (its last NMS keeps that order); the other backends are put in that order
    return [d[np.argsort(-d[:, 4], kind="stable")] if d is not None and len(d) else np.zeros((0, 5), np.float32)
            for d in dets]


def track_lse(video: Path, wav: np.ndarray, tracks: list[ShotTrack], *, scorer, cfg: TrackShotConfig,
              fps: float, batch_size: int, device) -> list[tuple[ShotTrack, Optional[LSEResult], str]]:
    """Score each track of ``video`` (one decoding pass): [(track, LSE or None, why None)]."""
    from talkfreq.io import VideoReader
    from talkfreq.metrics.sync_v2 import crop_syncnet_v2_at

    step = int(round(16000 / fps))
    plans = []
    for t in tracks:
        seg = wav[step * int(t.frames[0]):step * (int(t.frames[-1]) + 1)]
        plans.append((t, crop_centres(t.boxes, kernel=cfg.median_kernel), seg,
                      scorer.stream(seg, fps=fps, batch_size=batch_size, device=device)))
    last = max(int(t.frames[-1]) for t in tracks)
    for i, frame in enumerate(VideoReader(video, fps=fps)):
        if i > last:
            break
        for t, (x, y, s), _, stream in plans:
            k = i - int(t.frames[0])
            if 0 <= k < len(t.frames):
                stream.add(crop_syncnet_v2_at(frame, x[k], y[k], s[k], crop_scale=cfg.crop_scale)[None])
    out = []
    for t, _, seg, stream in plans:
        try:
            out.append((t, scorer.scores(stream, samples=len(seg)), ""))
        except ValueError as exc:  # a track (or its audio) shorter than one window
            out.append((t, None, str(exc)))
    return out


def syncnet_python_lse(video: Path, wav: np.ndarray, *, name: str, scorer, face: FaceConfig, cfg: TrackShotConfig,
                       fps: float, batch_size: int, device, notes: list[str],
                       progress=None) -> Optional[LSEResult]:
    """One video's LSE by the protocol of the module docstring (None when it has no scorable track, with a note)."""
    tracks = clip_tracks(detect_every_frame(video, face=face, fps=fps, progress=progress), cfg=cfg)
    if not tracks:
        notes.append(f"LSE (syncnet_python): {name}: no face track of more than {cfg.min_track} detections with "
                     f"faces above {cfg.min_face_size:g} px (run_pipeline.py would write no crop)")
        return None
    scored = track_lse(video, wav, tracks, scorer=scorer, cfg=cfg, fps=fps, batch_size=batch_size, device=device)
    good = [(t, r) for t, r, _ in scored if r is not None]
    for t, r, why in scored:
        if r is None:
            notes.append(f"LSE (syncnet_python): {name}: track at frames {t.frames[0]}-{t.frames[-1]}: {why}")
    if not good:
        return None
    if len(scored) > 1:
        notes.append(f"LSE (syncnet_python): {name}: {len(scored)} face tracks, mean LSE over them: " + "; ".join(
            f"frames {t.frames[0]}-{t.frames[-1]} LSE-D {r.lse_d:.3f} LSE-C {r.lse_c:.3f} offset {r.offset:+d}"
            for t, r in good))
    longest = max(good, key=lambda tr: len(tr[0].frames))[1]
    return LSEResult(lse_d=float(np.mean([r.lse_d for _, r in good])),
                     lse_c=float(np.mean([r.lse_c for _, r in good])), offset=longest.offset,
                     offset_support=longest.offset_support)
