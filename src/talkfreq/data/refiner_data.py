"""Face-crop samples for the SOVQAE refiner: clean crops of one identity (or several), optionally degraded.

Each sample is ``{"clean": (3, S, S), "input": (3, S, S)}`` float in [-1, 1] at the refiner's ``image_size``; ``input``
is ``clean`` itself, or a :func:`talkfreq.data.degradations.degrade` of it for the denoising fine-tune; training
samples of a run with the sync-preservation term (:mod:`talkfreq.losses.sync`) also carry ``sync_window`` (5, 3, S, S):
stage 1's outputs on 5 consecutive training frames of a random place in the training split. The splits,
the endless resumable training stream and the per-sample randomness are stage 1's (:mod:`talkfreq.data.datasets`):
randomness is a pure function of ``(seed, stream position)``, so "2 steps + resume to 4" sees exactly the samples of
"4 steps" whatever the worker count.

Ours: the identity filter (``identities``), the frame window (``frame_range``: only frames [start, stop) of every
clip are read, train and val both, so an experiment can hold out a clip's tail that training never sees), and
resizing with OpenCV (INTER_AREA down, INTER_CUBIC up) *before* degrading, so a degradation acts at the
resolution the refiner sees - as in ``talkfreq refine``, which crops the frame directly at ``image_size``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch
from lightning.pytorch import LightningDataModule

from talkfreq.data.datasets import StreamLoaders, _ClipSamples, split_segments
from talkfreq.data.degradations import Degradation, degrade
from talkfreq.data.prepared import PreparedDataset
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.models.syncnet import SYNC_FRAMES

log = logging.getLogger(__name__)


@dataclass
class RefinerDataConfig:
    """``data.*`` of a refiner run."""

    root: Optional[str] = None  # prepared dataset folder (``--data``)
    identities: list[str] = field(default_factory=list)  # train on these identities only (empty: all)
    batch_size: int = 8
    num_workers: int = 2
    image_size: Optional[int] = None  # None: sovqae.image_size; else it replaces sovqae.image_size
    val_fraction: float = 0.1  # val = last frames of each clip when the index has no train/val clips
    val_batch_size: int = 0  # 0 = batch_size
    # [start, stop) frames of every clip to use at all (train and val); stop null = the clip's end; null = all.
    # With a range, val = the last val_fraction of the range (the index's whole-clip split still applies if set).
    frame_range: Optional[list[Optional[int]]] = None
    # a folder of stage-1 outputs on these very frames (talkfreq.pipeline.stage1_pairs; the personal recipe writes
    # it after training FREAK): with probability stage1_prob a sample's input is the generator's output for that
    # frame instead of a random degradation of it
    stage1_outputs: Optional[str] = None
    stage1_prob: float = 0.0


def resize_uint8(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 (area-averaged when shrinking, bicubic when enlarging)."""
    if img.shape[0] == size and img.shape[1] == size:
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)


def uint8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.array(img, copy=True)).float().div_(127.5).sub_(1.0).movedim(-1, -3)


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8 (clamped, rounded)."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().movedim(-3, -1).cpu().numpy()


class RefinerDataset(_ClipSamples):
    """Single valid frames of the given clip segments; see the module docstring for the sample layout."""

    def __init__(self, data: PreparedDataset, segments: list[tuple[str, int, int]], *, image_size: int,
                 degradation: Degradation | None = None, seed: int = 0, val: bool = False,
                 stage1_outputs: str | Path | None = None, stage1_prob: float = 0.0, sync_windows: bool = False):
        self.degradation = degradation
        self.stage1_dir = None if stage1_outputs is None else Path(stage1_outputs)
        self.stage1_prob = stage1_prob if degradation is not None else 0.0
        self._stage1: dict[str, np.ndarray] = {}
        super().__init__(data, segments, window=1, image_size=image_size, seed=seed, val=val)
        self.sync_starts = np.zeros((0, 2), dtype=np.int64)  # (clip number, start) of 5 valid consecutive frames
        if sync_windows:
            if self.stage1_dir is None:
                raise ConfigError("loss.sync_preserve > 0 needs data.stage1_outputs (its windows are stage 1's)")
            number = {cid: i for i, cid in enumerate(self.clip_ids)}
            rows = [(number[cid], t) for cid, lo, hi in segments for t in self._starts(
                np.load(self.root / "clips" / cid / "valid.npy").astype(bool), lo, hi, window=SYNC_FRAMES)]
            if not rows:
                raise TalkfreqError(f"{self.root}: no {SYNC_FRAMES} consecutive face frames for the sync-preservation "
                                    f"term's stage-1 windows")
            self.sync_starts = np.asarray(rows, dtype=np.int64)
        if self.stage1_dir is not None and (self.stage1_prob > 0 or sync_windows):
            for cid in self.clip_ids:  # every clip must have its outputs, checked here rather than mid-training
                arr = self._stage1_clip(cid)
                if len(arr) != self.metas[cid].n_frames:
                    raise TalkfreqError(f"{self.stage1_dir / (cid + '.npy')}: {len(arr)} stage-1 outputs for a clip "
                                        f"of {self.metas[cid].n_frames} frames; write them again")

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_stage1"] = {}
        return state

    def _stage1_clip(self, cid: str) -> np.ndarray:
        arr = self._stage1.get(cid)
        if arr is None:
            path = self.stage1_dir / f"{cid}.npy"
            if not path.is_file():
                raise TalkfreqError(f"{path}: no stage-1 outputs for clip {cid} (data.stage1_outputs is "
                                    f"{self.stage1_dir}; write them with talkfreq.pipeline.stage1_pairs)")
            arr = self._stage1[cid] = np.load(path, mmap_mode="r")
        return arr

    def sample(self, index: int, *, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cid = self.clip_ids[self.clip_of[index]]
        t = int(self.starts[index])
        clean = resize_uint8(np.asarray(self._clip(cid).frames[t]), self.image_size)
        x = uint8_to_tensor(clean)
        if self.degradation is None:
            return {"clean": x, "input": x}
        if self.stage1_prob > 0 and rng.random() < self.stage1_prob:
            noisy = resize_uint8(np.asarray(self._stage1_clip(cid)[t]), self.image_size)
        else:
            noisy = degrade(clean, cfg=self.degradation, rng=rng)
        out = {"clean": x, "input": uint8_to_tensor(noisy)}
        if len(self.sync_starts):  # drawn last: the other draws stay those of a run without the term
            number, start = self.sync_starts[rng.integers(len(self.sync_starts))]
            frames = self._stage1_clip(self.clip_ids[number])[start:start + SYNC_FRAMES]
            out["sync_window"] = uint8_to_tensor(np.stack([resize_uint8(np.asarray(f), self.image_size)
                                                           for f in frames]))
        return out


def split_frames(data: PreparedDataset, cfg: RefinerDataConfig) -> tuple[list, list, bool]:
    """(train, val, fell_back) segments of :func:`split_segments`, restricted to ``cfg.frame_range`` when set.

    The range is applied *before* the hold-out cut, so val is the tail of the range, not of the clip: a range that
    stops early keeps every later frame out of both splits.
    """
    if cfg.frame_range is None:
        return split_segments(data, holdout_fraction=cfg.val_fraction, min_frames=1)
    if len(cfg.frame_range) != 2:
        raise ConfigError(f"data.frame_range must be [start, stop], got {list(cfg.frame_range)}")
    start, stop = cfg.frame_range[0] or 0, cfg.frame_range[1]
    if start < 0 or (stop is not None and stop <= start):
        raise ConfigError(f"data.frame_range must satisfy 0 <= start < stop, got {list(cfg.frame_range)}")
    ranged = copy.copy(data)
    # split_segments cuts at n_frames; clipping n_frames to stop and shifting by start reuses its rules unchanged
    ranged.metas = [replace(m, n_frames=max(0, min(m.n_frames, stop if stop is not None else m.n_frames) - start))
                    for m in data.metas]
    train, val, fell_back = split_segments(ranged, holdout_fraction=cfg.val_fraction, min_frames=1)
    shift = [[(cid, lo + start, hi + start) for cid, lo, hi in part if hi > lo] for part in (train, val)]
    return shift[0], shift[1], fell_back


def _select(data: PreparedDataset, identities: list[str]) -> PreparedDataset:
    if not identities:
        return data
    known = set(data.identities())
    missing = [i for i in identities if i not in known]
    if missing:
        raise TalkfreqError(f"{data.root}: no identity {missing[0]!r} (the dataset has {', '.join(sorted(known))})")
    sub = copy.copy(data)
    sub.metas = [m for m in data.metas if m.identity in identities]
    return sub


class RefinerDataModule(StreamLoaders, LightningDataModule):
    """Train/val loaders of refiner samples. Everything that can be wrong with the data raises in the constructor."""

    def __init__(self, cfg: RefinerDataConfig, *, image_size: int, seed: int = 0,
                 degradation: Degradation | None = None, sync_windows: bool = False):
        super().__init__()
        if not cfg.root:
            raise ConfigError("data.root is not set: pass --data DIR (a folder written by `talkfreq prepare`)")
        if cfg.batch_size < 1 or cfg.num_workers < 0:
            raise ConfigError("data.batch_size must be >= 1 and data.num_workers >= 0")
        self.cfg = cfg
        self.seed = seed
        self.data = _select(PreparedDataset(cfg.root), list(cfg.identities))
        if not len(self.data.metas):
            raise TalkfreqError(f"{self.data.root}: the prepared dataset has no finished clips")
        train, val, fell_back = split_frames(self.data, cfg)
        if fell_back:
            log.info("%s: holding out the last %.0f%% of each clip's frames%s for validation", self.data.root,
                     100 * cfg.val_fraction, f" in {list(cfg.frame_range)}" if cfg.frame_range else "")
        if not 0.0 <= cfg.stage1_prob <= 1.0:
            raise ConfigError(f"data.stage1_prob must be in [0, 1], got {cfg.stage1_prob}")
        if cfg.stage1_prob > 0 and not cfg.stage1_outputs:
            raise ConfigError("data.stage1_prob > 0 needs data.stage1_outputs (a folder of stage-1 outputs)")
        kw = dict(image_size=image_size, degradation=degradation, seed=seed, stage1_outputs=cfg.stage1_outputs,
                  stage1_prob=cfg.stage1_prob)
        self.train_set = RefinerDataset(self.data, train, val=False, sync_windows=sync_windows, **kw)
        self.val_set = RefinerDataset(self.data, val, val=True, **kw)
        if len(self.train_set) == 0:
            raise TalkfreqError(f"{self.data.root}: no valid face frame in the training split")

