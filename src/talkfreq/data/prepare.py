"""``talkfreq prepare``: talking-head videos → a prepared dataset (see :mod:`talkfreq.data.prepared`).

Per clip, two streaming passes over the video on the 25 fps timeline: (1) detect faces on small frames, then
track, fill misses and smooth the boxes (N×4 numbers, so the whole clip's boxes fit in memory whatever its length);
(2) decode at full size and write the square crops one by one. Audio is put on the video's timeline, fitted to
exactly N / fps seconds, and turned into the Wav2Lip mel (and optionally HuBERT-style features).

Runs are resumable (finished clips are skipped), atomic per clip, parallel (``workers``) and shardable
(``shard="i/n"``: clip k goes to shard k mod n, over the sorted input list, so array jobs split a big dataset).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkfreq.audio.features import SpeechFeatureConfig, load_speech_model, speech_features
from talkfreq.audio.mel import MelConfig, melspectrogram
from talkfreq.config import to_yaml
from talkfreq.data.prepared import ClipMeta, ClipWriter, assign_split, finished_clip_ids, write_index
from talkfreq.errors import MediaError, TalkfreqError, require_writable_dir
from talkfreq.face import FaceConfig, crop_face, detect_clip, detection_side, make_detector, track_faces
from talkfreq.io.audio import load_video_audio
from talkfreq.io.media import probe
from talkfreq.io.video import VideoReader

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg"}


@dataclass
class PrepareConfig:
    """Settings of ``talkfreq prepare``; the crop size is ``face.crop_size`` (``--size``)."""

    fps: float = 25.0
    face: FaceConfig = field(default_factory=FaceConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    speech: SpeechFeatureConfig = field(default_factory=SpeechFeatureConfig)
    val_fraction: float = 0.1
    workers: int = 1


@dataclass(frozen=True)
class Source:
    path: Path
    identity: str
    clip_id: str


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "clip"


def discover(inputs: Sequence[str | Path]) -> list[Source]:
    """Video files from files and folders, sorted, with identity and a unique clip id each.

    A file given directly, or lying directly in a given folder (HDTF style), is its own identity (its stem); a file in
    a sub-folder of a given folder (HFTK style, ``<identity>/<clip>.mp4``) belongs to that sub-folder's identity.
    """
    found: list[tuple[Path, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in VIDEO_EXTS and not f.name.startswith("."):
                    rel = f.relative_to(p)
                    found.append((f, rel.parts[0] if len(rel.parts) > 1 else f.stem))
            if not any(q == p or p in q.parents for q, _ in found):
                raise MediaError(f"{p}: folder holds no video files ({', '.join(sorted(VIDEO_EXTS))})")
        elif p.exists():
            found.append((p, p.stem))
        else:
            raise MediaError(f"{p}: input not found")
    sources: list[Source] = []
    used: set[str] = set()
    for path, identity in sorted(found, key=lambda t: str(t[0])):
        cid = _safe(path.stem if identity == path.stem else f"{identity}_{path.stem}")
        base, k = cid, 1
        while cid in used:
            k += 1
            cid = f"{base}-{k}"
        used.add(cid)
        sources.append(Source(path=path, identity=_safe(identity), clip_id=cid))
    return sources


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 <= i < n; None → (0, 1)."""
    if not text:
        return 0, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise TalkfreqError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def check_source(path: Path) -> None:
    """Up-front checks that need only the headers: a readable file with a video stream and an audio track."""
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: not a video (no video stream)")
    if not info.has_audio:
        raise MediaError(f"{path}: video has no audio track; prepare needs the speech")


def _track(src: Source, cfg: PrepareConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, tuple[int, int]]:
    """Detection pass → (crop boxes (N,4) in source pixels, face_found (N,), valid (N,), N, (W, H))."""
    detector = make_detector(cfg.face)
    reader = VideoReader(src.path, fps=cfg.fps, max_side=detection_side(cfg.face))
    size = (reader.source_width, reader.source_height)
    dets = detect_clip(detector, reader, cfg=cfg.face, scale=reader.scale, frame_size=size)
    track = track_faces(dets, cfg=cfg.face, frame_size=size, fps=cfg.fps)
    if not track.valid.any():
        raise MediaError(f"{src.path}: no face found in any frame")
    # face-less frames keep the nearest usable box so the frame array stays dense; `valid` tells samplers
    boxes = track.crop_boxes[_nearest(track.valid)].astype(np.float32)
    return boxes, track.found, track.valid, len(dets), size


def _nearest(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the nearest True in ``mask`` (which has at least one)."""
    idx = np.flatnonzero(mask)
    pos = np.arange(mask.shape[0])
    right = idx[np.searchsorted(idx, pos).clip(0, len(idx) - 1)]
    left = idx[(np.searchsorted(idx, pos) - 1).clip(0, len(idx) - 1)]
    return np.where(np.abs(left - pos) <= np.abs(right - pos), left, right)


_SPEECH_CACHE: dict[str, tuple] = {}


def _speech_model(cfg: SpeechFeatureConfig):
    if cfg.model not in _SPEECH_CACHE:
        _SPEECH_CACHE[cfg.model] = load_speech_model(cfg.model, device=cfg.device)
    return _SPEECH_CACHE[cfg.model]


def prepare_clip(src: Source, *, root: Path, cfg: PrepareConfig,
                 on_frames: Callable[[int], None] | None = None) -> ClipMeta:
    """Prepare one clip into ``root/clips/<clip_id>``; on any error nothing of it is left behind."""
    check_source(src.path)
    boxes, found, valid, n, (w, h) = _track(src, cfg)
    sr = cfg.mel.sample_rate
    reader = VideoReader(src.path, fps=cfg.fps)
    wav = load_video_audio(src.path, sample_rate=sr, duration=n / cfg.fps)
    mel = melspectrogram(wav, cfg=cfg.mel)
    speech = None
    if cfg.speech.enabled:
        model, extractor = _speech_model(cfg.speech)
        speech = speech_features(
            wav, model=model, feature_extractor=extractor, n_frames=n, fps=cfg.fps, layer=cfg.speech.layer,
            sample_rate=sr, chunk_seconds=cfg.speech.chunk_seconds,
        ).astype(np.float16)
    size = cfg.face.crop_size
    writer = ClipWriter(root, src.clip_id, size=size)
    try:
        for i, frame in enumerate(reader):
            if i >= n:  # the two passes decode the same timeline; guard against a decoder that disagrees
                break
            writer.add_frame(crop_face(frame, boxes[i], size=size))
            if on_frames and i % 25 == 24:
                on_frames(25)
        if writer.n_frames != n:
            raise MediaError(f"{src.path}: second decode gave {writer.n_frames} frames, first gave {n}")
        writer.save_array("boxes", boxes)
        writer.save_array("face_found", found)
        writer.save_array("valid", valid)
        writer.save_array("mel", mel.astype(np.float32))
        writer.save_audio(wav, sr)
        if speech is not None:
            writer.save_array("speech", speech)
        meta = ClipMeta(
            clip_id=src.clip_id, identity=src.identity, source=str(src.path), n_frames=n, fps=cfg.fps, size=size,
            sample_rate=sr, audio_samples=int(wav.shape[0]), mel_frames=int(mel.shape[-1]),
            hop_length=cfg.mel.hop_length, source_width=w, source_height=h, face_found=int(found.sum()),
            valid=int(valid.sum()), split=assign_split(src.clip_id, cfg.val_fraction),
            speech_dim=int(speech.shape[1]) if speech is not None else 0,
            speech_model=cfg.speech.model if speech is not None else "",
            speech_layer=cfg.speech.layer if speech is not None else -1,
        )
        return_path = writer.commit(meta)
    except BaseException:
        writer.abort()
        raise
    if on_frames:
        on_frames(n % 25)
    assert return_path.is_dir()
    return meta


def _worker(src: Source, root: Path, cfg: PrepareConfig) -> tuple[Source, ClipMeta | None, str | None]:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        return src, prepare_clip(src, root=root, cfg=cfg), None
    except TalkfreqError as exc:
        return src, None, str(exc)


@dataclass
class PrepareResult:
    prepared: list[ClipMeta] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    index: list[ClipMeta] = field(default_factory=list)


def prepare_dataset(
    inputs: Sequence[str | Path],
    *,
    out: str | Path,
    cfg: PrepareConfig,
    shard: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> PrepareResult:
    """Prepare every video under ``inputs`` into ``out``. One bad clip among many is reported, not fatal;
    a single-clip run (or one where every clip fails) raises the clip's one-line error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    sources = discover(inputs)
    i, n = parse_shard(shard)
    sources = [s for k, s in enumerate(sources) if k % n == i]
    if len(sources) == 1:
        check_source(sources[0].path)  # a lone bad input fails before anything is created
    if cfg.speech.enabled:
        _speech_model(cfg.speech)  # a missing model fails now, not after the first clip's detection pass
    make_detector(cfg.face)  # likewise a missing boxes file or MediaPipe model
    existed = Path(out).exists()
    root = require_writable_dir(out)
    (root / "prepare.yaml").write_text(to_yaml(cfg))
    done = finished_clip_ids(root)
    result = PrepareResult()
    todo = []
    for s in sources:
        if s.clip_id in done and not overwrite:
            result.skipped.append(s.clip_id)
        else:
            todo.append(s)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not show_progress, transient=False,
    )
    with progress:
        clips_task = progress.add_task("clips", total=len(todo))
        if cfg.workers <= 1:
            for s in todo:
                ftask = progress.add_task(f"  {s.clip_id}", total=None)
                try:
                    result.prepared.append(
                        prepare_clip(s, root=root, cfg=cfg, on_frames=lambda k, t=ftask: progress.advance(t, k))
                    )
                except TalkfreqError as exc:
                    result.failed.append((str(s.path), str(exc)))
                progress.remove_task(ftask)
                progress.advance(clips_task)
        else:
            ctx = mp.get_context("spawn")  # fork + torch/OpenCV thread pools can deadlock
            with cf.ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as pool:
                futures = [pool.submit(_worker, s, root, cfg) for s in todo]
                for fut in cf.as_completed(futures):
                    s, meta, err = fut.result()
                    if meta is not None:
                        result.prepared.append(meta)
                    else:
                        result.failed.append((str(s.path), err or "failed"))
                    progress.advance(clips_task)
    result.index = write_index(root)
    if result.failed and not result.prepared and not result.skipped:
        if not result.index and not existed:
            shutil.rmtree(root, ignore_errors=True)
        raise TalkfreqError(result.failed[0][1])
    return result


def summary_table(result: PrepareResult, *, out: Path):
    """A rich table: clips prepared/skipped/failed, frames, face-found rate, seconds of audio (this run's clips)."""
    from rich.table import Table

    rows = result.prepared
    frames = sum(m.n_frames for m in rows)
    found = sum(m.face_found for m in rows)
    t = Table(title=f"prepared dataset {out}")
    for col in ("clips", "skipped", "failed", "frames", "face found", "audio (s)", "in index"):
        t.add_column(col, justify="right")
    t.add_row(
        str(len(rows)), str(len(result.skipped)), str(len(result.failed)), str(frames),
        f"{100.0 * found / frames:.1f}%" if frames else "-", f"{sum(m.seconds for m in rows):.1f}",
        str(len(result.index)),
    )
    return t
