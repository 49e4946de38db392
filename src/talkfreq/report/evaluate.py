"""``talkfreq evaluate``: score candidate videos against the real one and write the report.

:func:`evaluate` (the Python API the experiments call) does, in order:

1. checks every input and loads the optional networks (LPIPS-VGG with ``vgg16``, a lip-sync expert with ``syncnet``
   - a talkfreq SyncNet or the original syncnet_v2, :mod:`talkfreq.report.sync_scoring` -, a SOVQAE refiner with
   ``refiner``) - cheap failures first, one line each;
2. one face-detection pass on the reference (:func:`talkfreq.report.common.reference_track`); no face there is an
   error;
3. one streaming pass over all videos in lock-step on the 25 fps timeline (cut to the shortest, noted in the report):
   per batch, every video is cropped with the reference's boxes at ``face.crop_size`` and scored by a
   :class:`~talkfreq.report.scoring.VideoScorer` against the reference's crops - the reference itself included, as
   the first row. Frames where the reference has no face are not scored (their count is reported). With a SyncNet,
   each video's crops for that expert and its own audio (the reference's when it has none) feed a streaming
   embedder and give LSE-D / LSE-C / the AV offset (syncnet_python's definition, :mod:`talkfreq.metrics.sync`).
   With ``sync_protocol=syncnet_python`` (syncnet_v2 weights only) LSE instead follows syncnet_python's own face
   pipeline on each video, its own S3FD tracks and crops (:mod:`talkfreq.report.sync_pipeline`), in passes of
   its own after this one; the LSE column labels name the protocol used;
4. with a refiner, its NRoUB diagnostic on the first ``nroub_frames`` consecutive real face crops
   (:func:`talkfreq.report.refiner_diagnosis.diagnose`);
5. writes ``metrics.csv``, ``metrics.json``, ``figures/*.png``, ``compare.mp4`` (the side-by-side video, unless
   ``write_video`` is off) and ``report.html`` into a staging folder beside ``out`` and moves them into ``out`` at
   the end, ``report.html`` last: a failed run leaves no partial report.

Memory is bounded by one batch of frames per video plus fixed-size accumulators (two spectra per region per video)
and a few floats per frame.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.face import FaceConfig, crop_face
from talkfreq.face.shot_track import TrackShotConfig
from talkfreq.metrics.frequency import HF_RADIUS, RADIAL_BINS
from talkfreq.report.common import REFERENCE_NAME, TIMELINE_FPS, LockStep, RegionConfig, check_inputs, reference_track
from talkfreq.report.compare_video import CompareConfig, compare_video
from talkfreq.report.refiner_verdict import refiner_verdicts
from talkfreq.report.scoring import ARROWS, COLUMNS, Row, VideoScorer, best_rows, lag_edge_note, silence_masks
from talkfreq.report.sync_scoring import LSE_KEYS, SyncEnsemble, ensemble_lse, lse_values

CSV_FILE, JSON_FILE, HTML_FILE = "metrics.csv", "metrics.json", "report.html"
VIDEO_FILE, FIGURES = "compare.mp4", "figures"


@dataclass
class EvalConfig:
    """Settings of ``talkfreq evaluate`` (and the layout of ``compare-video``, section ``video``)."""

    fps: float = TIMELINE_FPS  # the common timeline
    batch_size: int = 16  # frames per video per step: memory is bounded by one batch
    psnr_cap_db: float = 100.0  # per-frame PSNR cap: identical frames give inf, which would swamp the mean
    hf_radius: float = HF_RADIUS  # normalised radius beyond which spectral energy counts as high-frequency
    radial_bins: int = RADIAL_BINS
    closeup_frames: int = 4  # frames shown in the close-up grid (evenly spaced)
    nroub_frames: int = 32  # consecutive real face crops for the refiner's NRoUB diagnostic
    device: str = "auto"
    syncnet: Optional[str] = None  # a `talkfreq train syncnet` model/ (or run) folder, or syncnet_v2.model: LSE-D/C
    # more experts of syncnet's kind (other seeds): LSE of the mean distances of those that find the real clip at
    # offset 0 (sync_scoring.ensemble_lse)
    syncnet_ensemble: list[str] = field(default_factory=list)
    # LSE crops: "talkfreq" (the reference's track for every video) or "syncnet_python" (each video's own
    # track_shot / crop_video track, as run_pipeline.py; needs syncnet_v2.model, exact with face.backend=s3fd)
    sync_protocol: str = "talkfreq"
    sync_pipeline: TrackShotConfig = field(default_factory=TrackShotConfig)  # run_pipeline.py's options
    vgg16: Optional[str] = None  # torchvision VGG16 weights for LPIPS (or $TALKFREQ_VGG16)
    inception: Optional[str] = None  # pytorch-fid's Inception weights for FID (or $TALKFREQ_INCEPTION)
    refiner: Optional[str] = None  # a refiner model/ folder or .ckpt: adds its NRoUB numbers
    write_video: bool = True  # write compare.mp4 and embed it in the report
    face: FaceConfig = field(default_factory=FaceConfig)  # detection on the reference; crop_size = metric crops
    regions: RegionConfig = field(default_factory=RegionConfig)
    video: CompareConfig = field(default_factory=CompareConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.closeup_frames < 0 or self.nroub_frames < 2 or self.radial_bins < 2:
            raise ConfigError("need batch_size >= 1, closeup_frames >= 0, nroub_frames >= 2 and radial_bins >= 2")
        if not 0 < self.hf_radius < 1.5:
            raise ConfigError(f"hf_radius must be in (0, 1.5) (1 = Nyquist), got {self.hf_radius}")
        if not self.psnr_cap_db > 0:
            raise ConfigError(f"psnr_cap_db must be > 0, got {self.psnr_cap_db}")
        from talkfreq.report.sync_pipeline import check_protocol

        check_protocol(self.sync_protocol, kind=None)
        if self.face.crop_size < 64:
            raise ConfigError(f"face.crop_size must be >= 64 for the evaluation (CPBD works on 64 px blocks), got "
                              f"{self.face.crop_size}")


@dataclass
class EvalResult:
    """What :func:`evaluate` measured and wrote. ``rows[0]`` is the reference."""

    out: Path
    reference: Path
    rows: list[Row]
    best: dict[str, list[str]]  # column key -> best candidate names
    frames: int  # timeline frames compared (after cutting to the shortest)
    scored: int  # of which had a reference face (the metrics' frames)
    fps: float
    notes: list[str]
    unavailable: dict[str, str]  # column key -> why
    files: dict[str, Path]
    nroub: Optional[dict[str, Any]] = None
    timings: dict[str, float] = field(default_factory=dict)
    unreliable: dict[str, str] = field(default_factory=dict)  # column key -> why its values mean nothing
    lse_protocol: Optional[str] = None  # how the LSE crops were made (EvalConfig.sync_protocol) when scored

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def columns(self) -> tuple:
        """:data:`COLUMNS` with the LSE labels naming :attr:`lse_protocol` (e.g. ``LSE-D (syncnet_python)``)."""
        if self.lse_protocol is None:
            return COLUMNS
        return tuple(replace(c, label=f"{c.label} ({self.lse_protocol})") if c.key in LSE_KEYS else c
                     for c in COLUMNS)

    def table(self):
        """A rich Table, one row per metric and one column per video (fits a terminal); best in bold green."""
        from rich.table import Table

        t = Table(title=f"{self.scored} frames at {self.fps:g} fps vs {self.reference.name}",
                  caption="\u2191 higher / \u2193 lower / \u2248 closest to real is better; best candidate in green")
        t.add_column("metric", no_wrap=True)
        for r in self.rows:
            t.add_column(r.name, justify="right", style="dim" if r.role == "reference" else None)
        for c in self.columns():
            cells = []
            for r in self.rows:
                text = r.formatted(c.key)
                cells.append(f"[bold green]{text}[/]" if r.name in self.best.get(c.key, ()) else text)
            t.add_row(f"{c.label} {ARROWS[c.direction]}".strip(), *cells)
        return t


def _load_models(cfg: EvalConfig, device) -> tuple[Any, Any, Any, dict[str, str]]:
    """(lpips or None, SyncScorer or None, refiner or None, {column: why unavailable})."""
    from talkfreq.models.lpips import LPIPS, VGG16_ENV, resolve_vgg16_path

    why: dict[str, str] = {}
    lpips = syncnet = refiner = None
    vgg = resolve_vgg16_path(cfg.vgg16)
    if vgg is None:
        why["lpips"] = f"no VGG16 weights (--vgg16 PATH or ${VGG16_ENV}); never scored with random weights"
    else:
        lpips = LPIPS.from_path(vgg, normalize=True).to(device)
    if cfg.syncnet:
        from talkfreq.report.sync_pipeline import check_protocol
        from talkfreq.report.sync_scoring import load_sync_scorers

        syncnet = load_sync_scorers([cfg.syncnet, *cfg.syncnet_ensemble], face=cfg.face, fps=cfg.fps, device=device)
        check_protocol(cfg.sync_protocol, kind=syncnet.kind)
    elif cfg.syncnet_ensemble:
        raise ConfigError("syncnet_ensemble adds experts to syncnet: give syncnet too")
    else:
        why.update(dict.fromkeys(LSE_KEYS, "no SyncNet given (--syncnet DIR)"))
    if cfg.refiner:
        from talkfreq.models.loading import load_refiner

        refiner = load_refiner(cfg.refiner, map_location=device).to(device).eval()
    return lpips, syncnet, refiner, why


def _load_inception(cfg: EvalConfig, device, why: dict[str, str]):
    """pytorch-fid's Inception from ``cfg.inception`` (or the environment), or None with the reason in ``why``."""
    from talkfreq.models.inception_fid import INCEPTION_ENV, load_fid_inception, resolve_inception_path

    path = resolve_inception_path(cfg.inception)
    if path is None:
        why["fid"] = f"no Inception weights (--inception PATH or ${INCEPTION_ENV}); never scored with random weights"
        return None
    return load_fid_inception(path, map_location=device).to(device)


def _sync_audio(names, paths, notes) -> dict[str, np.ndarray]:
    """{name: 16 kHz audio} of the videos LSE can score: each one's own audio (the reference's when it has none)."""
    from talkfreq.io import load_video_audio, probe

    audio = {n: load_video_audio(paths[n], sample_rate=16000) for n in names if probe(paths[n]).has_audio}
    if REFERENCE_NAME not in audio and len(audio) < len(names):
        notes.append("LSE: some videos have no audio track and neither has the reference; those score nothing")
    out = {}
    for n in names:
        wav = audio.get(n, audio.get(REFERENCE_NAME))
        if wav is None or not len(wav):
            continue
        if n not in audio:
            notes.append(f"LSE: {n} has no audio track; scored with the reference's audio")
        out[n] = wav
    return out


def _ensemble_lse(syncnet, sync, notes) -> dict[str, Any]:
    """{name: LSEResult} of the videos an ensemble of experts scores (:func:`~talkfreq.report.sync_scoring.
    ensemble_lse`: those that find the real clip at offset 0 score), with its line in ``notes``."""
    dists = {}
    for n, (stream, samples) in sync.items():
        try:
            dists[n] = syncnet.distances(stream, samples=samples)
        except ValueError as exc:  # a clip shorter than one window
            notes.append(f"LSE: {n}: {exc}")
    if not dists:
        return {}
    lse, note = ensemble_lse(dists, reference=REFERENCE_NAME)
    notes.append(note)
    return lse


def _pipeline_lse(audio, paths, *, syncnet, cfg: EvalConfig, device, notes, progress) -> dict[str, Any]:
    """{name: LSEResult or None} by syncnet_python's own face pipeline, one video at a time."""
    from talkfreq.report.sync_pipeline import syncnet_python_lse

    if cfg.face.backend != "s3fd":
        notes.append(f"LSE (syncnet_python): faces from face.backend={cfg.face.backend}, not S3FD: tracks and crops "
                     f"follow run_pipeline.py, the detections are not its own")
    return {n: syncnet_python_lse(paths[n], wav, name=n, scorer=syncnet, face=cfg.face, cfg=cfg.sync_pipeline,
                                  fps=cfg.fps, batch_size=cfg.batch_size, device=device, notes=notes,
                                  progress=progress) for n, wav in audio.items()}


def evaluate(reference: str | Path, candidates: Mapping[str, str | Path], *, out: str | Path,
             cfg: Optional[EvalConfig] = None, progress=None, notes: Sequence[str] = ()) -> EvalResult:
    """Score ``candidates`` ({name: video}) against ``reference`` and write the report into the folder ``out``
    (see the module docstring). ``progress(stage, done, total)`` is called per batch (stages ``boxes``,
    ``evaluate``, ``compare``); ``notes`` are the caller's lines for the report, after the refiner verdicts."""
    import torch

    from talkfreq.device import resolve_device

    cfg = cfg or EvalConfig()
    ref, cands = check_inputs(reference, candidates)
    out = Path(out)
    _check_out_dir(out)
    device = resolve_device(cfg.device)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    lpips, syncnet, refiner, unavailable = _load_models(cfg, device)
    inception = _load_inception(cfg, device, unavailable)
    track = reference_track(ref, face=cfg.face, fps=cfg.fps, progress=progress)
    timings["boxes"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    size = cfg.face.crop_size
    paths = {REFERENCE_NAME: ref, **cands}
    stream = LockStep(paths, fps=cfg.fps, limit=len(track), limit_name=REFERENCE_NAME)
    given_notes, notes = list(notes), []
    mouth = cfg.regions.crop_box("mouth", size)
    scorers = {n: VideoScorer(n, size=size, mouth=mouth, psnr_cap_db=cfg.psnr_cap_db, lpips=lpips,
                              inception=inception) for n in stream.names}
    sync, sync_audio = {}, {}
    if syncnet is not None:
        sync_audio = _sync_audio(stream.names, paths, notes)
        if not sync_audio:
            unavailable.update(dict.fromkeys(LSE_KEYS, "no video has an audio track"))
        if cfg.sync_protocol == "talkfreq":
            sync = {n: (syncnet.stream(wav, fps=cfg.fps, batch_size=cfg.batch_size, device=device), len(wav))
                    for n, wav in sync_audio.items()}
    est = stream.estimate()
    picks = set(np.linspace(0, max(est - 1, 0), cfg.closeup_frames + 2).round().astype(int)[1:-1].tolist())
    closeups: dict[str, list[np.ndarray]] = {n: [] for n in stream.names}
    closeup_index: list[int] = []
    nroub_crops: list[tuple[int, np.ndarray]] = []
    boxes = {n: track.scaled(*stream.sizes[n]) for n in stream.names}
    with torch.no_grad():
        for start, batch in stream.batches(cfg.batch_size):
            idx = np.arange(start, start + len(batch[REFERENCE_NAME]))
            valid = track.valid[idx]
            crops = {n: np.stack([crop_face(f, boxes[n][i], size=size) for i, f in zip(idx, frames)])
                     for n, frames in batch.items()}
            for n, c in crops.items():
                scorers[n].add(c[valid], crops[REFERENCE_NAME][valid], index=idx[valid])
                if n in sync:
                    sync[n][0].add(np.stack([syncnet.crop(f, boxes[n][i]) for i, f in zip(idx, batch[n])]))
            for k, i in enumerate(idx):
                if i in picks and valid[k]:
                    closeup_index.append(int(i))
                    for n, c in crops.items():
                        closeups[n].extend(_closeup(c[k], cfg.regions))
            if refiner is not None:  # the first nroub_frames real face crops (the longest run is used)
                for k in np.flatnonzero(valid)[: cfg.nroub_frames - len(nroub_crops)]:
                    nroub_crops.append((int(idx[k]), crops[REFERENCE_NAME][k]))
            if progress:
                progress("evaluate", stream.frames, est or None)
    scored = scorers[REFERENCE_NAME].frames
    if scored == 0:
        raise TalkfreqError(f"{ref}: no frame with a face in the compared range")
    note = stream.truncation_note()
    if note:
        notes.insert(0, note)
    if scored < stream.frames:
        notes.append(f"{stream.frames - scored} of {stream.frames} frames had no face in the reference and were "
                     f"not scored")

    pipeline_lse = {}
    if syncnet is not None and cfg.sync_protocol == "syncnet_python":
        t = time.perf_counter()
        pipeline_lse = _pipeline_lse(sync_audio, paths, syncnet=syncnet, cfg=cfg, device=device, notes=notes,
                                     progress=progress)
        timings["lse_pipeline"] = time.perf_counter() - t
    silent = silence_masks(paths, reference=REFERENCE_NAME, n_frames=stream.frames, fps=cfg.fps)
    if not silent:
        unavailable["mouth_open_silent"] = "the reference has no audio track to find its silent stretches"
    ensemble = _ensemble_lse(syncnet, sync, notes) if isinstance(syncnet, SyncEnsemble) else {}
    rows = []
    for n, sc in scorers.items():
        values = sc.values(scorers[REFERENCE_NAME], hf_radius=cfg.hf_radius)
        if silent:
            values["mouth_open_silent"] = sc.silent_opening(scorers[REFERENCE_NAME], silent=silent[n],
                                                            ref_silent=silent[REFERENCE_NAME])
        lse = pipeline_lse.get(n, ensemble.get(n))
        if n in sync and not isinstance(syncnet, SyncEnsemble):
            try:
                lse = syncnet.scores(sync[n][0], samples=sync[n][1])
            except ValueError as exc:  # a clip shorter than one window
                notes.append(f"LSE: {n}: {exc}")
        values.update(lse_values(lse))
        rows.append(Row(name=n, role="reference" if n == REFERENCE_NAME else "candidate", path=str(paths[n]),
                        values=values))
    edge = lag_edge_note(rows)
    if edge:
        notes.append(edge)
    nroub = None
    if refiner is not None:
        nroub = _nroub(refiner, nroub_crops, notes)
    timings["metrics"] = time.perf_counter() - t1

    from talkfreq.report.sync_scoring import lse_unreliable

    lse_why = lse_unreliable(rows[0].values)
    # first among the notes: the question the evaluation of a refiner exists to answer
    notes[:0] = [*refiner_verdicts(rows, sync_unreliable=lse_why), *given_notes]
    result = EvalResult(out=out, reference=ref, rows=rows, best=best_rows(rows), frames=stream.frames,
                        scored=scored, fps=cfg.fps, notes=notes, unavailable=unavailable, files={}, nroub=nroub,
                        timings=timings, unreliable=dict.fromkeys(LSE_KEYS, lse_why) if lse_why else {},
                        lse_protocol=cfg.sync_protocol if syncnet is not None else None)
    _write_outputs(result, cfg=cfg, scorers=scorers, closeups=closeups, closeup_index=closeup_index,
                   paths=paths, track=track, progress=progress)
    return result


def _closeup(crop: np.ndarray, regions: RegionConfig) -> list[np.ndarray]:
    """[mouth, hair] pixel crops of one (S, S, 3) face crop."""
    out = []
    for name in ("mouth", "hair"):
        x0, y0, x1, y1 = regions.crop_box(name, crop.shape[0])
        out.append(np.ascontiguousarray(crop[y0:y1, x0:x1]))
    return out


def _nroub(refiner, indexed: list[tuple[int, np.ndarray]], notes: list[str]) -> Optional[dict[str, Any]]:
    """The refiner's NRoUB numbers on the longest run of consecutive crops in ``indexed`` [(frame, crop)]."""
    from talkfreq.data.degradations import FIXED_STRENGTHS
    from talkfreq.data.refiner_data import resize_uint8
    from talkfreq.report.refiner_diagnosis import diagnose

    crops: list[np.ndarray] = []
    if indexed:
        idx = np.array([i for i, _ in indexed])
        runs = np.split(np.arange(len(idx)), np.flatnonzero(np.diff(idx) != 1) + 1)
        crops = [indexed[k][1] for k in max(runs, key=len)]
    if len(crops) < 2:
        notes.append("NRoUB: fewer than 2 consecutive real face crops; skipped")
        return None
    size = int(refiner.config.image_size)
    batch = np.stack([resize_uint8(c, size) for c in crops])
    reports, temporal = diagnose(refiner, batch)
    return {"frames": len(batch), "image_size": size, "temporal_flip_rate": temporal,
            "degradations": {k: {"strength": FIXED_STRENGTHS[k], **r.as_dict()} for k, r in reports.items()}}


def _check_out_dir(out: Path) -> None:
    """One-line error unless ``out`` is (or can become) a writable folder; nothing is created here."""
    if out.exists() and not out.is_dir():
        raise TalkfreqError(f"{out}: exists and is not a folder; --out names the report folder")
    probe = out if out.exists() else out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise TalkfreqError(f"{out}: cannot create the report folder ({probe} is not a writable folder)")


def _write_outputs(result: EvalResult, *, cfg: EvalConfig, scorers, closeups, closeup_index, paths, track,
                   progress) -> None:
    """Write everything into a staging folder, then publish it into ``result.out`` (report.html last)."""
    from talkfreq.report.html import write_html
    from talkfreq.report.writers import write_csv, write_figures, write_json

    out = result.out
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        (stage / FIGURES).mkdir(parents=True)
        t = time.perf_counter()
        files = write_figures(stage, result=result, cfg=cfg, scorers=scorers, closeups=closeups,
                              closeup_index=closeup_index)
        result.timings["figures"] = time.perf_counter() - t
        if cfg.write_video:
            t = time.perf_counter()
            cmp = compare_video(paths[REFERENCE_NAME], {n: p for n, p in paths.items() if n != REFERENCE_NAME},
                                out=stage / VIDEO_FILE, cfg=cfg.video, regions=cfg.regions, track=track,
                                fps=cfg.fps, progress=progress)
            files["video"] = stage / VIDEO_FILE
            result.timings["video"] = time.perf_counter() - t
            if not cmp.audio:
                result.notes.append("the reference has no audio track: compare.mp4 is silent")
        files["csv"] = write_csv(stage / CSV_FILE, result)
        files["json"] = write_json(stage / JSON_FILE, result, cfg=cfg)
        files["html"] = write_html(stage / HTML_FILE, result, cfg=cfg, files=files, stage=stage)
        result.files = {k: out / p.relative_to(stage) for k, p in files.items()}
        _publish(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out: Path) -> None:
    """Move the staged report into ``out``: one rename when ``out`` is new, else file by file with report.html
    last (other files already in ``out`` are left alone)."""
    if not out.exists():
        os.replace(stage, out)
        return
    html = stage / HTML_FILE
    for src in sorted(stage.rglob("*"), key=lambda p: (p == html, len(p.parts))):
        if src.is_dir():
            continue
        dst = out / src.relative_to(stage)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
