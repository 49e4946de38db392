"""LSE-D / LSE-C lip-sync scores, computed exactly as syncnet_python's ``SyncNetInstance.evaluate``.

What the original does (joonson/syncnet_python ``SyncNetInstance.py``; Wav2Lip's ``evaluation/scores_LSE`` copy is the
same and returns ``minval`` and ``conf`` per video):

* one video embedding per 5-frame window starting at frame t and one audio embedding per matching 0.2 s window;
* ``calc_pdist(im_feat, cc_feat, vshift)``: the audio embeddings are zero-padded by ``vshift`` rows on both ends and,
  for each video frame t, ``dists[t][k] = ||video[t] - audio_padded[t + k]||`` for k in [0, 2 vshift] (torch's
  ``pairwise_distance``, which adds eps=1e-6 to the difference), i.e. the distance to ``audio[t + k - vshift]`` - or
  to a zero vector where that index falls outside the clip;
* ``mdist`` = mean over frames of those curves, shape (2 vshift + 1,);
* ``minval, minidx = min(mdist)``; ``offset = vshift - minidx``; ``conf = median(mdist) - minval``.

LSE-D is ``minval`` and LSE-C is ``conf`` of each video (averaged over a test set); ``vshift`` is 15 in Wav2Lip's
scoring scripts. Sign: ``offset = +3`` when ``video[t]`` matches ``audio[t - 3]``, i.e. the picture lags the sound
by 3 frames.

The scores depend on the embedding network and the crop pipeline, so they are comparable only between videos scored
by the same tool; the ground-truth video is always scored too. :func:`sync_embeddings` turns a face-crop stream and
a mel spectrogram into the two embedding sequences with any SyncNet-like callable (talkfreq's own expert, or a port of
syncnet_v2).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple, Optional

import numpy as np
import torch

from talkfreq.audio.mel import MelConfig, mel_window
from talkfreq.metrics.fidelity import as_frames

__all__ = ["LSEResult", "SyncEmbedFn", "SyncEmbeddingStream", "lse_from_distances", "lse_scores", "offset_distances",
           "offset_support", "sync_embeddings"]

# (faces (B, window, 3, H, W) float in [0, 1], mel (B, n_mels, frames_per_window))
#   -> (audio_emb (B, D), video_emb (B, D))
SyncEmbedFn = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


class LSEResult(NamedTuple):
    """LSE-D (lower = better sync), LSE-C (higher = more confident sync), the AV offset in frames and how sure that
    offset is (:func:`offset_support`; None where not computed)."""

    lse_d: float
    lse_c: float
    offset: int
    offset_support: Optional[float] = None


def _as_tensor(x) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.float().cpu()


def offset_distances(audio_emb, video_emb, *, vshift: int = 15) -> torch.Tensor:
    """(T, 2 vshift + 1) distances ``||video[t] - audio[t + k - vshift]||`` (zero audio outside the clip).

    syncnet_python's ``calc_pdist(video, audio, vshift)``, vectorised; both inputs are (T, D).
    """
    a, v = _as_tensor(audio_emb), _as_tensor(video_emb)
    if a.ndim != 2 or v.ndim != 2 or a.shape != v.shape:
        raise ValueError(
            f"expected audio and video embeddings of the same (T, D) shape, got {tuple(a.shape)}, {tuple(v.shape)}"
        )
    if vshift < 0:
        raise ValueError(f"vshift must be >= 0, got {vshift}")
    win = 2 * vshift + 1
    a_pad = torch.nn.functional.pad(a, (0, 0, vshift, vshift))
    windows = a_pad.unfold(0, win, 1).transpose(1, 2)  # (T, win, D): row t = a_pad[t : t + win]
    return torch.nn.functional.pairwise_distance(v[:, None, :].expand_as(windows), windows)


def offset_support(dists, *, block: int = 5, resamples: int = 1000, seed: int = 0) -> float:
    """The share of block-bootstrap resamples of the (T, 2 vshift + 1) per-window distances ``dists`` whose mean
    curve has its minimum where the whole clip's has (1 = every resample agrees; near 0.5 = the offset is a coin
    toss between two). Blocks of ``block`` consecutive windows, since neighbouring 5-frame windows share frames;
    ``ceil(T / block)`` blocks per resample. Ours (syncnet_python reports no uncertainty): on a 4 s clip a refiner
    that moved the offset by a frame did so where stage 1's own offset held in only 61 % of resamples
    (benchmarks/RESULTS.md "Sync preservation")."""
    d = _as_tensor(dists).double().numpy()
    t = d.shape[0]
    if t == 0:
        raise ValueError("no windows to resample")
    block = max(1, min(block, t))
    cum = np.concatenate([np.zeros((1, d.shape[1])), np.cumsum(d, axis=0)])
    block_sums = cum[block:] - cum[:-block]  # (T - block + 1, offsets): the sum over each run of `block` windows
    n_blocks = -(-t // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(block_sums), size=(resamples, n_blocks))
    chunk = max(1, 4_000_000 // (n_blocks * d.shape[1]))  # resamples at a time: ~32 MB whatever the clip's length
    picks = np.concatenate([np.argmin(block_sums[starts[i:i + chunk]].sum(axis=1), axis=1)
                            for i in range(0, resamples, chunk)])
    return float(np.mean(picks == int(np.argmin(d.mean(axis=0)))))


def lse_scores(audio_emb, video_emb, *, vshift: int = 15, support: bool = True) -> LSEResult:
    """LSE-D, LSE-C and offset of one video from (T, D) audio and video embeddings (syncnet_python's ``evaluate``),
    and (``support``) the offset's :func:`offset_support`."""
    return lse_from_distances(offset_distances(audio_emb, video_emb, vshift=vshift), support=support)


def lse_from_distances(dists, *, support: bool = True) -> LSEResult:
    """:func:`lse_scores` of (T, 2 vshift + 1) per-window distances (:func:`offset_distances`; an ensemble of
    experts passes the mean of its members')."""
    dists = _as_tensor(dists)
    if dists.ndim != 2 or dists.shape[1] % 2 == 0:
        raise ValueError(f"expected (T, 2 vshift + 1) distances, got {tuple(dists.shape)}")
    if dists.shape[0] == 0:
        raise ValueError("no embeddings: the clip is shorter than one sync window")
    vshift = dists.shape[1] // 2
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval  # 2 vshift + 1 is odd: the median is the middle value, as in torch
    return LSEResult(lse_d=float(minval), lse_c=float(conf), offset=int(vshift - int(minidx)),
                     offset_support=offset_support(dists) if support else None)


class SyncEmbeddingStream:
    """Streaming :func:`sync_embeddings`: ``add`` consecutive frame chunks of one video, then ``result()``.

    Keeps the last ``window - 1`` frames and at most one batch of windows, so several videos can be scored in
    lock-step (one stream each) with bounded memory; the embeddings themselves, (N, D) per video, are kept.
    Arguments are those of :func:`sync_embeddings`.
    """

    def __init__(self, mel: np.ndarray, *, embed: SyncEmbedFn, fps: float, window: int = 5,
                 mel_cfg: MelConfig = MelConfig(), batch_size: int = 32, device: str | torch.device = "cpu"):
        self.mel, self.embed, self.fps, self.window = mel, embed, fps, window
        self.mel_cfg, self.batch_size, self.device = mel_cfg, batch_size, device
        self._buf: deque[torch.Tensor] = deque(maxlen=window)
        self._faces: list[torch.Tensor] = []
        self._mels: list[torch.Tensor] = []
        self._audio: list[torch.Tensor] = []
        self._video: list[torch.Tensor] = []
        self.frames = 0

    def add(self, frames: Iterable | torch.Tensor | np.ndarray) -> SyncEmbeddingStream:
        """Add consecutive frames: a (T, 3, H, W) tensor, a (T, H, W, 3) uint8 array or an iterable of frames."""
        for frame in frames if isinstance(frames, (torch.Tensor, np.ndarray)) else iter(frames):
            self._buf.append(as_frames(frame)[0])
            self.frames += 1
            if len(self._buf) == self.window:
                start = self.frames - self.window
                self._faces.append(torch.stack(tuple(self._buf)))
                win = mel_window(self.mel, start, fps=self.fps, cfg=self.mel_cfg)
                self._mels.append(torch.from_numpy(np.ascontiguousarray(win)).float())
                if len(self._faces) == self.batch_size:
                    self._flush()
        return self

    def _flush(self) -> None:
        if not self._faces:
            return
        with torch.no_grad():
            a, v = self.embed(torch.stack(self._faces).to(self.device), torch.stack(self._mels).to(self.device))
        self._audio.append(a.detach().float().cpu())
        self._video.append(v.detach().float().cpu())
        self._faces.clear()
        self._mels.clear()

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio_emb (N, D), video_emb (N, D)) of every window added so far."""
        self._flush()
        if not self._audio:
            raise ValueError(f"need at least {self.window} frames for one sync window, got {self.frames}")
        return torch.cat(self._audio), torch.cat(self._video)


def sync_embeddings(
    frames: Iterable | torch.Tensor | np.ndarray,
    mel: np.ndarray,
    *,
    embed: SyncEmbedFn,
    fps: float,
    window: int = 5,
    mel_cfg: MelConfig = MelConfig(),
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(audio_emb (N, D), video_emb (N, D)) for every ``window``-frame window of a face-crop stream.

    Args:
        frames: the crops the SyncNet expects (e.g. the lower half of the face), as a (T, 3, H, W) tensor, a
            (T, H, W, 3) uint8 array, or any iterable of single frames in those layouts - consumed once, so a long
            video can stream through.
        mel: (n_mels, M) mel spectrogram of the audio (:func:`talkfreq.audio.mel.melspectrogram`).
        embed: ``embed(faces (B, window, 3, H, W) in [0, 1], mel (B, n_mels, frames_per_window))`` ->
            ``(audio_emb (B, D), video_emb (B, D))``; called under ``torch.no_grad``.
        fps: video frame rate; window ``i`` (frames ``i .. i+window-1``) is paired with the mel window starting at
            ``int(i * (mel_fps / fps))`` (Wav2Lip's rule, :func:`talkfreq.audio.mel.mel_window`).

    N = T - window + 1. Windows whose audio runs past the end take the last mel columns (``mel_window``'s rule).
    :class:`SyncEmbeddingStream` does the same chunk by chunk.
    """
    stream = SyncEmbeddingStream(mel, embed=embed, fps=fps, window=window, mel_cfg=mel_cfg, batch_size=batch_size,
                                 device=device)
    return stream.add(frames).result()
