"""The lip-sync expert behind ``talkfreq evaluate``'s LSE columns: a talkfreq SyncNet or the original syncnet_v2.

``--syncnet PATH`` takes either

* a ``talkfreq train syncnet`` ``model/`` folder (or its run folder), or Wav2Lip's published ``lipsync_expert.pth``
  (its BGR [0, 1] input convention recorded in its config): Wav2Lip-style expert, fed the lower half of the
  evaluation's face crop (resized to the expert's ``image_size``) and the Wav2Lip mel windows; or
* the published ``syncnet_v2.model`` file of joonson/syncnet_python: fed its own 224 px crop, derived from the
  reference's face boxes, and 13 MFCCs, with the original's window count (:mod:`talkfreq.metrics.sync_v2`); or,
  with ``sync_protocol=syncnet_python``, from each video's own syncnet_python tracks
  (:mod:`talkfreq.report.sync_pipeline`).

Either way LSE-D / LSE-C / the offset are syncnet_python's (:func:`talkfreq.metrics.sync.lse_scores`).

Several experts of one kind (``--syncnet`` repeated; ``syncnet_ensemble``) score as one (:class:`SyncEnsemble`): each
embeds the same crops, and LSE is taken from the mean of the (windows, offsets) distance matrices of those that
find the real clip at offset 0 (:func:`ensemble_lse`; all of them without a real clip to screen by). Ours, not
syncnet_python's: an expert trained on one person's clip is a noisy judge - on edtalk three seeds of the personal
recipe's scorer put the refiner's LSE-C change at -7.9 %, -2.4 % and +11.4 % on the same two videos
(benchmarks/RESULTS.md "The same recipe on a CPU half as fast") - and averaging the experts' distances averages
that noise out where any one expert's verdict is its seed's. With one member the scores are that expert's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.face import FaceConfig, crop_face
from talkfreq.metrics.sync import LSEResult, SyncEmbeddingStream, lse_from_distances, lse_scores, offset_distances

KINDS = ("talkfreq", "syncnet_v2")
LSE_KEYS = ("lse_d", "lse_c", "lse_offset", "lse_offset_support")
# LSE-C of the real clip below which the expert finds no sync evidence even there: audio shifted out of the scan
# scores 0.02-0.03 with the tiny experts, real clips 0.4-0.55 (benchmarks/RESULTS.md); syncnet_v2 gives real clips ~7
RELIABLE_REAL_LSE_C = 0.1


def lse_values(lse: LSEResult | None) -> dict[str, float | None]:
    """The report's :data:`LSE_KEYS` columns of one video's result (all None without one)."""
    if lse is None:
        return dict.fromkeys(LSE_KEYS)
    return {"lse_d": lse.lse_d, "lse_c": lse.lse_c, "lse_offset": float(lse.offset),
            "lse_offset_support": lse.offset_support}


def lse_unreliable(real: dict[str, Any]) -> str | None:
    """Why the LSE columns say nothing, judged on the real clip's own scores ``real`` (``lse_offset``, ``lse_c``):
    an expert that finds the real clip out of sync (offset not 0) or without a sync peak (LSE-C near 0) cannot rank
    the candidates. None when the real clip scores as in sync (or was not scored)."""
    offset, conf = real.get("lse_offset"), real.get("lse_c")
    if offset is None or conf is None:
        return None
    why = []
    if round(float(offset)) != 0:
        why.append(f"AV offset {float(offset):+.0f} frames")
    if float(conf) < RELIABLE_REAL_LSE_C:
        why.append(f"LSE-C {float(conf):.3f}, below {RELIABLE_REAL_LSE_C:g}")
    if not why:
        return None
    return (f"the SyncNet expert scores the real clip itself as out of sync ({', '.join(why)}); its LSE columns "
            f"cannot rank the candidates' lip sync (an undertrained expert, or a real clip whose audio is offset)")


def syncnet_embedder(model):
    """A :data:`~talkfreq.metrics.sync.SyncEmbedFn` for talkfreq's :class:`~talkfreq.models.SyncNet`: faces
    (B, 5, 3, S, S) in [0, 1] (S = the model's image_size) -> [-1, 1], lower halves stacked; mel (B, 80, 16)."""
    from talkfreq.models.syncnet import stack_lower_halves

    def embed(faces, mel):
        out = model(stack_lower_halves(faces * 2.0 - 1.0), mel[:, None])
        return out.audio_emb, out.video_emb

    return embed


@dataclass
class SyncScorer:
    """One loaded expert: how to crop a frame for it, embed a video's stream and score the embeddings."""

    kind: str  # one of KINDS
    model: Any
    face: FaceConfig  # the settings the crop boxes were made with (syncnet_v2 undoes their padding)

    def crop(self, frame: np.ndarray, crop_box: np.ndarray) -> np.ndarray:
        """The expert's crop of one (H, W, 3) uint8 frame, from the evaluation's face crop box (frame pixels)."""
        if self.kind == "syncnet_v2":
            from talkfreq.metrics.sync_v2 import crop_syncnet_v2, face_boxes_from_crop_boxes

            face_box = face_boxes_from_crop_boxes(crop_box, padding=self.face.padding, shift_y=self.face.shift_y)
            return crop_syncnet_v2(frame, face_box[0])
        return crop_face(frame, crop_box, size=int(self.model.config.image_size))

    def stream(self, wav: np.ndarray, *, fps: float, batch_size: int, device) -> SyncEmbeddingStream:
        """A streaming embedder for one video whose audio is ``wav`` (16 kHz mono float)."""
        if self.kind == "syncnet_v2":
            from talkfreq.metrics.sync_v2 import syncnet_v2_stream

            return syncnet_v2_stream(wav, model=self.model, fps=fps, batch_size=batch_size, device=device)
        from talkfreq.audio.mel import melspectrogram

        return SyncEmbeddingStream(melspectrogram(wav), embed=syncnet_embedder(self.model), fps=fps,
                                   batch_size=batch_size, device=device)

    def embeddings(self, stream: SyncEmbeddingStream, *, samples: int):
        """(audio, video) (T, D) embeddings of a finished stream (``samples``: its audio's length; syncnet_v2 keeps
        the original's window count)."""
        audio, video = stream.result()
        if self.kind == "syncnet_v2":
            from talkfreq.metrics.sync_v2 import syncnet_v2_windows

            n = syncnet_v2_windows(stream.frames, samples, fps=stream.fps)
            if n == 0:
                raise ValueError(f"too short for one syncnet_v2 window ({stream.frames} frames, {samples} samples)")
            audio, video = audio[:n], video[:n]
        return audio, video

    def scores(self, stream: SyncEmbeddingStream, *, samples: int) -> LSEResult:
        """LSE of a finished stream (``samples``: its audio's length)."""
        return lse_scores(*self.embeddings(stream, samples=samples))


class EnsembleStream:
    """One :class:`~talkfreq.metrics.sync.SyncEmbeddingStream` per member of a :class:`SyncEnsemble`, fed the same
    crops."""

    def __init__(self, streams: list[SyncEmbeddingStream]):
        self.streams = streams

    def add(self, frames) -> EnsembleStream:
        frames = np.asarray(frames)  # an iterable would be consumed by the first member
        for s in self.streams:
            s.add(frames)
        return self

    @property
    def frames(self) -> int:
        return self.streams[0].frames

    @property
    def fps(self) -> float:
        return self.streams[0].fps


@dataclass
class SyncEnsemble:
    """Several experts of one kind and crop, scoring as one: LSE of the mean of their distance matrices (module
    docstring); :func:`ensemble_lse` first leaves out those that find the real clip at another offset."""

    members: list[SyncScorer]

    def __post_init__(self) -> None:
        first = self.members[0]
        for m in self.members[1:]:
            if m.kind != first.kind or _crop_size(m) != _crop_size(first):
                raise ConfigError(f"an ensemble of SyncNet experts needs one kind and crop size; got {first.kind} "
                                  f"at {_crop_size(first)} px and {m.kind} at {_crop_size(m)} px")

    @property
    def kind(self) -> str:
        return self.members[0].kind

    def crop(self, frame: np.ndarray, crop_box: np.ndarray) -> np.ndarray:
        return self.members[0].crop(frame, crop_box)

    def stream(self, wav: np.ndarray, *, fps: float, batch_size: int, device) -> EnsembleStream:
        return EnsembleStream([m.stream(wav, fps=fps, batch_size=batch_size, device=device) for m in self.members])

    def distances(self, stream: EnsembleStream, *, samples: int) -> list:
        """Each member's (T, 2 vshift + 1) distances (:func:`~talkfreq.metrics.sync.offset_distances`) of a
        finished stream."""
        return [offset_distances(*m.embeddings(s, samples=samples)) for m, s in zip(self.members, stream.streams)]

    def scores(self, stream: EnsembleStream, *, samples: int) -> LSEResult:
        """LSE of the mean of every member's distances (no real clip to screen them by: see :func:`ensemble_lse`)."""
        dists = self.distances(stream, samples=samples)
        return lse_from_distances(sum(dists) / len(dists))


def ensemble_lse(dists: dict[str, list], *, reference: str) -> tuple[dict[str, LSEResult], str]:
    """Each video's LSE from ``dists`` (``{video: each member's distances}``, the real clip ``reference`` among them)
    by the members that find the real clip at offset 0 (all of them when none does), and the report's line on the
    members. Whether the ensemble can judge at all is then :func:`lse_unreliable` of its own real row.

    Why screen: an expert that finds the real clip at another offset has its dip elsewhere, and in the mean it moves
    the others' dip rather than averaging their noise. On edtalk one of three seeds put the real clip at offset -2
    and the dubs at -4 to -7; with it the ensemble turned the other two seeds' refined LSE-C changes (+4.4 / -0.4 %
    and +1.2 / +0.4 %) into +12.5 % and +9.4 %. A seed that finds offset 0 with a shallow dip (LSE-C below
    :data:`RELIABLE_REAL_LSE_C`) stays: its dip is where the others' is, and leaving it out let one seed decide
    (benchmarks/RESULTS.md "An ensemble of scorers")."""
    own = {n: [lse_from_distances(x, support=False) for x in d] for n, d in dists.items()}
    k = len(next(iter(dists.values())))
    real = own.get(reference)
    keep = [i for i in range(k) if real is None or real[i].offset == 0] or list(range(k))
    lse = {n: lse_from_distances(sum(d[i] for i in keep) / len(keep)) for n, d in dists.items()}
    return lse, ensemble_note(own, keep=keep, reference=reference)


def ensemble_note(members: dict[str, list[LSEResult]], *, keep: list[int], reference: str) -> str:
    """The report's line on an ensemble's members (``{video: each member's LSE}``, experts numbered from 1 in the
    order given): which of them score (``keep``) and why the others do not, each video's LSE-C and offset by each
    expert alone, and for each stage-1 / refined pair the LSE-C change each expert alone would report - the spread a
    reader needs to weigh the ensemble's LSE-C (a single expert's is one draw of it)."""
    from talkfreq.report.refiner_verdict import refiner_pairs

    k = len(next(iter(members.values())))
    line = f"LSE from the mean distances of {len(keep)} of {k} SyncNet experts"
    real = members.get(reference)
    dropped = [i for i in range(k) if i not in keep]
    if dropped and real is not None:
        line += " (not scoring, as they find the real clip at another offset: " + ", ".join(
            f"expert {i + 1}: offset {real[i].offset:+d}, LSE-C {real[i].lse_c:.3f}" for i in dropped) + ")"
    elif real is not None and k > 1 and all(r.offset != 0 for r in real):
        line += " (none finds the real clip at offset 0 alone: all score)"
    each = "; ".join(f"{n} " + " / ".join(f"{r.lse_c:.3f} ({r.offset:+d})" for r in rs) for n, rs in members.items())
    line += f"; each expert alone, LSE-C (offset): {each}"
    for base, refined in refiner_pairs(members):
        moved = [f"{(r.lse_c - b.lse_c) / abs(b.lse_c):+.1%}" if b.lse_c else "n/a"
                 for b, r in zip(members[base], members[refined])]
        line += f". {refined} vs {base}, LSE-C change by each expert alone: {', '.join(moved)}"
    return line + "."


def _crop_size(scorer: SyncScorer) -> int:
    """The side of the crop an expert is fed (syncnet_v2's is fixed)."""
    if scorer.kind == "syncnet_v2":
        from talkfreq.metrics.sync_v2 import V2_SIZE

        return V2_SIZE
    return int(scorer.model.config.image_size)


def load_sync_scorers(paths, *, face: FaceConfig, fps: float, device) -> SyncScorer | SyncEnsemble:
    """:func:`load_sync_scorer` of one path, a :class:`SyncEnsemble` of several (a sequence of paths)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    scorers = [load_sync_scorer(p, face=face, fps=fps, device=device) for p in paths]
    if not scorers:
        raise ConfigError("no SyncNet expert given")
    return scorers[0] if len(scorers) == 1 else SyncEnsemble(scorers)


def load_sync_scorer(path: str | Path, *, face: FaceConfig, fps: float, device) -> SyncScorer:
    """A :class:`SyncScorer` for ``path``: a file is a published expert (``syncnet_v2.model`` or Wav2Lip's
    ``lipsync_expert.pth``, told apart by their keys, loaded strictly), a folder a talkfreq SyncNet ``model/``
    folder or its run folder. One-line errors for anything else."""
    p = Path(path)
    if (p / "model" / "config.json").is_file():  # a run folder: its final expert
        p = p / "model"
    if p.is_file():
        from talkfreq.models.published import load_published

        model = load_published(p, expect=("syncnet_v2", "lipsync_expert"), map_location=device)
    elif p.is_dir():
        from talkfreq.models import SyncNet, SyncNetV2
        from talkfreq.models._io import peek_model_class

        cls = SyncNetV2 if peek_model_class(p) == "SyncNetV2" else SyncNet  # SyncNetV2: `talkfreq import`ed
        model = cls.from_pretrained(p, map_location=device)
    else:
        raise TalkfreqError(f"{p}: SyncNet not found (expected a `talkfreq train syncnet` model/ folder, the "
                            f"original syncnet_v2.model file or Wav2Lip's lipsync_expert.pth)")
    model = model.to(device).eval()
    if type(model).__name__ == "SyncNet":
        return SyncScorer("talkfreq", model, face)
    from talkfreq.metrics.sync_v2 import V2_FPS

    if abs(fps - V2_FPS) > 1e-6:
        raise ConfigError(f"syncnet_v2 weights score 25 fps video only (4 MFCC frames per frame); got fps={fps}")
    return SyncScorer("syncnet_v2", model, face)
