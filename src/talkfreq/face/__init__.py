"""Faces: detection, tracking and smoothing over a clip, the miss policy, and square sub-pixel crops."""

from talkfreq.face.config import FaceConfig, detection_side
from talkfreq.face.crop import box_to_affine, crop_face, crop_faces, crop_to_frame_affine
from talkfreq.face.detect import (
    BoxesDetector,
    FaceDetector,
    HaarDetector,
    MediaPipeDetector,
    detect_all,
    detect_clip,
    make_detector,
)
from talkfreq.face.track import (
    FaceTrack,
    Follower,
    bridge_skipped,
    fill_and_smooth,
    select_track,
    square_boxes,
    track_faces,
)

__all__ = [
    "BoxesDetector",
    "FaceConfig",
    "FaceDetector",
    "FaceTrack",
    "Follower",
    "HaarDetector",
    "MediaPipeDetector",
    "box_to_affine",
    "bridge_skipped",
    "crop_face",
    "crop_faces",
    "crop_to_frame_affine",
    "detect_all",
    "detect_clip",
    "detection_side",
    "fill_and_smooth",
    "make_detector",
    "select_track",
    "square_boxes",
    "track_faces",
]
