"""SyncNet lip-sync expert as trained by Wav2Lip's ``color_syncnet_train.py`` (``SyncNet_color``).

Reference: ``models/syncnet.py`` and ``color_syncnet_train.py`` of github.com/Rudrabha/Wav2Lip. At ``image_size=96``
the layers, module names and ``state_dict`` keys/shapes are the original's (16,435,072 parameters): a face encoder
over 5 stacked lower-half frames (15 channels, 48×96) and an audio encoder over the 1×80×16 mel window, both of
Conv2d+BatchNorm+ReLU blocks with residual convs, each ending in a 512×1×1 map that is flattened and L2-normalised.
Training: ``BCE(cosine(audio, video), y)`` with y = 1 for in-sync windows.

Ours:
- Faces are taken as talkfreq's RGB in [-1, 1]; the network sees them as its config says it was trained:
  ``color_order`` (``rgb`` for talkfreq-trained experts, ``bgr`` for the published ``lipsync_expert.pth``) and
  ``pixel_range`` (``-1..1`` talkfreq, ``0..1`` published). The published file loads with
  :func:`talkfreq.models.published.load_published` (and ``from_pretrained(file)``).
- Other face sizes: the lower half of an S×S face is (S/2)×S. Extra stride-2 blocks (32 channels) are inserted
  after the first conv until the map before the last valid conv is at most 4×4, and that valid conv's kernel is the
  remaining size (3×3 at 96 px, 4×4 at 128 and 256), so the embedding stays width×1×1.
- ``width`` scales every layer (the original is 512), so tiny experts for tests and CPU experiments train fast.
- :class:`SyncNetOutput` is a NamedTuple, so ``audio_emb, video_emb = model(...)`` still unpacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from omegaconf import DictConfig
from torch import nn

from talkfreq.errors import ConfigError
from talkfreq.models._io import PretrainedMixin, build_config
from talkfreq.models.wav2lip import Conv2d, check_color_order, mel_audio_encoder, res_blocks

SYNC_FRAMES = 5  # frames per window (Wav2Lip's syncnet_T)
PIXEL_RANGES = ("-1..1", "0..1")


@dataclass
class SyncNetConfig:
    """Settings of :class:`SyncNet`."""

    image_size: int = 96  # face side S; the network sees the lower half, (S/2)×S
    width: int = 512  # embedding size; every layer's channels scale by width/512 (ours: 128 makes a 1 M tiny expert)
    color_order: str = "rgb"  # channel order the weights were trained on: rgb (talkfreq) | bgr (lipsync_expert.pth)
    pixel_range: str = "-1..1"  # value range they were trained on: -1..1 (talkfreq) | 0..1 (lipsync_expert.pth)


class SyncNetOutput(NamedTuple):
    """Both embeddings, (B,width) each (512 by default), unit L2 norm, non-negative (they come out of a ReLU)."""

    audio_emb: torch.Tensor
    video_emb: torch.Tensor


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _final_size(h: int, w: int) -> tuple[int, int]:
    """Spatial size before the last valid conv, after the original's (k5,s(1,2),p1) and 4 × (k3,s2,p1) convs."""
    h, w = _out(h, 5, 1, 1), _out(w, 5, 2, 1)
    for _ in range(4):
        h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
    return h, w


def face_layout(image_size: int) -> tuple[int, tuple[int, int]]:
    """(number of extra stride-2 blocks, final valid-conv kernel) for faces of side ``image_size``."""
    h, w = image_size // 2, image_size
    extra = 0
    while max(_final_size(h, w)) > 4:
        h, w = _out(h, 3, 2, 1), _out(w, 3, 2, 1)
        extra += 1
    kernel = _final_size(h, w)
    if min(kernel) < 1:
        raise ConfigError(f"SyncNet: image_size {image_size} is too small")
    return extra, kernel


class SyncNet(PretrainedMixin, nn.Module):
    """``forward(faces (B,15,S/2,S), mel (B,1,80,16)) -> SyncNetOutput(audio_emb (B,W), video_emb (B,W))``,
    W = ``width``.

    ``faces`` stacks the lower halves of 5 consecutive frames along channels (frame-major: frame 0 RGB, frame 1
    RGB, ...), see :func:`stack_lower_halves`.
    """

    config_class = SyncNetConfig

    def __init__(self, *, config: SyncNetConfig | DictConfig | dict | None = None):
        super().__init__()
        cfg = build_config(SyncNetConfig, config, source="SyncNet config")
        if cfg.image_size % 2:
            raise ConfigError(f"SyncNet: image_size must be even, got {cfg.image_size}")
        extra, kernel = face_layout(cfg.image_size)
        check_color_order(cfg.color_order, source="SyncNet")
        if cfg.pixel_range not in PIXEL_RANGES:
            raise ConfigError(f"SyncNet: pixel_range must be one of {', '.join(PIXEL_RANGES)}, "
                              f"got {cfg.pixel_range!r}")
        self.config = cfg

        if not 8 <= cfg.width <= 4096:
            raise ConfigError(f"SyncNet: width must be in [8, 4096], got {cfg.width}")
        w = cfg.width
        c = [max(4, k * w // 512) for k in (32, 64, 128, 256)]
        self.face_encoder = nn.Sequential(
            Conv2d(3 * SYNC_FRAMES, c[0], 7, 1, 3),
            *[m for _ in range(extra) for m in (Conv2d(c[0], c[0], 3, 2, 1), *res_blocks(c[0], 1))],  # ours, S > 96

            Conv2d(c[0], c[1], 5, (1, 2), 1), *res_blocks(c[1], 2),
            Conv2d(c[1], c[2], 3, 2, 1), *res_blocks(c[2], 3),
            Conv2d(c[2], c[3], 3, 2, 1), *res_blocks(c[3], 2),
            Conv2d(c[3], w, 3, 2, 1), *res_blocks(w, 2),
            Conv2d(w, w, 3, 2, 1),
            Conv2d(w, w, kernel, 1, 0),  # 3×3 at 96 px
            Conv2d(w, w, 1, 1, 0),
        )
        self.audio_encoder = mel_audio_encoder(residual_at_256=2, width=w)

    def forward(self, faces: torch.Tensor, mel: torch.Tensor) -> SyncNetOutput:
        s = self.config.image_size
        if faces.dim() != 4 or tuple(faces.shape[1:]) != (3 * SYNC_FRAMES, s // 2, s):
            raise ValueError(f"SyncNet: faces must be (B,{3 * SYNC_FRAMES},{s // 2},{s}), got {tuple(faces.shape)}")
        if mel.dim() != 4 or tuple(mel.shape[1:]) != (1, 80, 16):
            raise ValueError(f"SyncNet: mel must be (B,1,80,16), got {tuple(mel.shape)}")
        audio = F.normalize(rearrange(self.audio_encoder(mel), "b c 1 1 -> b c"), p=2, dim=1)
        return SyncNetOutput(audio_emb=audio, video_emb=self.video_embedding(faces))

    def video_embedding(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, 15, S/2, S) stacked lower halves (RGB, [-1, 1]) -> (B, width) L2-normalised video embeddings."""
        if self.config.color_order == "bgr":  # 5 frames of 3 channels each
            faces = rearrange(rearrange(faces, "b (t c) h w -> b t c h w", c=3).flip(2), "b t c h w -> b (t c) h w")
        if self.config.pixel_range == "0..1":
            faces = (faces + 1.0) * 0.5
        return F.normalize(rearrange(self.face_encoder(faces), "b c 1 1 -> b c"), p=2, dim=1)

    def face_input(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 5, 3, H, W) consecutive face crops in [-1, 1] at any size -> (B, 15, S/2, S), this expert's face
        input (resized to its ``image_size``, float32: the CPU has no bf16 antialiased resize)."""
        size = self.config.image_size
        if frames.shape[-1] != size or frames.shape[-2] != size:
            b = frames.shape[0]
            flat = F.interpolate(rearrange(frames.float(), "b t c h w -> (b t) c h w"), size=(size, size),
                                 mode="bilinear", align_corners=False, antialias=True)
            frames = rearrange(flat, "(b t) c h w -> b t c h w", b=b)
        return stack_lower_halves(frames)

    @classmethod
    def frozen(cls, path: str) -> SyncNet:
        """A frozen expert (no gradients, eval mode) from a ``save_pretrained`` folder or Wav2Lip's published
        ``lipsync_expert.pth`` (whose BGR [0, 1] convention its config applies); a one-line error otherwise."""
        return cls.from_pretrained(path).requires_grad_(False).eval()


def sync_probability(audio_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (B,) of the two embeddings — Wav2Lip reads it as P(in sync); in [0, 1] for ReLU outputs."""
    return F.cosine_similarity(audio_emb, video_emb, dim=1)


def expert_loss(audio_emb: torch.Tensor, video_emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Wav2Lip's ``cosine_loss``: BCE(cosine, target) with target (B,) or (B,1) in {0, 1}; scalar.

    The cosine is clamped to [0, 1] only to guard against float round-off above 1 (it is >= 0 for ReLU
    embeddings); BCE's own log clamp keeps a cosine of exactly 0 finite, as in the original.
    """
    p = sync_probability(audio_emb, video_emb).clamp(0.0, 1.0)
    return F.binary_cross_entropy(p, target.reshape(p.shape).to(p.dtype))


def stack_lower_halves(frames: torch.Tensor) -> torch.Tensor:
    """(B,5,3,S,S) consecutive frames -> (B,15,S/2,S) lower halves stacked frame-major, SyncNet's face input."""
    if frames.dim() != 5 or frames.shape[1] != SYNC_FRAMES or frames.shape[2] != 3:
        raise ValueError(f"expected (B,{SYNC_FRAMES},3,S,S) frames, got {tuple(frames.shape)}")
    return rearrange(frames[..., frames.shape[-2] // 2:, :], "b t c h w -> b (t c) h w")
