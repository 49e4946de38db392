"""Port of the original SyncNet (``syncnet_v2``) used by LSE-D / LSE-C, from github.com/joonson/syncnet_python.

Reference: class ``S`` in ``SyncNetModel.py`` and its use in ``SyncNetInstance.py`` (``num_layers_in_fc_layers``
1024). The module names and ``Sequential`` indices are kept, so the published ``syncnet_v2.model`` state dict
loads strictly with :meth:`SyncNetV2.load_original` (13,631,616 parameters).

Inputs, as in the original evaluation code (nothing here is ours except the value-range helper):
- video: ``(B,3,5,224,224)`` — 5 consecutive 224×224 face crops from ``run_pipeline.py``: with ``s`` half the
  longer side of the (S3FD) face box and ``(x, y)`` its centre, rows ``y - s .. y + 1.8 s`` and columns
  ``x - 1.4 s .. x + 1.4 s`` (the face box at the top, chin and neck below), grey 110 outside the frame, resized
  to 224×224; **BGR, float values 0..255, no normalisation**; a 3-D conv with temporal kernel 5 collapses the 5
  frames. :func:`talkfreq.metrics.sync_v2.crop_syncnet_v2` cuts it;
- audio: ``(B,1,13,20)`` — 13 MFCCs (``python_speech_features.mfcc`` of the int16 audio at 16 kHz, 100 frames/s)
  over 20 frames (0.2 s = 5 video frames at 25 fps): :func:`talkfreq.audio.mfcc.syncnet_mfcc`.
Outputs are 1024-d, **not** normalised: LSE uses Euclidean distances between them. LSE end to end with these
weights: :mod:`talkfreq.metrics.sync_v2` (and ``talkfreq evaluate --syncnet syncnet_v2.model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from omegaconf import DictConfig
from torch import nn

from talkfreq.models._io import PretrainedMixin, build_config
from talkfreq.models.syncnet import SyncNetOutput


@dataclass
class SyncNetV2Config:
    """Settings of :class:`SyncNetV2` (the published weights use the default)."""

    embed_dim: int = 1024  # the original's num_layers_in_fc_layers


def _bn_relu2d(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


def _bn_relu3d(c: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(c), nn.ReLU(inplace=True)]


class SyncNetV2(PretrainedMixin, nn.Module):
    """``forward(video (B,3,5,224,224), mfcc (B,1,13,20)) -> SyncNetOutput(audio (B,1024), video (B,1024))``."""

    config_class = SyncNetV2Config

    def __init__(self, *, config: SyncNetV2Config | DictConfig | dict | None = None):
        super().__init__()
        cfg = build_config(SyncNetV2Config, config, source="SyncNetV2 config")
        self.config = cfg
        # Indices of every Sequential must stay as in the original (parameter-free layers included): they are
        # part of the state-dict keys of syncnet_v2.model.
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), *_bn_relu2d(64),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            nn.Conv2d(64, 192, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), *_bn_relu2d(192),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            nn.Conv2d(192, 384, kernel_size=(3, 3), padding=(1, 1)), *_bn_relu2d(384),
            nn.Conv2d(384, 256, kernel_size=(3, 3), padding=(1, 1)), *_bn_relu2d(256),
            nn.Conv2d(256, 256, kernel_size=(3, 3), padding=(1, 1)), *_bn_relu2d(256),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=(0, 0)), nn.BatchNorm2d(512), nn.ReLU(),
        )
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                      nn.Linear(512, cfg.embed_dim))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                      nn.Linear(512, cfg.embed_dim))
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0), *_bn_relu3d(96),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), *_bn_relu3d(256),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), *_bn_relu3d(256),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), *_bn_relu3d(256),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), *_bn_relu3d(256),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(256, 512, kernel_size=(1, 6, 6), padding=0), *_bn_relu3d(512),
        )

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B,1,13,20) MFCC window -> (B,embed_dim)."""
        if mfcc.dim() != 4 or tuple(mfcc.shape[1:]) != (1, 13, 20):
            raise ValueError(f"SyncNetV2: mfcc must be (B,1,13,20), got {tuple(mfcc.shape)}")
        return self.netfcaud(rearrange(self.netcnnaud(mfcc), "b c 1 1 -> b c"))

    def forward_lip(self, video: torch.Tensor) -> torch.Tensor:
        """(B,3,5,224,224) BGR 0..255 -> (B,embed_dim)."""
        if video.dim() != 5 or tuple(video.shape[1:]) != (3, 5, 224, 224):
            raise ValueError(f"SyncNetV2: video must be (B,3,5,224,224), got {tuple(video.shape)}")
        return self.netfclip(rearrange(self.netcnnlip(video), "b c 1 1 1 -> b c"))

    def forward(self, video: torch.Tensor, mfcc: torch.Tensor) -> SyncNetOutput:
        return SyncNetOutput(audio_emb=self.forward_aud(mfcc), video_emb=self.forward_lip(video))

    @classmethod
    def load_original(cls, path: str | Path, *, map_location: str | torch.device = "cpu") -> SyncNetV2:
        """Build the model and load the published ``syncnet_v2.model`` state dict strictly (eval mode).

        Missing ``num_batches_tracked`` buffers (absent from files saved before PyTorch 0.4.1) are filled with 0;
        a ``module.`` or ``__S__.`` prefix (DataParallel / SyncNetInstance state dicts) is stripped. Anything
        else that differs is a one-line TalkfreqError naming the file and the first keys.
        """
        from talkfreq.models.published import load_published

        return load_published(path, expect="syncnet_v2", map_location=map_location)  # type: ignore[return-value]


def to_syncnet_v2_video(frames: torch.Tensor) -> torch.Tensor:
    """talkfreq frames (B,5,3,224,224), RGB in [-1,1] -> the original's (B,3,5,224,224), BGR in 0..255."""
    if frames.dim() != 5 or tuple(frames.shape[1:]) != (5, 3, 224, 224):
        raise ValueError(f"expected (B,5,3,224,224) frames, got {tuple(frames.shape)}")
    bgr = frames.flip(2)
    return rearrange((bgr + 1.0) * 127.5, "b t c h w -> b c t h w")
