"""Torch datasets over prepared datasets (:mod:`talkfreq.data.prepared`) for stage 1 and the SyncNet expert.

Samples (all images (3,S,S) float in [-1, 1], resized on the fly from the prepared crop size to the model's
``image_size`` with antialiased bilinear interpolation when the two differ):

- :class:`Stage1Dataset` — ``target`` frame t, ``reference`` from the same clip at least ``ref_min_gap`` frames away,
  ``mask`` (1,S,S) the dubbing mask (prob. ``p_half``: half, or the generator's ``dub_mask``) or full,
  ``masked`` = target with the mask applied, ``audio`` = the mel
  window (1,80,16) or speech features (2·context+1, D). With ``window=5`` (the sync loss is on) also
  ``sync_frames`` (5,3,S,S) = targets t..t+4, ``sync_audio`` (5, *audio) and ``sync_mel`` (1,80,16) at t.
- :class:`SyncNetDataset` — Wav2Lip's recipe: ``faces`` (15,S/2,S) = lower halves of frames t..t+4, ``mel``
  (1,80,16), ``label`` 1.0 when the mel window is the one at t, 0.0 when it is shifted by at least
  ``neg_min_shift`` frames (random sign, random size).

Ours (the papers give no data pipeline):

- Randomness is a pure function of ``(seed, sample position)``: the reference frame, the mask kind and the SyncNet
  label/shift never depend on global RNG state, worker count or process. Training reads an endless stream
  (:class:`TrainStream`) whose batch ``b`` is fixed by ``(seed, b, rank)``; a resumed run starts the stream at the
  restored step, so "2 steps + resume to 4" sees exactly the batches of "4 steps".
- The reference may be any valid frame of the clip at distance >= ``ref_min_gap`` from the whole target window,
  also across the train/val hold-out boundary (it only supplies appearance, as any frame of the video may at
  inference); when no frame is that far (very short clips) the farthest valid frame is used.
- Only windows whose every frame is valid (a usable face box) are sampled.
- Memmaps are opened lazily, per process: a dataset pickled into a DataLoader worker re-opens its clips there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule as _LightningDataModule
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from talkfreq.audio.features import feature_window
from talkfreq.audio.mel import MelConfig, mel_window
from talkfreq.data.frames import frames_to_tensor
from talkfreq.data.prepared import ClipMeta, PreparedClip, PreparedDataset
from talkfreq.data.retrieval import KeyScale, ReferenceBank, distances, mel_keys
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.models.masks import apply_mask, make_mask

log = logging.getLogger(__name__)

SYNC_WINDOW = 5  # frames seen by the SyncNet expert (Wav2Lip's syncnet_T)
_AUDIO_KINDS = ("mel", "hubert")
REFERENCE_KINDS = ("random", "audio")
BANK_FRAMES = 500  # at most this many training frames in a reference bank (128 px: ~10 MB compressed)


@dataclass
class DataConfig:
    """Data settings of a stage-1 or SyncNet run (``data.*``)."""

    root: Optional[str] = None  # prepared dataset folder (``--data``)
    batch_size: int = 8
    num_workers: int = 4
    p_half: float = 0.5  # probability of the dubbing mask (half/lower); otherwise full (one-shot)
    ref_min_gap: int = 5  # frames between the reference and the target window
    # random: any frame at least ref_min_gap away (Wav2Lip's); audio: one of the ref_topk frames (that far away)
    # whose audio window is nearest to the target's (talkfreq.data.retrieval; inference then retrieves from the
    # reference bank saved with the model)
    reference: str = "random"
    ref_topk: int = 3
    # Training samples only: the target window and the reference each shifted by up to jitter x S and scaled by up to
    # 1 +- jitter (one draw for the window, one for the reference; ours). A few seconds of one person show few head
    # positions; a generator that saw each frame at one place learns the place, not the face (configs/personal).
    jitter: float = 0.0
    flip: bool = False  # training samples only: mirror the target window and the reference (each p = 0.5)
    audio: str = "mel"  # mel | hubert (needs speech.npy from `talkfreq prepare --speech-model`)
    context: int = 2  # hubert: rows on each side of the frame, window 2·context+1 (the paper ablates it)
    neg_min_shift: int = 5  # SyncNet negatives: mel window shifted by at least this many frames
    holdout_fraction: float = 0.1  # val = last frames of each clip when the index has no train/val split
    val_clips: list[str] = field(default_factory=list)  # clip ids held out whole for val (overrides the index split)
    val_batch_size: int = 0  # 0 = batch_size
    # Ablation control: the generator's audio input is all zeros (same shapes), so a run learns from the picture
    # alone - the baseline that shows how much of the mouth motion the audio actually drives. A sync expert, when on,
    # still hears the real audio (sync_mel).
    zero_audio: bool = False


def _mel_cfg(meta: ClipMeta) -> MelConfig:
    # Window positions depend on the mel frame rate; the crop pipeline may have used another hop than the default.
    return MelConfig(sample_rate=meta.sample_rate, hop_length=meta.hop_length)


class _ClipSamples(Dataset):
    """Shared machinery: segments of clips, the window index over valid frames, lazy clip opening.

    ``segments``: (clip_id, lo, hi) frame ranges [lo, hi) whose windows this dataset samples.
    """

    def __init__(self, data: PreparedDataset, segments: list[tuple[str, int, int]], *, window: int,
                 image_size: int, seed: int, val: bool):
        self.root = data.root
        self.metas = {m.clip_id: m for m in data.metas}
        self.clip_ids = sorted({cid for cid, _, _ in segments})
        self.window = window
        self.image_size = image_size
        self.seed = seed
        self.val = val
        self._clips: dict[str, PreparedClip] = {}
        self.valid_frames: dict[str, np.ndarray] = {}
        number = {cid: i for i, cid in enumerate(self.clip_ids)}
        clip_of, starts = [], []
        for cid, lo, hi in segments:
            # Only the small valid.npy is read here; frames are memory-mapped later, in the process that samples.
            valid = np.load(self.root / "clips" / cid / "valid.npy").astype(bool)
            self.valid_frames[cid] = np.flatnonzero(valid)
            ok = self._starts(valid, lo, hi)
            clip_of += [number[cid]] * len(ok)
            starts += ok.tolist()
        self.clip_of = np.asarray(clip_of, dtype=np.int64)
        self.starts = np.asarray(starts, dtype=np.int64)

    def _starts(self, valid: np.ndarray, lo: int, hi: int, *, window: int | None = None) -> np.ndarray:
        """Window starts t in [lo, hi - window] with frames t..t+window-1 all valid (``window``: this dataset's)."""
        window = self.window if window is None else window
        if hi - lo < window:
            return np.zeros(0, dtype=np.int64)
        run = np.lib.stride_tricks.sliding_window_view(valid[lo:hi], window).all(axis=1)
        return lo + np.flatnonzero(run)

    def __len__(self) -> int:
        return len(self.starts)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_clips"] = {}  # memmaps are re-opened in the worker that uses them
        return state

    def _clip(self, cid: str) -> PreparedClip:
        clip = self._clips.get(cid)
        if clip is None:
            clip = self._clips[cid] = PreparedClip(self.root / "clips" / cid)
        return clip

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index``: val samples are fixed; train ones come with a stream position."""
        return np.random.default_rng([self.seed, 1 if self.val else 0, index])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(index, rng=self.rng(index))

    def sample(self, index: int, *, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class Stage1Dataset(_ClipSamples):
    """Generator training samples; see the module docstring for the keys and shapes."""

    def __init__(self, data: PreparedDataset, segments: list[tuple[str, int, int]], *, cfg: DataConfig,
                 image_size: int, seed: int = 0, sync: bool = False, val: bool = False, dub_mask: str = "half"):
        if cfg.audio not in _AUDIO_KINDS:
            raise ConfigError(f"data.audio must be mel or hubert, got {cfg.audio!r}")
        if cfg.audio == "hubert":
            missing = [cid for cid, _, _ in segments if not (data.root / "clips" / cid / "speech.npy").is_file()]
            if missing:
                raise TalkfreqError(
                    f"data.audio=hubert but clip {missing[0]} of {data.root} has no speech features (no speech.npy); "
                    f"prepare the data with `talkfreq prepare --speech-model MODEL` or set data.audio=mel")
        if not 0.0 <= cfg.p_half <= 1.0:
            raise ConfigError(f"data.p_half must be in [0, 1], got {cfg.p_half}")
        if not 0.0 <= cfg.jitter < 0.5:
            raise ConfigError(f"data.jitter must be in [0, 0.5), got {cfg.jitter}")
        if cfg.reference not in REFERENCE_KINDS or cfg.ref_topk < 1:
            raise ConfigError(f"data.reference must be one of {', '.join(REFERENCE_KINDS)} and data.ref_topk >= 1, "
                              f"got {cfg.reference!r} and {cfg.ref_topk}")
        self.cfg = cfg
        self.sync = sync
        self.dub_mask = dub_mask  # the generator's (FREAKConfig.dub_mask), written once there
        super().__init__(data, segments, window=SYNC_WINDOW if sync else 1, image_size=image_size, seed=seed,
                         val=val)
        self._keys: dict[str, np.ndarray] = {}  # clip -> standardised audio keys of its valid frames

    def audio_keys(self, cid: str) -> np.ndarray:
        """(len(valid_frames[cid]), D) standardised :func:`~talkfreq.data.retrieval.mel_keys` of the clip's valid
        frames (computed once per process)."""
        keys = self._keys.get(cid)
        if keys is None:
            meta = self.metas[cid]
            raw = mel_keys(np.load(self.root / "clips" / cid / "mel.npy"), self.valid_frames[cid], fps=meta.fps,
                           cfg=_mel_cfg(meta))
            keys = self._keys[cid] = KeyScale.of(raw)(raw)
        return keys

    def audio_window(self, clip: PreparedClip, t: int) -> torch.Tensor:
        """(1,80,16) mel window or (2·context+1, D) speech features of frame t (zeros with ``zero_audio``)."""
        if self.cfg.audio == "hubert":
            x = torch.from_numpy(feature_window(clip.speech, t, context=self.cfg.context).astype(np.float32))
        else:
            x = mel_tensor(clip, t)
        return torch.zeros_like(x) if self.cfg.zero_audio else x

    def reference_index(self, cid: str, t: int, *, rng: np.random.Generator) -> int:
        frames = self.valid_frames[cid]
        lo, hi = t, t + self.window - 1
        dist = np.maximum(lo - frames, frames - hi)  # distance to the target window (<= 0 inside it)
        far = dist >= self.cfg.ref_min_gap
        if not far.any():
            return int(frames[np.argmax(dist)])
        if self.cfg.reference == "audio":
            keys = self.audio_keys(cid)
            i = int(np.searchsorted(frames, t))  # t is a valid frame: every window frame is
            d = distances(keys[i:i + 1], keys[far])[0]
            top = np.argsort(d, kind="stable")[: self.cfg.ref_topk]
            return int(frames[far][rng.choice(top)])
        return int(rng.choice(frames[far]))

    def sample(self, index: int, *, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cid = self.clip_ids[self.clip_of[index]]
        t = int(self.starts[index])
        clip = self._clip(cid)
        s = self.image_size
        r = self.reference_index(cid, t, rng=rng)
        kind = self.dub_mask if rng.random() < self.cfg.p_half else "full"
        frames = frames_to_tensor(clip.frames[t:t + self.window], size=s)  # (W,3,S,S)
        reference = frames_to_tensor(clip.frames[r], size=s)
        if self.cfg.jitter and not self.val:
            frames = jitter(frames, rng=rng, amount=self.cfg.jitter)
            reference = jitter(reference[None], rng=rng, amount=self.cfg.jitter)[0]
        if self.cfg.flip and not self.val:
            # a face and its mirror image speak alike; a clip of a few seconds shows the head turned one way only
            frames = frames.flip(-1) if rng.random() < 0.5 else frames
            reference = reference.flip(-1) if rng.random() < 0.5 else reference
        mask = make_mask(kind, batch=1, size=s)[0]
        out = {
            "target": frames[0],
            "reference": reference,
            "mask": mask,
            "masked": apply_mask(frames[0], mask),
            "audio": self.audio_window(clip, t),
        }
        if self.sync:
            out["sync_frames"] = frames
            out["sync_audio"] = torch.stack([self.audio_window(clip, t + k) for k in range(self.window)])
            out["sync_mel"] = mel_tensor(clip, t)
        return out


def jitter(images: torch.Tensor, *, rng: np.random.Generator, amount: float) -> torch.Tensor:
    """(N,3,S,S) images moved by one random shift (up to ``amount`` x S each way) and zoom (1 +- ``amount``), edges
    repeated (``data.jitter``)."""
    zoom = 1.0 + rng.uniform(-amount, amount)
    tx, ty = rng.uniform(-amount, amount, size=2) * 2.0  # affine_grid works in [-1, 1]: twice the fraction
    theta = torch.tensor([[1.0 / zoom, 0.0, tx], [0.0, 1.0 / zoom, ty]], dtype=images.dtype)
    grid = F.affine_grid(theta.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def mel_tensor(clip: PreparedClip, t: int) -> torch.Tensor:
    """(1,80,16) float32 mel window of video frame t (past the end of the audio: the last 16 columns)."""
    m = mel_window(clip.mel, t, fps=clip.meta.fps, cfg=_mel_cfg(clip.meta))
    return torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None]


class SyncNetDataset(_ClipSamples):
    """SyncNet expert samples: ``faces`` (15,S/2,S), ``mel`` (1,80,16), ``label`` () float (1 = in sync).

    Windows whose clip offers no negative (every other start closer than ``neg_min_shift``) are left out.
    """

    def __init__(self, data: PreparedDataset, segments: list[tuple[str, int, int]], *, cfg: DataConfig,
                 image_size: int, seed: int = 0, val: bool = False):
        if cfg.neg_min_shift < 1:
            raise ConfigError(f"data.neg_min_shift must be >= 1, got {cfg.neg_min_shift}")
        self.cfg = cfg
        super().__init__(data, segments, window=SYNC_WINDOW, image_size=image_size, seed=seed, val=val)
        n = np.array([self.metas[self.clip_ids[c]].n_frames for c in self.clip_of], dtype=np.int64)
        keep = (self.starts >= cfg.neg_min_shift) | (n - 1 - self.starts >= cfg.neg_min_shift)
        self.clip_of, self.starts = self.clip_of[keep], self.starts[keep]

    def sample(self, index: int, *, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cid = self.clip_ids[self.clip_of[index]]
        t = int(self.starts[index])
        clip = self._clip(cid)
        positive = bool(rng.random() < 0.5)
        audio_t = t
        if not positive:
            shifts = np.arange(-t, len(clip) - t)  # any mel window start inside the clip ...
            shifts = shifts[np.abs(shifts) >= self.cfg.neg_min_shift]  # ... at least neg_min_shift away
            audio_t = t + int(rng.choice(shifts))
        frames = frames_to_tensor(clip.frames[t:t + SYNC_WINDOW], size=self.image_size)  # (5,3,S,S)
        lower = frames[:, :, self.image_size // 2:, :].reshape(3 * SYNC_WINDOW, self.image_size // 2, self.image_size)
        return {"faces": lower, "mel": mel_tensor(clip, audio_t), "label": torch.tensor(float(positive))}


class TrainStream(IterableDataset):
    """An endless, resumable stream of training samples from a map-style :class:`_ClipSamples` (ours).

    Epoch ``e`` visits the samples in the permutation drawn from ``(seed, e)``; stream position ``p`` (a sample
    count over all ranks) is epoch ``p // N``, element ``p % N``, and its sample's randomness comes from
    ``(seed, p)``. Per-rank batch ``b`` holds positions ``(b·world + rank)·B .. +B``. DataLoader worker ``w`` of
    ``W`` produces batches ``start_batch + w, + W, ...``, which the loader returns round-robin — so the batch
    sequence is the same whatever the number of workers, and a run resumed at step k starts at batch k.
    """

    def __init__(self, dataset: _ClipSamples, *, batch_size: int, seed: int, start_batch: int = 0, rank: int = 0,
                 world_size: int = 1):
        if len(dataset) == 0:
            raise TalkfreqError("no training samples: every clip is too short or has no valid face window")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        info = get_worker_info()
        w, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        n = len(self.dataset)
        perm_epoch, perm = -1, None
        b = self.start_batch + w
        while True:
            for j in range(self.batch_size):
                pos = (b * self.world_size + self.rank) * self.batch_size + j
                epoch, k = divmod(pos, n)
                if epoch != perm_epoch:
                    perm_epoch, perm = epoch, np.random.default_rng([self.seed, 2, epoch]).permutation(n)
                yield self.dataset.sample(int(perm[k]), rng=np.random.default_rng([self.seed, 0, pos]))
            b += n_workers


def split_segments(data: PreparedDataset, *, holdout_fraction: float, min_frames: int = SYNC_WINDOW,
                   val_clips: list[str] | tuple[str, ...] = ()) -> tuple[list, list, bool]:
    """(train segments, val segments, fell_back): whole clips — ``val_clips`` for val and the rest for train when
    given, else by the index's ``split`` — or, when either split is empty, every clip cut into its first
    (1 - holdout_fraction) frames (train) and the rest, at least ``min_frames`` so that one 5-frame window fits
    (val)."""
    if val_clips:
        known = {m.clip_id for m in data.metas}
        unknown = sorted(set(val_clips) - known)
        if unknown:
            raise ConfigError(f"data.val_clips: {', '.join(unknown)} not in {data.root} (clips: "
                              f"{', '.join(sorted(known))})")
        if known <= set(val_clips):
            raise ConfigError("data.val_clips holds every clip: nothing is left to train on")
        held = set(val_clips)
        return ([(m.clip_id, 0, m.n_frames) for m in data.metas if m.clip_id not in held],
                [(m.clip_id, 0, m.n_frames) for m in data.metas if m.clip_id in held], False)
    train = [(m.clip_id, 0, m.n_frames) for m in data.metas if m.split == "train"]
    val = [(m.clip_id, 0, m.n_frames) for m in data.metas if m.split == "val"]
    if train and val:
        return train, val, False
    if not 0.0 < holdout_fraction < 1.0:
        raise ConfigError(f"data.holdout_fraction must be in (0, 1), got {holdout_fraction}")
    train, val = [], []
    for m in data.metas:
        cut = max(0, m.n_frames - max(min_frames, int(round(holdout_fraction * m.n_frames))))
        train.append((m.clip_id, 0, cut))
        val.append((m.clip_id, cut, m.n_frames))
    return train, val, True


class StreamLoaders:
    """The loaders of a DataModule whose ``train_set``/``val_set``/``cfg``/``seed`` are set in ``setup``: an endless,
    resumable training stream (:class:`TrainStream`) split across DDP ranks, and a plain validation loader."""

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start, rank, world = 0, 0, 1
        if trainer is not None:
            # global_step is already restored when Lightning asks for the loader, so a resumed run continues the
            # stream where the checkpoint left it (manual-optimisation GANs count one step per batch: their
            # discriminator step is not counted, see training/stage1.py and training/refiner.py).
            start = trainer.global_step * trainer.accumulate_grad_batches
            rank, world = trainer.global_rank, trainer.world_size
        stream = TrainStream(self.train_set, batch_size=self.cfg.batch_size, seed=self.seed, start_batch=start,
                             rank=rank, world_size=world)
        return DataLoader(stream, batch_size=self.cfg.batch_size, num_workers=self.cfg.num_workers,
                          pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.cfg.val_batch_size or self.cfg.batch_size, shuffle=False,
                          num_workers=self.cfg.num_workers, persistent_workers=self.cfg.num_workers > 0,
                          pin_memory=torch.cuda.is_available())


class Stage1DataModule(StreamLoaders, _LightningDataModule):
    """Train/val loaders of stage-1 samples over a prepared dataset (``cfg.root``).

    Splits: the clips of ``val_clips`` (when set) against all others; else clips whose index row says
    ``split=train`` / ``split=val``. When either split is empty (small data sets,
    where the hash split put every clip in one), each clip is cut instead: its last ``holdout_fraction`` of frames
    (at least 5) are held out for validation and the rest trains — deterministic, logged at start-up.
    Everything that can be wrong with the data (no index, no speech features for ``audio=hubert``, no valid window)
    raises here, in the constructor, before any training starts.

    Training reads :class:`TrainStream` (endless; ``max_steps`` ends the run), starting at the trainer's restored
    step, sharded by the trainer's rank; validation reads a fixed map-style dataset.
    """

    def __init__(self, cfg: DataConfig, *, image_size: int, seed: int = 0, sync: bool = False,
                 dub_mask: str = "half"):
        super().__init__()
        if not cfg.root:
            raise ConfigError("data.root is not set: pass --data DIR (a folder written by `talkfreq prepare`)")
        if cfg.batch_size < 1 or cfg.num_workers < 0:
            raise ConfigError("data.batch_size must be >= 1 and data.num_workers >= 0")
        self.cfg = cfg
        self.image_size = image_size
        self.seed = seed
        self.sync = sync
        self.dub_mask = dub_mask
        self.data = PreparedDataset(cfg.root)
        if not len(self.data):
            raise TalkfreqError(f"{self.data.root}: the prepared dataset has no finished clips")
        train, val, fell_back = split_segments(self.data, holdout_fraction=cfg.holdout_fraction,
                                               val_clips=cfg.val_clips)
        if fell_back:
            log.info("%s: no separate train/val clips in the index; holding out the last %.0f%% of each clip's "
                     "frames for validation", self.data.root, 100 * cfg.holdout_fraction)
        self.train_segments = train
        self.train_set = self._make(train, val=False)
        self.val_set = self._make(val, val=True)
        if len(self.train_set) == 0:
            raise TalkfreqError(f"{self.data.root}: no training window with valid faces in the train split")

    def _make(self, segments: list[tuple[str, int, int]], *, val: bool) -> _ClipSamples:
        return Stage1Dataset(self.data, segments, cfg=self.cfg, image_size=self.image_size, seed=self.seed,
                             sync=self.sync, val=val, dub_mask=self.dub_mask)

    def reference_bank(self, *, max_frames: int = BANK_FRAMES) -> ReferenceBank:
        """The training frames as a :class:`~talkfreq.data.retrieval.ReferenceBank` for ``infer``: the valid frames
        of the train split (evenly thinned to ``max_frames`` in all), at the generator's size, with raw audio keys."""
        picks = []
        for cid, lo, hi in self.train_segments:
            clip = PreparedClip(self.data.root / "clips" / cid)
            picks.append((clip, np.flatnonzero(clip.valid[lo:hi]) + lo))
        total = sum(len(v) for _, v in picks)
        if not total:
            raise TalkfreqError(f"{self.data.root}: no valid frame in the train split for a reference bank")
        step = max(1.0, total / max_frames)
        crops, keys = [], []
        for clip, valid in picks:
            pick = valid[np.unique(np.floor(np.arange(0, len(valid), step)).astype(np.int64))]
            if len(pick):
                img = frames_to_tensor(clip.frames[pick], size=self.image_size)  # (N,3,S,S) in [-1, 1]
                crops.append(((img.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())
                keys.append(mel_keys(clip.mel, pick, fps=clip.meta.fps, cfg=_mel_cfg(clip.meta)))
        return ReferenceBank(crops=np.concatenate(crops), keys=np.concatenate(keys))

    @property
    def speech_dim(self) -> int:
        """D of the dataset's speech features (0 when it has none)."""
        return max((m.speech_dim for m in self.data.metas), default=0)

    @property
    def speech_source(self) -> tuple[str, int] | None:
        """(speech model, layer) that made the clips' ``speech.npy``; None when no clip recorded one.

        Clips made by different encoders or layers cannot train one model: that is a one-line error."""
        sources = {(m.speech_model, m.speech_layer) for m in self.data.metas if m.speech_dim and m.speech_model}
        if len(sources) > 1:
            raise TalkfreqError(f"{self.data.root}: clips hold speech features from different encoders/layers "
                                f"({', '.join(f'{n} layer {k}' for n, k in sorted(sources))}); re-prepare them "
                                f"with one --speech-model")
        return next(iter(sources), None)



class SyncNetDataModule(Stage1DataModule):
    """The same splits and loaders over :class:`SyncNetDataset` windows (``image_size`` = the expert's)."""

    def __init__(self, cfg: DataConfig, *, image_size: int, seed: int = 0):
        super().__init__(cfg, image_size=image_size, seed=seed, sync=False)

    def _make(self, segments: list[tuple[str, int, int]], *, val: bool) -> _ClipSamples:
        return SyncNetDataset(self.data, segments, cfg=self.cfg, image_size=self.image_size, seed=self.seed, val=val)
