"""Shared fixtures: the real sample media (../shared/media, never copied into the repo) and small synth data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tiny models on a shared 2-core machine: thread hand-offs cost far more than they give (measured 10-100x slower
# per tiny conv under load), and one thread makes results reproducible across machines.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"


# Heavy tests of modules whose files are being changed elsewhere: the mark belongs on the test itself (move it there
# and drop this set when that work is merged).
def media(rel: str) -> Path:
    """Path of a file under ../shared/media; skips the test when the media folder is not there."""
    p = MEDIA / rel
    if not p.is_file():
        pytest.skip(f"sample media not available: {p}")
    return p


def rewrite_video(src: Path, dst: Path, *, fn=lambda f: f, frames: int | None = None, audio=True,
                  crf: int = 18) -> Path:
    """Write ``fn(frame)`` for the first ``frames`` frames of ``src`` to ``dst`` (25 fps h264 at ``crf``; 0 =
    lossless) with ``src``'s audio (``audio=True``), none (``False``) or the given 16 kHz mono array."""
    from talkfreq.io import VideoReader, VideoWriter, load_video_audio

    r = VideoReader(src)
    wav = load_video_audio(src, sample_rate=16000) if audio is True else (None if audio is False else audio)
    with VideoWriter(dst, fps=25, width=r.source_width, height=r.source_height, audio=wav, crf=crf) as w:
        for i, f in enumerate(r):
            if frames is not None and i >= frames:
                break
            w.write(fn(f))
    return dst


def write_wav(path: Path, wav, rate: int = 16000) -> Path:
    """``wav`` (float, [-1, 1]) as a 16-bit mono WAV file at ``rate``."""
    import wave

    import numpy as np

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def run_metrics(run: Path) -> list[dict[str, str]]:
    """Rows of the CSV logger's metrics.csv of a training run folder (its latest version, i.e. after any resume)."""
    import csv

    versions = sorted((run / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    assert versions, f"no csv metrics under {run}"
    with open(versions[-1]) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synth data set (2 identities × 1 clip × 2 s, 128 px), written once per test session."""
    from talkfreq.data.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(cfg=SynthConfig(identities=2, clips_per_identity=1, seconds=2.0, frame_size=128), out=out)
    return out


@pytest.fixture(scope="session")
def prepared_dir(synth_dir, tmp_path_factory) -> Path:
    """``synth_dir`` prepared with 96-px face crops (2 clips × 50 frames, both in the train split), once a session."""
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset([synth_dir], out=out, cfg=load_config(PrepareConfig, None, ["face.crop_size=96"]),
                    show_progress=False)
    return out


# A SyncNet expert that learns the synth mouth law quickly: the tiny config with a 128-wide network and a 3x learning
# rate decayed by a cosine (150-600 steps, ~15-60 s on one core; the 512-wide default needs ~170 s for a weaker one).
EXPERT = ("model.width=128", "optim.lr=1.0e-3", "optim.schedule=cosine", "optim.warmup_steps=15", "logging.logger=csv")
EXPERT_STEPS = 150  # the shared expert's (tests/test_lse_sync.py says why this is enough)


def train_expert(data: Path, out: Path, *, steps: int) -> Path:
    """``talkfreq train syncnet`` of the tiny config with :data:`EXPERT` on ``data`` into ``out/expert``; that
    run folder."""
    from talkfreq.cli import main

    assert main(["train", "syncnet", "-c", str(REPO / "configs" / "stage1" / "tiny_syncnet.yaml"), "--data",
                 str(data), f"run.out_dir={out}", "run.name=expert", *EXPERT, f"trainer.max_steps={steps}",
                 f"trainer.val_check_interval={steps}"]) == 0
    return out / "expert"


@pytest.fixture(scope="session")
def syncnet_expert(prepared_dir, tmp_path_factory) -> Path:
    """The run folder of a :data:`EXPERT_STEPS`-step expert trained on ``prepared_dir``, once a session: the LSE
    tests score with it and the training test checks its run (one training instead of one per module)."""
    return train_expert(prepared_dir, tmp_path_factory.mktemp("syncnet_expert"), steps=EXPERT_STEPS)
