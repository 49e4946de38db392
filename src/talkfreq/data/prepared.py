"""The prepared-dataset format: what ``talkfreq prepare`` writes and every training DataModule reads.

Layout (ours)::

    DIR/
      index.json                 one row per finished clip (rebuilt from the clips' meta.json at the end of a run)
      prepare.yaml               the PrepareConfig of the run that made it
      clips/<clip_id>/
        meta.json                written last: its presence is what "finished" means
        frames.u8                raw uint8 (N, S, S, 3) RGB face crops — np.memmap, O(1) random access
        audio.wav                16-bit PCM mono at the mel sample rate, exactly N / fps seconds
        mel.npy                  (80, T) float32, T = 1 + len(audio) // hop (80 per second, Wav2Lip's count)
        boxes.npy                (N, 4) float32 square crop boxes [x0, y0, x1, y1] in source-frame pixels
        face_found.npy           (N,) bool: the detector found the face on this very frame
        valid.npy                (N,) bool: a usable box (found, or interpolated/held by the miss policy)
        speech.npy               optional (N, D) float16 HuBERT-style features on the video timeline

A clip is built in ``clips/.partial-<clip_id>-<pid>/`` and renamed into place only when complete, so a killed run
never leaves a half clip that looks finished; the next run removes stale partial folders and redoes those clips.
"""

from __future__ import annotations

import json
import os
import shutil
import wave
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from talkfreq.errors import TalkfreqError
from talkfreq.io.files import write_json

CLIPS = "clips"
INDEX = "index.json"
META = "meta.json"


@dataclass
class ClipMeta:
    """One row of the index: what a clip holds and where it came from."""

    clip_id: str
    identity: str
    source: str
    n_frames: int
    fps: float
    size: int
    sample_rate: int
    audio_samples: int
    mel_frames: int
    hop_length: int
    source_width: int
    source_height: int
    face_found: int  # frames on which the detector found the face
    valid: int  # frames with a usable box after the miss policy
    split: str = "train"
    speech_dim: int = 0
    speech_model: str = ""  # the speech encoder (HF id or folder) and hidden-state layer that made speech.npy
    speech_layer: int = -1
    extra: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.audio_samples / self.sample_rate


def assign_split(clip_id: str, val_fraction: float) -> str:
    """Deterministic train/val split by a hash of the clip id (stable across machines, shards and re-runs)."""
    return "val" if (zlib.crc32(clip_id.encode()) % 10_000) / 10_000 < val_fraction else "train"


def write_wav(path: Path | IO[bytes], wav: np.ndarray, sample_rate: int) -> None:
    """Write (L,) float32 in [-1, 1] as 16-bit PCM mono to a path or an open binary file."""
    pcm = np.clip(np.round(wav * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path if hasattr(path, "write") else str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())


def read_wav(path: Path) -> np.ndarray:
    """Read a 16-bit PCM mono wav written by :func:`write_wav` → (L,) float32."""
    with wave.open(str(path), "rb") as w:
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0


class PreparedClip:
    """Read access to one finished clip; arrays are memory-mapped, so opening is cheap."""

    def __init__(self, path: Path):
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            raise TalkfreqError(f"{self.path}: not a finished prepared clip (no {META})")
        self.meta = ClipMeta(**json.loads(meta_path.read_text()))
        m = self.meta
        self.frames = np.memmap(self.path / "frames.u8", dtype=np.uint8, mode="r",
                                shape=(m.n_frames, m.size, m.size, 3))
        self.mel = np.load(self.path / "mel.npy", mmap_mode="r")
        self.boxes = np.load(self.path / "boxes.npy")
        self.face_found = np.load(self.path / "face_found.npy")
        self.valid = np.load(self.path / "valid.npy")

    def __len__(self) -> int:
        return self.meta.n_frames

    @property
    def audio(self) -> np.ndarray:
        return read_wav(self.path / "audio.wav")

    @property
    def speech(self) -> np.ndarray | None:
        p = self.path / "speech.npy"
        return np.load(p, mmap_mode="r") if p.is_file() else None


class ClipWriter:
    """Builds one clip in a partial folder; ``commit`` renames it into place (atomic on one filesystem)."""

    def __init__(self, root: Path, clip_id: str, *, size: int):
        self.root = Path(root)
        self.clip_id = clip_id
        self.size = size
        clips = self.root / CLIPS
        clips.mkdir(parents=True, exist_ok=True)
        for stale in clips.glob(f".partial-{clip_id}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = clips / f".partial-{clip_id}-{os.getpid()}"
        self.tmp.mkdir()
        self.final = clips / clip_id
        self._frames = open(self.tmp / "frames.u8", "wb")
        self.n_frames = 0

    def add_frame(self, crop: np.ndarray) -> None:
        """Append one (S, S, 3) uint8 crop."""
        if crop.shape != (self.size, self.size, 3) or crop.dtype != np.uint8:
            raise ValueError(f"crop must be ({self.size}, {self.size}, 3) uint8, got {crop.shape} {crop.dtype}")
        self._frames.write(np.ascontiguousarray(crop).tobytes())
        self.n_frames += 1

    def save_array(self, name: str, array: np.ndarray) -> None:
        np.save(self.tmp / f"{name}.npy", array)

    def save_audio(self, wav: np.ndarray, sample_rate: int) -> None:
        write_wav(self.tmp / "audio.wav", wav, sample_rate)

    def commit(self, meta: ClipMeta) -> Path:
        self._frames.close()
        if meta.n_frames != self.n_frames:
            raise RuntimeError(f"{self.clip_id}: meta says {meta.n_frames} frames, {self.n_frames} written")
        (self.tmp / META).write_text(json.dumps(asdict(meta), indent=1))
        if self.final.exists():  # a re-prepare (--overwrite) replaces the old clip only once the new one is whole
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self._frames.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def finished_clip_ids(root: Path) -> set[str]:
    clips = Path(root) / CLIPS
    if not clips.is_dir():
        return set()
    return {p.name for p in clips.iterdir() if not p.name.startswith(".") and (p / META).is_file()}


def write_index(root: Path) -> list[ClipMeta]:
    """Rebuild ``index.json`` from every finished clip (atomic; safe when several shards finish at once)."""
    root = Path(root)
    metas = [PreparedClip(root / CLIPS / cid).meta for cid in sorted(finished_clip_ids(root))]
    write_json(root / INDEX, [asdict(m) for m in metas])
    return metas


class PreparedDataset:
    """A prepared dataset folder: its index, and clips opened on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = self.root / INDEX
        if not index.is_file():
            raise TalkfreqError(f"{self.root}: not a prepared dataset (no {INDEX}); run `talkfreq prepare` first")
        self.metas = [ClipMeta(**row) for row in json.loads(index.read_text())]

    def __len__(self) -> int:
        return len(self.metas)

    def ids(self, split: str | None = None, identity: str | None = None) -> list[str]:
        return [
            m.clip_id
            for m in self.metas
            if (split is None or m.split == split) and (identity is None or m.identity == identity)
        ]

    def identities(self) -> list[str]:
        return sorted({m.identity for m in self.metas})

    def clip(self, clip_id: str) -> PreparedClip:
        return PreparedClip(self.root / CLIPS / clip_id)
