"""``talkfreq refine``: run a trained SOVQAE refiner over the face of any talking-head video, streaming.

Two streaming passes over the video on a constant-frame-rate timeline (the source's average rate unless ``fps`` is
given; so a 25 fps FREAK/Wav2Lip output stays 25 fps and a VFR phone clip comes out CFR with the same duration):

1. face boxes: a detection pass on small frames (``face.detect_max_side``) then tracking, miss filling and smoothing
   (:func:`talkfreq.face.track_faces`) - or the boxes of a prepared clip (``boxes_from``), scaled if the video has
   another size;
2. the refine pass at full size: crop each face directly at the refiner's ``image_size`` (:func:`crop_face`),
   refine the crops in batches, paste them back through a feathered mask (:mod:`talkfreq.pipeline.paste`), write.

Memory is bounded by a few batches of frames, whatever the video's length: the pass runs the three-stage loop of
:mod:`talkfreq.pipeline.stream` (decode + crop and paste + encode overlapped with the network when
``accel.overlap``), and the network runs as ``accel`` says (:mod:`talkfreq.pipeline.accel`). The audio track is
decoded once, put on the video's timeline and muxed into the output (at its own sample rate, or 48 kHz when AAC
cannot encode that rate: :func:`talkfreq.io.aac_rate`); the writer is atomic, so a failed run leaves no output file.
Frames without a face are written unchanged and counted; a video with no face on any frame is a one-line error, as
in ``infer`` and ``prepare``. An odd frame size is padded by one pixel (``RefineResult.padded_from``).
``RefineResult.timings`` holds the seconds of each stage (``STAGES``).

Temporal stability (ours; LaDTalk claims temporal consistency without saying how): ``temporal_smoothing = alpha``
smooths the encoder's pre-quantisation latents over consecutive frames, ``z~_t = alpha z~_{t-1} + (1 - alpha) z_t``,
restarting at every frame after a face-less one. A latent that hovers near the boundary between two codes then
stops flipping from frame to frame (the flicker a VQ decoder shows), at the cost of a lag of about
``alpha / (1 - alpha)`` frames in fast changes. ``RefineResult.temporal_flip_rate`` reports the code flips.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from talkfreq.device import resolve_device
from talkfreq.errors import MediaError, TalkfreqError, require_file
from talkfreq.face import crop_face
from talkfreq.face.boxes import Progress, detect_boxes
from talkfreq.io import check_output
from talkfreq.models.loading import inference_defaults, load_refiner, with_fidelity
from talkfreq.pipeline.accel import Accel, inference, prepare_models, resolve_accel
from talkfreq.pipeline.common import StageTimer, StreamConfig
from talkfreq.pipeline.paste import feather_mask, paste_many
from talkfreq.pipeline.stream import batched, run_stream

# seconds per stage, each measured where it runs (with overlap they add up to more than wall, the whole call)
STAGES = ("decode", "detect", "crop", "refiner", "paste", "encode", "wall")


@dataclass
class RefineConfig(StreamConfig):
    """Settings of ``talkfreq refine``: :class:`~talkfreq.pipeline.common.StreamConfig` plus the output timeline."""

    fps: Optional[float] = None  # output timeline; None: the source's average rate (25 if unknown)


@dataclass
class RefineResult:
    out: Path
    frames: int
    refined: int
    no_face: int  # frames written unchanged because no face box was available
    fps: float
    width: int  # as written: an odd input size is padded by one pixel
    height: int
    audio: bool
    alpha: float
    temporal_flip_rate: float  # code flips between consecutive refined frames (NaN with fewer than 2)
    seconds_boxes: float  # wall time of the box pass
    seconds_refine: float  # wall time of the refine pass (decode + crop + network + paste + encode)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (STAGES; overlapped: sum > wall)
    padded_from: Optional[tuple[int, int]] = None  # (width, height) of the input when it was odd and got padded

    @property
    def frames_per_second(self) -> float:
        """End-to-end throughput: every frame over both passes' wall time."""
        return self.frames / max(self.seconds_boxes + self.seconds_refine, 1e-9)


class LatentSmoother:
    """Exponential smoothing of (B, D, h, w) latents over consecutive frames, carried across batches."""

    def __init__(self, alpha: float):
        self.alpha = float(alpha)
        self.state: Optional[Tensor] = None

    def __call__(self, z: Tensor, *, starts: Sequence[bool]) -> Tensor:
        """``z`` (B, D, h, w) of consecutive frames; ``starts[b]`` restarts the average at frame b."""
        if self.alpha <= 0:
            return z
        out = torch.empty_like(z)
        for b in range(z.shape[0]):
            if starts[b] or self.state is None:
                self.state = z[b : b + 1]
            else:
                self.state = self.alpha * self.state + (1 - self.alpha) * z[b : b + 1]
            out[b : b + 1] = self.state
        return out


def refine_tensor(model, x: Tensor, *, smoother: LatentSmoother | None = None,
                  starts: Sequence[bool] | None = None) -> tuple[Tensor, Tensor]:
    """(B, 3, S, S) in [-1, 1] on the model's device -> (refined (B, 3, S, S), primary code indices (B, h, w)).

    Run it under an :class:`~talkfreq.pipeline.accel.Accel`'s autocast: encoder and decoder take the compute dtype,
    while the latent smoothing and the nearest-code search run in float32 with autocast off (ours: a compute-dtype
    rounding of the latent is a small shift the quantiser snaps back inside the NRoUB, but only if the distances
    that pick the code are themselves exact).
    """
    def smooth(z: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return smoother(z.float(), starts=starts if starts is not None else [False] * len(z))

    return model.restore(x, latent_filter=None if smoother is None else smooth)


def refine_crops(model, crops: np.ndarray, *, smoother: LatentSmoother | None = None,
                 starts: Sequence[bool] | None = None, accel: Accel | None = None) -> tuple[np.ndarray, Tensor]:
    """Refine (B, S, S, 3) uint8 crops (S = ``model.config.image_size``) -> (refined (B, S, S, 3) uint8,
    primary code indices (B, h, w) on the CPU). ``smoother`` with ``starts`` smooths latents over the batch;
    ``accel`` (default: plain fp32 on the model's device) says how the networks run."""
    accel = accel or Accel.plain(next(model.parameters()).device)
    with inference(accel):
        x_hat, idx = refine_tensor(model, accel.images(crops), smoother=smoother, starts=starts)
        return accel.host(accel.to_u8(x_hat)), idx.cpu()


def refine_sequence(model, crops: np.ndarray, *, alpha: float = 0.0, batch_size: int = 8
                    ) -> tuple[np.ndarray, Tensor]:
    """(T, S, S, 3) uint8 consecutive face crops -> (refined (T, S, S, 3) uint8, indices (T, h, w)). For
    measuring what temporal smoothing does (``alpha`` 0 = off) without a video round trip."""
    smoother = LatentSmoother(alpha)
    outs, idx = [], []
    for start in range(0, len(crops), batch_size):
        starts = [start == 0] + [False] * (min(batch_size, len(crops) - start) - 1)
        r, i = refine_crops(model, crops[start : start + batch_size], smoother=smoother, starts=starts)
        outs.append(r)
        idx.append(i)
    return np.concatenate(outs), torch.cat(idx)


def _boxes_from_clip(clip_dir: Path, *, width: int, height: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(crop boxes (N, 4) in this video's pixels, valid (N,), fps) from a prepared clip folder."""
    from talkfreq.data.prepared import PreparedClip

    clip = PreparedClip(clip_dir)
    m = clip.meta
    boxes = np.asarray(clip.boxes, np.float64).copy()
    if (m.source_width, m.source_height) != (width, height):  # e.g. a generated video at another resolution
        boxes[:, [0, 2]] *= width / m.source_width
        boxes[:, [1, 3]] *= height / m.source_height
    return boxes, np.asarray(clip.valid, bool), float(m.fps)


def refine_video(video: str | Path, *, model, out: str | Path, cfg: RefineConfig, alpha: float = 0.0,
                 boxes_from: str | Path | None = None, progress: Progress | None = None) -> RefineResult:
    """Refine every face frame of ``video`` with ``model`` (a :class:`SOVQAE`) into ``out`` (.mp4); see the module
    docstring. ``alpha`` is the temporal smoothing actually used (the caller resolves ``cfg.temporal_smoothing``)."""
    from talkfreq.io import VideoReader, VideoWriter, aac_rate, load_video_audio, probe

    t_start = time.perf_counter()
    video, out = Path(video), Path(out)
    info = probe(video)  # a missing or unreadable file fails here, in one line
    if not info.has_video:
        raise MediaError(f"{video}: no video stream")
    check_output(out, inputs=[video])
    accel = resolve_accel(cfg.accel, resolve_device(cfg.device))
    prepare_models(model, accel=accel)
    size = int(model.config.image_size)
    timer = StageTimer(STAGES)

    t0 = time.perf_counter()
    fps = float(cfg.fps or info.fps or 25.0)
    if boxes_from is not None:
        boxes, valid, clip_fps = _boxes_from_clip(Path(boxes_from), width=info.width, height=info.height)
        fps, n = (float(cfg.fps) if cfg.fps else clip_fps), len(boxes)
        expected = len(VideoReader(video, fps=fps))  # from the headers: cheap, good to a frame or two
        if abs(expected - n) > max(2, n // 100):
            raise TalkfreqError(f"{boxes_from}: holds boxes for {n} frames, but {video} has about {expected} "
                                f"frames at {fps:g} fps; was it prepared from this video?")
    else:
        boxes, valid, n = detect_boxes(video, cfg=cfg.face, fps=fps, progress=progress, timer=timer)
    if not np.asarray(valid).any():
        where = f"in the boxes of {boxes_from}" if boxes_from is not None else "on any frame"
        raise MediaError(f"{video}: no face found {where}; nothing to refine")
    seconds_boxes = time.perf_counter() - t0

    t1 = time.perf_counter()
    reader = VideoReader(video, fps=fps)
    audio, rate = None, aac_rate(info.audio_rate)
    if info.has_audio:
        audio = load_video_audio(video, sample_rate=rate, duration=n / fps)
    mask = feather_mask(size, region=cfg.region, feather=cfg.feather)
    smoother = LatentSmoother(alpha)
    counts = {"written": 0, "refined": 0, "flips": 0, "pairs": 0}
    prev_idx: list[Optional[Tensor]] = [None]  # codes of the previous frame when it was refined

    def has_face(i: int) -> bool:
        return i < n and bool(valid[i])

    def batches():  # the producer: decode, crop
        for items in batched(enumerate(timer.iterate(reader, "decode")), cfg.batch_size):
            face_ids = [k for k, (i, _) in enumerate(items) if has_face(i)]
            with timer("crop"):
                crops = np.stack([crop_face(items[k][1], boxes[items[k][0]], size=size) for k in face_ids]) \
                    if face_ids else None
            yield items, face_ids, crops

    def compute(batch):  # this thread: the refiner
        items, face_ids, crops = batch
        if not face_ids:
            return items, face_ids, None, None
        with timer("refiner"):
            new, idx = refine_crops(model, crops, smoother=smoother, accel=accel,
                                    starts=[not has_face(items[k][0] - 1) for k in face_ids])
        return items, face_ids, new, idx

    def consume(result, writer) -> None:  # the consumer: paste, code flips, encode
        items, face_ids, new, idx = result
        frames = [f for _, f in items]
        if face_ids:
            with timer("paste"):
                pasted = paste_many([frames[k] for k in face_ids], new, [boxes[items[k][0]] for k in face_ids],
                                    mask=mask)
            for j, k in enumerate(face_ids):
                frames[k] = pasted[j]
                if prev_idx[0] is not None and has_face(items[k][0] - 1):
                    counts["flips"] += int((idx[j] != prev_idx[0]).sum())
                    counts["pairs"] += idx[j].numel()
                prev_idx[0] = idx[j]
        with timer("encode"):
            for frame in frames:
                writer.write(frame)
        counts["written"] += len(items)
        counts["refined"] += len(face_ids)
        if progress:
            progress("refine", counts["written"], n)

    with VideoWriter(out, fps=fps, width=reader.source_width, height=reader.source_height, audio=audio,
                     sample_rate=rate, crf=cfg.crf) as writer:
        run_stream(batches(), compute, lambda r: consume(r, writer), overlap=accel.overlap)
    seconds_refine = time.perf_counter() - t1
    written, refined, pairs = counts["written"], counts["refined"], counts["pairs"]
    return RefineResult(
        out=out, frames=written, refined=refined, no_face=written - refined, fps=fps, width=writer.out_width,
        height=writer.out_height, audio=audio is not None, alpha=alpha,
        padded_from=(reader.source_width, reader.source_height) if writer.padded else None,
        temporal_flip_rate=counts["flips"] / pairs if pairs else float("nan"), seconds_boxes=seconds_boxes,
        seconds_refine=seconds_refine, timings={**timer.seconds, "wall": time.perf_counter() - t_start},
    )


def refine(video: str | Path, *, refiner, out: str | Path, cfg: RefineConfig | None = None,
           boxes_from: str | Path | None = None, progress: Progress | None = None) -> RefineResult:
    """``talkfreq refine``: :func:`refine_video` with ``refiner`` a :class:`SOVQAE` or a path to one (its
    ``inference.json`` smoothing then applies unless ``cfg.temporal_smoothing`` is set) and ``cfg.fidelity``."""
    cfg = cfg or RefineConfig()
    require_file(video, "video")  # before loading the model: the cheapest check first
    alpha = cfg.temporal_smoothing
    if isinstance(refiner, (str, Path)):
        model = load_refiner(refiner)
        if alpha is None:
            alpha = float(inference_defaults(refiner).get("latent_smoothing", 0.0))
    else:
        model = refiner
    return refine_video(video, model=with_fidelity(model, cfg.fidelity), out=out, cfg=cfg, alpha=alpha or 0.0,
                        boxes_from=boxes_from, progress=progress)
