"""``talkfreq infer``: a talking-head video from a face and an audio file — stage 1 (FREAK or Wav2Lip), then the
SOVQAE refiner, pasted back into the frames, streaming.

**Modes.** *Dubbing* (default for a video): every output frame is a frame of the face video; stage 1 sees it with
its dubbing mask (the lower half, or the ``lower`` ellipse for a FREAK trained with ``freak.dub_mask=lower``; pose and
upper face kept) and the refined face is pasted back over the ``lower`` region; where the generator hid exactly
that ellipse, the feather stops at its edge (``keep_visible``), so the frame's own pixels stay outside it. A
video longer than the audio is cut to it; a shorter one plays forward-backward (:mod:`talkfreq.pipeline.sources`).
*One-shot* (default for an image): a single portrait gives appearance; stage 1 sees it fully masked with the
portrait as the reference, and the result is pasted over the ``face`` region of the still. One-shot from a video
uses one of its frames as the portrait (``reference``: the first frame with a face, or a frame index).

**Reference (dubbing).** ``reference=same`` gives stage 1 each frame itself, unmasked, as the reference, as
Wav2Lip's inference does; ``first`` uses the first frame with a face for every frame, an integer that frame of
the video (ours: a fixed reference keeps the appearance steady when the video's own mouth should not leak in);
``bank`` gives frame k the crop of the model's reference bank (:mod:`talkfreq.data.retrieval`: the identity's
training frames) whose audio is nearest to frame k's driving audio, as the model was trained. ``auto`` (default):
``bank`` for a model folder that holds a bank, else ``same``.

**Timeline.** The output runs at ``fps`` (25) for N = round(audio seconds x fps) frames; video frames are put on
that timeline by timestamps (:class:`~talkfreq.io.VideoReader`). Frame k gets the audio window of time k / fps,
built as training builds it (:mod:`talkfreq.pipeline.inputs`). The output's AAC track is the driving audio at its
own rate (mono; 48 kHz when the rate is not an AAC rate, :func:`talkfreq.io.aac_rate`), fitted to N / fps seconds:
the audio's length within half a frame. A silent track (a pause, a still, a placeholder) is a valid input: the model
gets the mel of silence, which its training pauses taught to be a closed mouth at rest.

**Streaming.** Two passes for a video, as ``refine``: face boxes on small frames (the whole track is needed for
miss filling and centred smoothing; N x 4 floats), then decode -> crop -> stage 1 -> refiner -> paste -> encode in
batches of ``batch_size`` frames, through :func:`talkfreq.pipeline.stream.run_stream`: with ``accel.overlap``
decode + crop run in one background thread and paste + encode in another while the networks run (bit-identical
output either way). Stage 1 and the refiner run back to back on the device (the stage-1 faces are made 8-bit there,
as the saved stage-1 video holds them, and go to the host only for ``save_stage1``), in the dtype, memory format and
compilation of :mod:`talkfreq.pipeline.accel`. Memory is a few batches of frames plus the audio features, whatever
the length. Frames without a face are written unchanged and counted. ``InferResult.timings`` holds the seconds of
each stage (``STAGES``: decode, detect, audio, crop, stage1, refiner, paste, encode, measured where each runs, so
with overlap they can add up to more than ``wall``, the whole call) for the benchmark.

**Errors.** Every input is checked before any frame is processed — files, image face, empty audio, model
kinds (a refiner given as stage 1 and the reverse), face sizes (the refiner's ``image_size`` must be stage 1's or a
whole multiple of it: a larger refiner gets stage 1's faces brought up bicubically, as its training pairs were, and
its faces are pasted at its own size),
output paths, room for the frame cache — each a one-line :class:`TalkfreqError`; the writers are atomic, so a
failed or stopped run leaves no output. Odd frame sizes are padded by one pixel (h264's yuv420p needs even sizes):
``InferResult.width``/``height`` are the written size, ``padded_from`` the input's.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from talkfreq.audio.features import SpeechFeatureConfig
from talkfreq.audio.mel import MelConfig, melspectrogram
from talkfreq.data.retrieval import BANK_FILE, ReferenceBank, mel_keys
from talkfreq.device import resolve_device
from talkfreq.errors import ConfigError, MediaError, TalkfreqError, require_file
from talkfreq.face import crop_face
from talkfreq.face.boxes import Progress, detect_boxes
from talkfreq.io import VideoReader, VideoWriter, aac_rate, check_output, fit_length, is_silent, load_audio, probe
from talkfreq.models.loading import inference_defaults, load_refiner, load_stage1, with_fidelity
from talkfreq.models.registry import kind_of
from talkfreq.models.sovqae import SOVQAE
from talkfreq.pipeline import inputs as mi
from talkfreq.pipeline.accel import Accel, inference, prepare_models, resolve_accel
from talkfreq.pipeline.common import StageTimer, StreamConfig
from talkfreq.pipeline.paste import feather_mask, paste_many
from talkfreq.pipeline.refine import LatentSmoother, refine_tensor
from talkfreq.pipeline.sources import check_cache_space, image_face_box, is_image, read_image, video_frames
from talkfreq.pipeline.stream import batched, run_stream

MODES = ("dubbing", "one-shot")
STAGES = ("decode", "detect", "audio", "crop", "stage1", "refiner", "paste", "encode", "wall")
_MODE_DEFAULTS = {"dubbing": ("half", "lower"), "one-shot": ("full", "face")}  # mask kind, paste region


@dataclass
class InferConfig(StreamConfig):
    """Settings of ``talkfreq infer``: :class:`~talkfreq.pipeline.common.StreamConfig` plus the fields below."""

    mode: Optional[str] = None  # dubbing | one-shot; None: dubbing for a video, one-shot for an image
    region: Optional[str] = None  # face | lower; None: lower for dubbing, face for one-shot
    # the feather stops at the pasted ellipse's edge (paste.feather_mask inside=True), so every pixel outside it is
    # the frame's own; None: when the generator hides exactly that ellipse (dubbing, dub mask and region `lower`)
    keep_visible: Optional[bool] = None
    fps: float = 25.0  # output frame rate
    reference: str = "auto"  # auto | same | first | bank | a frame index (see the module docstring)
    box: Optional[list[float]] = None  # a face box x0,y0,x1,y1 in frame pixels instead of detection
    # speech.model "" = not given: a speech-feature checkpoint does not record its speech model (see inputs)
    speech: SpeechFeatureConfig = field(default_factory=lambda: SpeechFeatureConfig(model=""))
    cache_dir: Optional[str] = None  # ping-pong frame cache (an unnamed file); None: the temp folder

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode is not None and self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.fps) and 1.0 <= self.fps <= 240.0):
            raise ConfigError(f"fps must be in [1, 240], got {self.fps}")
        self.reference_choice()
        if self.box is not None:
            b = [float(v) for v in self.box]
            if len(b) != 4 or not all(map(math.isfinite, b)) or b[2] <= b[0] or b[3] <= b[1]:
                raise ConfigError(f"box must be x0,y0,x1,y1 with x1 > x0 and y1 > y0, got {self.box}")

    def reference_choice(self) -> Union[str, int]:
        """``"same"``, ``"first"`` or a frame index."""
        ref = str(self.reference).strip().lower()
        if ref in ("auto", "same", "first", "bank"):
            return ref
        if ref.isdigit():
            return int(ref)
        raise ConfigError(f"reference must be auto, same, first, bank or a frame index, got {self.reference!r}")


@dataclass
class InferResult:
    out: Path
    stage1_out: Optional[Path]
    mode: str
    frames: int  # written, = round(audio seconds x fps)
    generated: int  # frames with a generated face
    no_face: int  # frames written unchanged because no face box was available
    fps: float
    width: int  # as written: an odd input size is padded by one pixel
    height: int
    audio_seconds: float
    source_frames: int  # frames of the face video on the output timeline (1 for a still)
    pingpong: bool  # the video was shorter than the audio and played forward-backward
    refined: bool
    timings: dict[str, float]  # seconds per stage (STAGES; see the module docstring)
    seconds: float  # whole call, checks included
    padded_from: Optional[tuple[int, int]] = None  # (width, height) of the input when it was odd and got padded
    silent: bool = False  # the driving audio is below -60 dBFS (the face gets a closed, resting mouth)

    @property
    def frames_per_second(self) -> float:
        """End-to-end throughput: every written frame over the whole wall time."""
        return self.frames / max(self.seconds, 1e-9)


@dataclass
class _Batch:
    """One batch on its way through the stream: frames in, face crops and audio windows, then generated crops."""

    items: list[tuple[int, int, np.ndarray]]  # (output index, source index, full frame)
    face_ids: list[int]  # positions in ``items`` with a face box
    starts: list[bool] = field(default_factory=list)  # per face: the refiner's latent smoothing restarts
    targets: Optional[np.ndarray] = None  # (F, S, S, 3) uint8 crops
    windows: Optional[np.ndarray] = None  # (F, *window) float32 audio
    refs: Optional[np.ndarray] = None  # (F, S, S, 3) uint8 per-frame references (reference bank), else None
    crops: list[Optional[np.ndarray]] = field(default_factory=list)  # per writer (final, stage 1): (F, S, S, 3) uint8


def generate(stage1, refiner, *, accel: Accel, targets: np.ndarray, audio: np.ndarray, mask: mi.MaskKind,
             reference: np.ndarray | None = None, smoother: LatentSmoother | None = None, starts=None,
             keep_stage1: bool = False, timer: StageTimer | None = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The networks of one batch as ``infer`` runs them (also what the benchmarks time).

    ``targets`` (B, S, S, 3) uint8 face crops, ``audio`` (B, *window), ``reference`` one (S, S, 3) crop for every
    frame, (B, S, S, 3) one per frame, or None (each target is its own reference) -> (final faces uint8: refined
    (B, R, R, 3) at the refiner's size R, a whole multiple of S, or stage 1's (B, S, S, 3) when ``refiner`` is None;
    stage-1 faces when ``keep_stage1``, else None). Stage 1
    and the refiner run back to back on ``accel.device``; ``timer`` gets ``stage1`` and ``refiner`` seconds (the
    device synchronised in each).
    """
    timer = timer or StageTimer(())
    with timer("stage1"), inference(accel):
        target = accel.images(targets)
        ref = target if reference is None else accel.images(np.broadcast_to(reference, targets.shape))
        gen = accel.to_u8(mi.stage1_forward(stage1, target=target, reference=ref, mask=mask,
                                            audio=accel.to_device(audio)))
        gen_host = accel.host(gen) if refiner is None or keep_stage1 else None
        accel.sync()
    if refiner is None:
        return gen_host, gen_host if keep_stage1 else None
    with timer("refiner"), inference(accel):
        x_hat, _ = refine_tensor(refiner, accel.images(upscale_u8(gen, face_sizes(stage1, refiner)[1])),
                                 smoother=smoother, starts=starts)
        return accel.host(accel.to_u8(x_hat)), gen_host


def upscale_u8(faces: Tensor, size: int) -> Tensor:
    """uint8 (B, S, S, 3) faces -> (B, size, size, 3): bicubic, half-pixel centres, rounded to 8 bits, as OpenCV's
    INTER_CUBIC brought stage 1's outputs up to a larger refiner's training crops
    (:func:`talkfreq.data.degradations.stage1_output_pairs`). Unchanged at the same size."""
    if faces.shape[1] == size:
        return faces
    x = F.interpolate(faces.movedim(-1, 1).float(), size=(size, size), mode="bicubic", align_corners=False)
    return x.round_().clamp_(0, 255).byte().movedim(1, -1)


def face_sizes(stage1, refiner) -> tuple[int, int]:
    """(stage 1's face size, the final face size: the refiner's, or stage 1's without one)."""
    s1 = int(stage1.config.image_size)
    return s1, s1 if refiner is None else int(refiner.config.image_size)


def _load_models(stage1, refiner, cfg: InferConfig, accel: Accel):
    """(stage-1 model, refiner or None, latent smoothing alpha), kinds and sizes checked, prepared for ``accel``."""
    if isinstance(stage1, (str, Path)):
        stage1 = load_stage1(stage1)
    alpha = cfg.temporal_smoothing
    if isinstance(refiner, (str, Path)):
        path = Path(refiner)
        if alpha is None:
            alpha = float(inference_defaults(path).get("latent_smoothing", 0.0))
        refiner = load_refiner(path)
    if refiner is not None and not isinstance(refiner, SOVQAE):
        raise TalkfreqError(f"the refiner must be a SOVQAE, got {type(refiner).__name__}")
    if refiner is not None:
        refiner = with_fidelity(refiner, cfg.fidelity)
    s1, s2 = face_sizes(stage1, refiner)
    if s2 % s1:
        raise TalkfreqError(f"face size mismatch: the stage-1 model makes {s1} px faces but the refiner was built "
                            f"for {s2} px; use a refiner trained at {s1} px or a whole multiple of it")
    stage1, refiner = prepare_models(stage1, refiner, accel=accel)
    return stage1, refiner, float(alpha or 0.0)


def _driving_audio(path: Path, *, fps: float):
    """(16 kHz wav (L,), n_frames, seconds, mux audio (n_frames / fps s), mux rate): every audio check up front."""
    rate16 = MelConfig().sample_rate
    wav = load_audio(path, sample_rate=rate16)  # missing / unreadable / no track / empty: one-line errors
    seconds = len(wav) / rate16
    n = int(round(seconds * fps))
    if n < 1:
        raise MediaError(f"{path}: the audio lasts {seconds * 1000:.0f} ms, less than one video frame")
    mux_rate = aac_rate(probe(path).audio_rate)
    mux = wav if mux_rate == rate16 else load_audio(path, sample_rate=mux_rate)
    return (fit_length(wav, int(round(n / fps * rate16))), n, seconds,
            fit_length(mux, int(round(n / fps * mux_rate))), mux_rate)


def _frame_at(video: Path, index: int, *, fps: float) -> np.ndarray:
    """Full-size frame ``index`` of ``video`` on the ``fps`` timeline (decodes up to it)."""
    for i, frame in enumerate(VideoReader(video, fps=fps)):
        if i == index:
            return frame
    raise TalkfreqError(f"{video}: has no frame {index}")


def _reference_bank(stage1, choice, *, mode: str) -> Optional[ReferenceBank]:
    """The stage-1 model folder's reference bank when ``choice`` asks for it (``bank``, or ``auto`` and one is
    there) in dubbing; a one-line error for ``bank`` without one."""
    if mode != "dubbing" or choice not in ("auto", "bank"):
        return None
    bank = ReferenceBank.load(stage1) if isinstance(stage1, (str, Path)) and Path(stage1).is_dir() else None
    if bank is None and choice == "bank":
        raise TalkfreqError(f"reference=bank: the stage-1 model {stage1} has no {BANK_FILE} (train it with "
                            f"data.reference=audio, or use reference=same)")
    return bank


def _reference_index(choice, valid: np.ndarray, *, video: Path) -> int:
    idx = int(np.flatnonzero(valid)[0]) if choice in ("same", "first") else int(choice)
    if idx >= len(valid):
        raise TalkfreqError(f"reference={idx}: {video} has only {len(valid)} frames at the output rate")
    if not valid[idx]:
        raise TalkfreqError(f"reference={idx}: no face on frame {idx} of {video}; choose a frame with a face")
    return idx


def infer(face: str | Path, *, audio: str | Path, stage1, out: str | Path, cfg: InferConfig | None = None,
          refiner=None, save_stage1: str | Path | None = None, progress: Progress | None = None) -> InferResult:
    """Make ``out`` (.mp4): ``face`` (video or image) speaking ``audio``; see the module docstring.

    ``stage1``: a FREAK / Wav2Lip model or a path to one; ``refiner``: a SOVQAE, a path, or None (stage 1 only);
    ``save_stage1``: also write the un-refined video there.
    """
    t_start = time.perf_counter()
    cfg = cfg or InferConfig()
    timer = StageTimer(STAGES)
    face, audio, out = Path(face), Path(audio), Path(out)
    stage1_out = Path(save_stage1) if save_stage1 is not None else None

    # ---- checks, cheapest first; nothing below this block runs on bad input
    require_file(face, "face image or video")
    require_file(audio, "audio file")
    still = is_image(face)
    image = read_image(face) if still else None
    if not still and not probe(face).has_video:
        raise MediaError(f"{face}: no video stream (give a video or an image as --face)")
    mode = cfg.mode or ("one-shot" if still else "dubbing")
    mask_kind, default_region = _MODE_DEFAULTS[mode]
    region = cfg.region or default_region
    check_output(out, inputs=[face, audio])
    if stage1_out is not None:
        check_output(stage1_out, inputs=[face, audio])
        if stage1_out.resolve() == out.resolve():
            raise TalkfreqError(f"{stage1_out}: --save-stage1 must differ from --out")
    wav16, n_frames, seconds, mux, mux_rate = _driving_audio(audio, fps=cfg.fps)
    accel = resolve_accel(cfg.accel, resolve_device(cfg.device))
    speech = mi.resolve_speech(stage1, cfg.speech)  # the encoder recorded beside a model/ folder, unless given
    stage1_path, bank = stage1, _reference_bank(stage1, cfg.reference_choice(), mode=mode)
    stage1, refiner, alpha = _load_models(stage1, refiner, cfg, accel)
    if mode == "dubbing":
        mask_kind = mi.dub_mask(stage1)  # the mask this generator was trained with
    if mode == "one-shot" and not kind_of(stage1).one_shot:
        raise TalkfreqError(f"one-shot needs a FREAK stage-1 model: {type(stage1).__name__} is a dubbing model "
                            f"(trained on half masks only); use --mode dubbing with a video")
    spec = mi.audio_spec(stage1)
    mi.check_speech_config(spec, speech, source="stage-1 model")
    size, final_size = face_sizes(stage1, refiner)
    if bank is not None and bank.crops.shape[1] != size:
        raise TalkfreqError(f"{stage1_path}/{BANK_FILE}: {bank.crops.shape[1]} px crops for a {size} px model")
    if still:
        boxes = image_face_box(image, cfg=cfg.face, source=str(face), fixed_box=cfg.box)[None]

    # ---- audio features, then the face source
    with timer("audio"):
        track = mi.audio_track(wav16, n_frames=n_frames, fps=cfg.fps, spec=spec, speech=speech)
    choice = cfg.reference_choice()
    choice = "same" if choice in ("auto", "bank") else choice  # bank: per frame, below
    bank_mel = None if bank is None else (track if spec.kind == "mel" else melspectrogram(wav16))
    ref_crop = None
    n_src = 1
    if still:
        valid = np.ones(1, bool)
    else:
        boxes, valid, n_src = detect_boxes(face, cfg=cfg.face, fps=cfg.fps, progress=progress, fixed_box=cfg.box,
                                           timer=timer)
        if not valid.any():
            raise MediaError(f"{face}: no face found on any frame; give one with --box x0,y0,x1,y1")
        if mode == "one-shot" or choice != "same":
            idx = _reference_index(choice, valid, video=face)
            with timer("decode"):
                frame = _frame_at(face, idx, fps=cfg.fps)
            if mode == "one-shot":  # the chosen frame becomes the portrait
                image, boxes, valid, n_src, still = frame, boxes[idx][None], np.ones(1, bool), 1, True
            else:
                ref_crop = crop_face(frame, boxes[idx], size=size)
    still_crop = None
    if still:
        frames = ((k, 0, image) for k in range(n_frames))
        height, width = image.shape[:2]
        still_crop = crop_face(image, boxes[0], size=size)  # the same for every frame: cut once
    else:
        info = probe(face)
        width, height = info.width, info.height
        if n_frames > n_src:
            check_cache_space(cfg.cache_dir, frames=n_src, shape=(height, width, 3))
        frames = video_frames(face, fps=cfg.fps, n_out=n_frames, n_src=n_src, cache_dir=cfg.cache_dir)

    # ---- the streaming pass
    inside = cfg.keep_visible if cfg.keep_visible is not None else (
        mode == "dubbing" and mask_kind == "lower" and region == "lower")
    masks = {s: feather_mask(s, region=region, feather=cfg.feather, inside=inside)  # stage 1's faces, the refiner's
             for s in {size, final_size}}
    smoother = LatentSmoother(alpha)
    counts = {"written": 0, "generated": 0}

    def batches():  # the producer: decode, crop, audio windows
        prev_face = False  # did the previous output frame have a face (restarts the refiner's smoothing)
        for items in batched(timer.iterate(frames, "decode"), cfg.batch_size):
            b = _Batch(items=items, face_ids=[j for j, (_, src, _) in enumerate(items) if valid[src]])
            for _, src, _ in items:
                if valid[src]:
                    b.starts.append(not prev_face)
                prev_face = bool(valid[src])
            if b.face_ids:
                with timer("crop"):
                    b.targets = (np.broadcast_to(still_crop, (len(b.face_ids), *still_crop.shape))
                                 if still_crop is not None else
                                 np.stack([crop_face(items[j][2], boxes[items[j][1]], size=size) for j in b.face_ids]))
                with timer("audio"):
                    b.windows = np.stack([mi.audio_window(track, items[j][0], fps=cfg.fps, spec=spec)
                                          for j in b.face_ids])
                    if bank is not None:
                        keys = mel_keys(bank_mel, [items[j][0] for j in b.face_ids], fps=cfg.fps)
                        b.refs = bank.crops[bank.nearest(keys)]
            yield b

    def compute(b: _Batch) -> _Batch:  # this thread: the networks
        if b.face_ids:
            b.crops = list(generate(stage1, refiner, accel=accel, targets=b.targets, audio=b.windows, mask=mask_kind,
                                    reference=ref_crop if b.refs is None else b.refs, smoother=smoother,
                                    starts=b.starts,
                                    keep_stage1=stage1_out is not None, timer=timer))
        return b

    def consume(b: _Batch, writers: list[VideoWriter]) -> None:  # the consumer: paste, encode
        outs = [[f for _, _, f in b.items] for _ in writers]
        if b.face_ids:
            with timer("paste"):
                for w, crops in enumerate(b.crops[:len(writers)]):
                    pasted = paste_many([outs[w][j] for j in b.face_ids], crops,
                                        [boxes[b.items[j][1]] for j in b.face_ids], mask=masks[crops.shape[1]])
                    for j, frame in zip(b.face_ids, pasted):
                        outs[w][j] = frame
        with timer("encode"):
            for writer, frames_out in zip(writers, outs):
                for frame in frames_out:
                    writer.write(frame)
        counts["written"] += len(b.items)
        counts["generated"] += len(b.face_ids)
        if progress:
            progress("infer", counts["written"], n_frames)

    try:
        with ExitStack() as stack:
            writers = [stack.enter_context(VideoWriter(p, fps=cfg.fps, width=width, height=height, audio=mux,
                                                       sample_rate=mux_rate, crf=cfg.crf))
                       for p in ([out] if stage1_out is None else [out, stage1_out])]
            run_stream(batches(), compute, lambda b: consume(b, writers), overlap=accel.overlap)
    finally:
        if hasattr(frames, "close"):
            frames.close()  # removes a ping-pong frame cache at once, also on error
    written = counts["written"]
    wall = time.perf_counter() - t_start
    return InferResult(
        out=out, stage1_out=stage1_out, mode=mode, frames=written, generated=counts["generated"],
        no_face=written - counts["generated"], fps=cfg.fps, width=writers[0].out_width,
        height=writers[0].out_height, audio_seconds=seconds,
        padded_from=(width, height) if writers[0].padded else None, silent=is_silent(wav16),
        source_frames=n_src, pingpong=n_frames > n_src and not still, refined=refiner is not None,
        timings={**timer.seconds, "wall": wall}, seconds=wall,
    )
