"""``talkfreq compare-video``: the benchmark video - real | candidate 1 | candidate 2 ... side by side, with the audio.

Layout (ours): one row of tiles, every video scaled to a common tile height (even widths, so the frame width is
exactly the sum of the tiles'), its name drawn top-left (``cv2.putText`` on a dark box). With insets, a strip under
each tile shows zoomed close-ups of the regions of :class:`~talkfreq.report.common.RegionConfig` (mouth, hair),
cut from the video's full-resolution frame with the *reference's* face boxes (one detection pass, on the real
video), so every tile's inset shows the same part of the picture. ``zoom`` is the insets' magnification relative to
the tile (for the real face's median size). The insets sit side by side when they all fit there at ``zoom``, else
they are stacked, each as large as the narrowest tile allows; the strip is never taller than a tile. The zooms
actually used are returned (:attr:`CompareResult.zooms`).

Timeline and audio: all videos on one constant-rate timeline, cut to the shortest; the reference's audio track
(if any), put on its video's timeline and trimmed to the output's length. Streaming (one frame per video in memory)
and atomic (:class:`~talkfreq.io.VideoWriter`): a failed run leaves no file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from talkfreq.errors import ConfigError
from talkfreq.face import FaceConfig
from talkfreq.report.common import (
    REFERENCE_NAME,
    REGION_NAMES,
    TIMELINE_FPS,
    FaceTrackBoxes,
    LockStep,
    RegionConfig,
    check_inputs,
    reference_track,
)

_BACKGROUND = 24  # grey level of the inset strip


@dataclass
class CompareConfig:
    """Layout of the side-by-side video (the ``video`` section of an evaluation config)."""

    tile_height: Optional[int] = None  # None: the reference's height, at most max_tile_height
    max_tile_height: int = 512
    labels: bool = True
    insets: list[str] = field(default_factory=lambda: list(REGION_NAMES))  # [] = no insets
    zoom: float = 3.0  # inset magnification relative to the tile; reduced where the insets would not fit
    crf: int = 18

    def __post_init__(self) -> None:
        bad = [n for n in self.insets if n not in REGION_NAMES]
        if bad:
            raise ConfigError(f"video.insets: unknown region {bad[0]!r}; choose from {', '.join(REGION_NAMES)}")
        if self.zoom <= 0:
            raise ConfigError(f"video.zoom must be > 0, got {self.zoom}")
        if self.max_tile_height < 16 or (self.tile_height is not None and self.tile_height < 16):
            raise ConfigError("video.tile_height / video.max_tile_height must be at least 16 px")


@dataclass
class CompareResult:
    out: Path
    frames: int
    fps: float
    width: int
    height: int
    tile_height: int
    tile_widths: dict[str, int]  # per video, in tile order (reference first)
    strip_height: int  # 0 without insets
    insets: list[str]
    zooms: dict[str, float]  # each inset's magnification relative to the tile, as used
    audio: bool  # the reference's audio was muxed in
    note: Optional[str] = None  # e.g. the videos were cut to the shortest


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _warp_region(frame: np.ndarray, box: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width, 3) view of the float frame box [x0, y0, x1, y1] (sub-pixel, border replicated)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    m = np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])  # pixel-centre convention
    flags = cv2.INTER_CUBIC if min(sx, sy) >= 1 else cv2.INTER_AREA
    return cv2.warpAffine(frame, m, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def draw_label(img: np.ndarray, text: str, *, scale: float) -> None:
    """``text`` top-left of ``img`` (in place), white on a dark box."""
    thick = max(1, int(round(scale * 1.6)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, int(4 * scale))
    cv2.rectangle(img, (0, 0), (min(img.shape[1] - 1, w + 2 * pad), h + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(img, text, (pad, h + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


@dataclass
class InsetLayout:
    """Where the inset cells go in the strip under a tile: ``row`` (side by side) or ``column`` (stacked)."""

    kind: str
    cells: list[tuple[int, int]]  # (width, height) per inset
    zooms: list[float]  # magnification of each inset relative to the tile
    gap: int

    @property
    def height(self) -> int:
        hs = [h for _, h in self.cells]
        return _even((max(hs) if self.kind == "row" else sum(hs) + self.gap * (len(hs) - 1)) + 2 * self.gap)

    def positions(self, tile_width: int) -> list[tuple[int, int]]:
        """(x, y) of each cell, relative to the strip's top-left under a tile ``tile_width`` wide (centred)."""
        if self.kind == "row":
            x = (tile_width - sum(w for w, _ in self.cells) - self.gap * (len(self.cells) - 1)) // 2
            out = []
            for w, _ in self.cells:
                out.append((x, self.gap))
                x += w + self.gap
            return out
        y, out = self.gap, []
        for w, h in self.cells:
            out.append(((tile_width - w) // 2, y))
            y += h + self.gap
        return out


def inset_layout(track: FaceTrackBoxes, regions: RegionConfig, insets: Sequence[str], *, tile_height: int,
                 min_tile_width: int, zoom: float, gap: int) -> InsetLayout:
    """Side by side when every inset fits there at ``zoom``; else stacked, each inset as large as the narrowest
    tile allows (at most ``zoom``). Either way the strip is at most one tile high (zooms shrink to fit)."""
    side = track.median_side() * tile_height / track.height  # the real face crop's side in tile pixels
    sizes = []
    for name in insets:
        x0, y0, x1, y1 = regions.fractions(name)
        sizes.append(((x1 - x0) * side, (y1 - y0) * side))
    room_w = min_tile_width - 2 * gap
    room_h = tile_height - 2 * gap
    row_w = sum(w for w, _ in sizes) * zoom + gap * (len(sizes) - 1)
    if row_w <= room_w and max(h for _, h in sizes) * zoom <= room_h:
        zooms, kind = [zoom] * len(sizes), "row"
    else:
        zooms, kind = [min(zoom, room_w / w) for w, _ in sizes], "column"
        stacked = sum(h * z for (_, h), z in zip(sizes, zooms)) + gap * (len(sizes) - 1)
        if stacked > room_h:
            zooms = [z * (room_h - gap * (len(sizes) - 1)) / (stacked - gap * (len(sizes) - 1)) for z in zooms]
    cells = [(_even(w * z), _even(h * z)) for (w, h), z in zip(sizes, zooms)]
    return InsetLayout(kind=kind, cells=cells, zooms=zooms, gap=gap)


def compare_video(
    reference: str | Path,
    candidates: Mapping[str, str | Path],
    *,
    out: str | Path,
    labels: Optional[bool] = None,
    insets: Optional[Sequence[str]] = None,
    zoom: Optional[float] = None,
    cfg: Optional[CompareConfig] = None,
    face: Optional[FaceConfig] = None,
    regions: Optional[RegionConfig] = None,
    track: Optional[FaceTrackBoxes] = None,
    fps: float = TIMELINE_FPS,
    progress=None,
) -> CompareResult:
    """Write ``out`` (.mp4): the reference and each candidate side by side (see the module docstring).

    Args:
        reference: the real video; its tile comes first, labelled ``real``; its audio is used.
        candidates: ``{name: path}`` in tile order.
        labels, insets, zoom: override ``cfg``'s (None = ``cfg``'s); ``insets=()`` for none.
        cfg: layout (:class:`CompareConfig`); face: detection settings for the insets' boxes; regions: the inset
            regions; track: the reference's boxes when the caller has them already (``evaluate`` does), which
            skips the detection pass.
        fps: the common timeline.
        progress: ``progress(stage, done, total)`` callback (stages ``boxes``, ``compare``).
    """
    from talkfreq.io import VideoWriter, aac_rate, check_output, load_video_audio, probe

    ref, cands = check_inputs(reference, candidates)
    out = Path(out)
    check_output(out, inputs=[ref, *cands.values()])
    cfg = cfg or CompareConfig()
    labels = cfg.labels if labels is None else labels
    insets = list(cfg.insets if insets is None else insets)
    CompareConfig(insets=insets, zoom=cfg.zoom if zoom is None else zoom)  # validates the overrides
    zoom = cfg.zoom if zoom is None else float(zoom)
    regions = regions or RegionConfig()
    if insets and track is None:
        track = reference_track(ref, face=face or FaceConfig(), fps=fps, progress=progress)

    paths = {REFERENCE_NAME: ref, **cands}
    stream = LockStep(paths, fps=fps, limit=len(track) if track is not None else None, limit_name=REFERENCE_NAME)
    ref_w, ref_h = stream.sizes[REFERENCE_NAME]
    tile_h = _even(cfg.tile_height or min(ref_h, cfg.max_tile_height))
    tile_w = {n: _even(w * tile_h / h) for n, (w, h) in stream.sizes.items()}
    scale = max(0.35, tile_h / 480)  # label size follows the tile
    gap = max(2, tile_h // 64)
    layout: Optional[InsetLayout] = None
    strip_h, boxes, where = 0, {}, {}
    if insets:
        layout = inset_layout(track, regions, insets, tile_height=tile_h, min_tile_width=min(tile_w.values()),
                              zoom=zoom, gap=gap)
        strip_h = layout.height
        boxes = {n: track.scaled(*stream.sizes[n]) for n in paths}
        where = {n: layout.positions(tile_w[n]) for n in paths}
    width, height = sum(tile_w.values()), tile_h + strip_h

    info = probe(ref)
    rate = aac_rate(info.audio_rate)  # AAC takes only some rates: others are resampled to 48 kHz
    audio = load_video_audio(ref, sample_rate=rate) if info.has_audio else None
    total = stream.estimate() or None
    with VideoWriter(out, fps=fps, width=width, height=height, audio=audio, sample_rate=rate, crf=cfg.crf) as writer:
        for i, frames in enumerate(stream):
            canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
            x = 0
            for name, frame in frames.items():
                w = tile_w[name]
                src_h = frame.shape[0]
                interp = cv2.INTER_AREA if src_h > tile_h else cv2.INTER_LINEAR
                canvas[:tile_h, x : x + w] = cv2.resize(frame, (w, tile_h), interpolation=interp)
                if labels:
                    draw_label(canvas[:tile_h, x : x + w], name, scale=scale)
                if layout is not None:
                    for region, (cw, ch), (cx, cy) in zip(insets, layout.cells, where[name]):
                        cell = _warp_region(frame, regions.frame_box(region, boxes[name][i]), cw, ch)
                        if labels:
                            draw_label(cell, region, scale=scale * 0.6)
                        canvas[tile_h + cy : tile_h + cy + ch, x + cx : x + cx + cw] = cell
                x += w
            writer.write(canvas)
            if progress and (i % 10 == 9):
                progress("compare", i + 1, total)
        if writer.audio is not None:  # the track ends with the last frame (the videos may have been cut)
            writer.audio = writer.audio[: int(round(writer.frames_written / fps * rate))]
    if progress:
        progress("compare", stream.frames, stream.frames)
    return CompareResult(out=out, frames=stream.frames, fps=fps, width=width, height=height, tile_height=tile_h,
                         tile_widths=tile_w, strip_height=strip_h, insets=insets,
                         zooms=dict(zip(insets, layout.zooms)) if layout else {},
                         audio=audio is not None and len(audio) > 0, note=stream.truncation_note())
