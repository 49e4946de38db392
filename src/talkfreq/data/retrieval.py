"""Audio-matched reference frames: the frame of the identity's own footage whose sound is nearest (ours).

A per-identity generator trained on a few seconds of one person cannot learn from them how that person's teeth
and lips look in every mouth shape; asked to draw them from the audio alone, an L1-trained generator draws the
average - a blurred blob. Retrieval gives it a real picture to copy instead: the reference is the frame (of the
training footage, never the frame being dubbed) whose audio window is nearest to the driving audio's, so its mouth
tends to be in the same shape, with that person's lip line and teeth. The generator keeps its job of drawing the
mouth from the audio and the visible face around it; it is trained with references retrieved the same way (away
from the target, see :class:`talkfreq.data.datasets.Stage1Dataset`), so at inference it sees what it trained on.

Keys: a mel window (80 x 16, :func:`talkfreq.audio.mel.mel_window`) averaged over ``pool`` equal time slices
(80 x pool values: the window's spectral envelope in coarse time steps, less sensitive to a frame of misalignment
than the raw columns), standardised per dimension by the bank's own statistics; distance: Euclidean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkfreq.audio.mel import MelConfig, mel_window
from talkfreq.errors import TalkfreqError

KEY_POOL = 4  # time slices of the 16-column mel window in a key

BANK_FILE = "reference_bank.npz"  # beside a stage-1 model trained with audio-matched references


def mel_keys(mel: np.ndarray, frames: np.ndarray | range, *, fps: float, cfg: MelConfig = MelConfig(),
             pool: int = KEY_POOL) -> np.ndarray:
    """(len(frames), n_mels * pool) float32 keys of the video frames ``frames`` from a (n_mels, T) mel."""
    wins = np.stack([mel_window(mel, int(t), fps=fps, cfg=cfg) for t in frames]).astype(np.float32)
    n, m, w = wins.shape
    if w % pool:
        raise ValueError(f"mel window of {w} columns does not split into {pool} slices")
    return wins.reshape(n, m, pool, w // pool).mean(axis=3).reshape(n, m * pool)


@dataclass
class KeyScale:
    """Per-dimension standardisation of keys (the bank's mean and std)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, keys: np.ndarray) -> KeyScale:
        return cls(mean=keys.mean(axis=0), std=keys.std(axis=0) + 1e-3)

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        return ((keys - self.mean) / self.std).astype(np.float32)


def distances(query: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """(Q, N) Euclidean distances between standardised keys."""
    q2 = (query ** 2).sum(1)[:, None]
    b2 = (bank ** 2).sum(1)[None, :]
    return np.sqrt(np.maximum(q2 + b2 - 2.0 * query @ bank.T, 0.0))


@dataclass
class ReferenceBank:
    """Face crops of the identity's training footage with their audio keys: what ``infer`` retrieves from.

    ``crops`` (N, S, S, 3) uint8 at the generator's ``image_size``, ``keys`` (N, D) raw :func:`mel_keys`.
    """

    crops: np.ndarray
    keys: np.ndarray

    def __post_init__(self) -> None:
        if self.crops.ndim != 4 or self.crops.shape[-1] != 3 or len(self.crops) != len(self.keys) or not len(self.keys):
            raise TalkfreqError(f"reference bank: {len(self.crops)} crops {self.crops.shape} and {len(self.keys)} keys "
                                f"do not match")
        self.scale = KeyScale.of(self.keys)
        self._bank = self.scale(self.keys)

    def nearest(self, keys: np.ndarray) -> np.ndarray:
        """(Q,) bank indices of the nearest crop to each raw query key (Q, D)."""
        if keys.shape[1] != self.keys.shape[1]:
            raise TalkfreqError(f"reference bank keys have {self.keys.shape[1]} values, the query {keys.shape[1]}")
        return distances(self.scale(keys), self._bank).argmin(axis=1)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / BANK_FILE
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, crops=self.crops, keys=self.keys)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ReferenceBank | None:
        """The bank saved in a model ``folder``; None when it has none."""
        path = Path(folder) / BANK_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                return cls(crops=z["crops"], keys=z["keys"])
        except (OSError, KeyError, ValueError) as exc:
            raise TalkfreqError(f"{path}: not a readable reference bank ({exc})") from exc
