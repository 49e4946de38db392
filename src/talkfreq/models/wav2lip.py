"""Wav2Lip generator (Prajwal et al., ACM MM 2020), faithful to the public code at 96 px.

Reference: ``models/wav2lip.py`` and ``models/conv.py`` of github.com/Rudrabha/Wav2Lip (first public commit). At
``image_size=96`` the layer structure, the module names and hence the ``state_dict`` keys and shapes are the
original's (36,298,035 parameters): 7 face-encoder blocks of Conv2d+BatchNorm+ReLU with residual convs
(96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1), an audio encoder over the 1×80×16 mel window down to 512×1×1, and 7 decoder
blocks of transposed convs, each output concatenated with the matching encoder feature map, then a 3×3 + 1×1 output
block with a sigmoid.

Ours:
- **Input convention at the boundary.** The original takes images in [0, 1] (BGR, as read by OpenCV) and outputs a
  sigmoid in [0, 1]. Here ``forward`` takes RGB faces in [-1, 1] and returns RGB [-1, 1] like every talkfreq model,
  by mapping ``x -> (x + 1) / 2`` on the way in and ``y -> 2y - 1`` on the way out, and flipping the channels of
  inputs and output when ``config.color_order`` is ``bgr`` (the published weights; talkfreq-trained ones are
  ``rgb``); the network in between is the original, so original weights see what they were trained on.
  ``config.mask_fill`` is the value of the hidden half in the network's [0, 1] input (the original's inference
  and training set it to 0, black; talkfreq trains with 0.5, grey); callers mask with :func:`mask_fill_value`.
  The published files load with :func:`talkfreq.models.published.load_published` (and ``from_pretrained(file)``).
- **Larger faces.** ``image_size = b · 2^n`` with ``n >= 5`` (96 = 3·2^5, 128 = 4·2^5, 192 = 3·2^6, 256 = 4·2^6,
  512 = 4·2^7): ``n - 5`` extra stride-2 encoder blocks (16 channels) are inserted after the first block and
  matching transposed-conv decoder blocks appended before the output block; the bottleneck conv kernel (and the
  first transposed conv) is ``b`` instead of 3, so the bottleneck stays 1×1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from omegaconf import DictConfig
from torch import nn

from talkfreq.errors import ConfigError
from talkfreq.models._io import PretrainedMixin, build_config
from talkfreq.models.masks import apply_mask


class Conv2d(nn.Module):
    """Wav2Lip's ``Conv2d``: Conv2d + BatchNorm2d (+ input when ``residual``) + ReLU. Same attribute names."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, *, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x  # not in-place: autograd-safe regardless of what follows
        return self.act(out)


class Conv2dTranspose(nn.Module):
    """Wav2Lip's ``Conv2dTranspose``: ConvTranspose2d + BatchNorm2d + ReLU. Same attribute names."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
                                        nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def res_blocks(c: int, n: int) -> list[nn.Module]:
    """``n`` residual 3×3 Conv2d blocks of width ``c``."""
    return [Conv2d(c, c, 3, 1, 1, residual=True) for _ in range(n)]


def mel_audio_encoder(*, residual_at_256: int, width: int = 512) -> nn.Sequential:
    """Wav2Lip's audio encoder: (B,1,80,16) -> (B,width,1,1) (80×16 -> 27×16 -> 9×6 -> 3×3 -> 1×1).

    The generator's has 1 residual block at width 256, SyncNet's has 2; otherwise they are the same. ``width``
    (ours; the original is 512) scales every layer's channels by width/512, for tiny experts.
    """
    c = [max(4, k * width // 512) for k in (32, 64, 128, 256)]
    return nn.Sequential(
        Conv2d(1, c[0], 3, 1, 1), *res_blocks(c[0], 2),
        Conv2d(c[0], c[1], 3, (3, 1), 1), *res_blocks(c[1], 2),
        Conv2d(c[1], c[2], 3, 3, 1), *res_blocks(c[2], 2),
        Conv2d(c[2], c[3], 3, (3, 2), 1), *res_blocks(c[3], residual_at_256),
        Conv2d(c[3], width, 3, 1, 0),
        Conv2d(width, width, 1, 1, 0),
    )


@dataclass
class Wav2LipConfig:
    """Settings of :class:`Wav2Lip`."""

    image_size: int = 96  # b·2^n with n >= 5: 96, 128, 192, 256, 512 ...
    color_order: str = "rgb"  # channel order the weights were trained on: rgb (talkfreq) | bgr (the published files)
    mask_fill: float = 0.5  # hidden half's value in the network's [0, 1] input: 0.5 (talkfreq) | 0.0 (published)


def bottleneck_split(image_size: int) -> tuple[int, int]:
    """``(b, n)`` with ``image_size = b · 2^n``, ``n`` as large as possible with ``b >= 3``; raises if ``n < 5``."""
    n = 0
    while image_size % (2 ** (n + 1)) == 0 and image_size // (2 ** (n + 1)) >= 3:
        n += 1
    if n < 5:
        raise ConfigError(f"Wav2Lip: image_size {image_size} must be b·2^n with b >= 3 and n >= 5 "
                          "(e.g. 96, 128, 192, 256, 512)")
    return image_size // 2**n, n


class Wav2Lip(PretrainedMixin, nn.Module):
    """The Wav2Lip generator.

    ``forward(faces (B,6,S,S), mel (B,1,80,16)) -> (B,3,S,S)``, faces and output in [-1, 1]. ``faces`` is the
    channel concatenation (lower-half-masked target, reference), as in the original data loader. Sequences
    ``faces (B,6,T,S,S)`` with ``mel (B,T,1,80,16)`` give ``(B,3,T,S,S)`` like the original.
    """

    config_class = Wav2LipConfig

    def __init__(self, *, config: Wav2LipConfig | DictConfig | dict | None = None):
        super().__init__()
        cfg = build_config(Wav2LipConfig, config, source="Wav2Lip config")
        b, n = bottleneck_split(cfg.image_size)
        check_color_order(cfg.color_order, source="Wav2Lip")
        if not 0.0 <= cfg.mask_fill <= 1.0:
            raise ConfigError(f"Wav2Lip: mask_fill must be in [0, 1], got {cfg.mask_fill}")
        self.config = cfg
        extra = n - 5

        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(6, 16, 7, 1, 3)),  # S
            *[nn.Sequential(Conv2d(16, 16, 3, 2, 1), *res_blocks(16, 2)) for _ in range(extra)],  # ours: S/2 ..
            nn.Sequential(Conv2d(16, 32, 3, 2, 1), *res_blocks(32, 2)),  # 48 at 96 px
            nn.Sequential(Conv2d(32, 64, 3, 2, 1), *res_blocks(64, 3)),  # 24
            nn.Sequential(Conv2d(64, 128, 3, 2, 1), *res_blocks(128, 2)),  # 12
            nn.Sequential(Conv2d(128, 256, 3, 2, 1), *res_blocks(256, 2)),  # 6
            nn.Sequential(Conv2d(256, 512, 3, 2, 1), *res_blocks(512, 1)),  # 3 (= b)
            nn.Sequential(Conv2d(512, 512, b, 1, 0), Conv2d(512, 512, 1, 1, 0)),  # 1
        ])

        self.audio_encoder = mel_audio_encoder(residual_at_256=1)

        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(512, 512, 1, 1, 0)),  # 1
            nn.Sequential(Conv2dTranspose(1024, 512, b, 1, 0), *res_blocks(512, 1)),  # b
            nn.Sequential(Conv2dTranspose(1024, 512, 3, 2, 1, 1), *res_blocks(512, 2)),  # 6
            nn.Sequential(Conv2dTranspose(768, 384, 3, 2, 1, 1), *res_blocks(384, 2)),  # 12
            nn.Sequential(Conv2dTranspose(512, 256, 3, 2, 1, 1), *res_blocks(256, 2)),  # 24
            nn.Sequential(Conv2dTranspose(320, 128, 3, 2, 1, 1), *res_blocks(128, 2)),  # 48
            nn.Sequential(Conv2dTranspose(160, 64, 3, 2, 1, 1), *res_blocks(64, 2)),  # 96 at 96 px
            *[nn.Sequential(Conv2dTranspose(80, 64, 3, 2, 1, 1), *res_blocks(64, 2)) for _ in range(extra)],  # ours
        ])

        self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, faces: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """(B,6,S,S) in [-1,1], (B,1,80,16) -> (B,3,S,S) in [-1,1]; or the 5-D sequence form (see class doc)."""
        s = self.config.image_size
        seq = faces.dim() == 5
        if seq:
            t = faces.shape[2]
            faces = rearrange(faces, "b c t h w -> (t b) c h w")  # the original stacks time-major too
            mel = rearrange(mel, "b t c f m -> (t b) c f m")
        if faces.dim() != 4 or tuple(faces.shape[1:]) != (6, s, s):
            raise ValueError(f"Wav2Lip: faces must be (B,6,{s},{s}), got {tuple(faces.shape)}")
        if mel.dim() != 4 or tuple(mel.shape[1:]) != (1, 80, 16):
            raise ValueError(f"Wav2Lip: mel must be (B,1,80,16), got {tuple(mel.shape)}")

        bgr = self.config.color_order == "bgr"
        if bgr:  # masked target and reference, 3 channels each
            faces = rearrange(rearrange(faces, "b (k c) h w -> b k c h w", c=3).flip(2), "b k c h w -> b (k c) h w")
        x = (faces + 1.0) * 0.5  # talkfreq [-1,1] -> the original's [0,1]
        feats = []
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)

        x = self.audio_encoder(mel)  # (B,512,1,1)
        for block in self.face_decoder_blocks:
            x = torch.cat([block(x), feats.pop()], dim=1)

        out = self.output_block(x) * 2.0 - 1.0  # sigmoid [0,1] -> [-1,1]
        if bgr:
            out = out.flip(1)
        if seq:
            out = rearrange(out, "(t b) c h w -> b c t h w", t=t)
        return out


def check_color_order(order: str, *, source: str) -> None:
    """One-line ConfigError unless ``order`` is ``rgb`` or ``bgr``."""
    if order not in ("rgb", "bgr"):
        raise ConfigError(f"{source}: color_order must be rgb or bgr, got {order!r}")


def mask_fill_value(model: nn.Module) -> float:
    """The fill of masked pixels in talkfreq's [-1, 1] for ``model``: its ``config.mask_fill`` (in [0, 1]) for a
    Wav2Lip, 0.0 (mid-grey) for any other generator."""
    return 2.0 * float(model.config.mask_fill) - 1.0 if isinstance(model, Wav2Lip) else 0.0


def wav2lip_input(masked: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,3,S,S) lower-half-masked target + (B,3,S,S) reference -> the (B,6,S,S) generator input."""
    return torch.cat([masked, reference], dim=1)


def generate(model: Wav2Lip, *, reference: torch.Tensor, masked: torch.Tensor, audio: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """The registry's stage-1 call (:class:`talkfreq.models.registry.ModelKind`): the hidden pixels filled as this
    generator's config wants them (talkfreq fills them mid-grey; a binary mask makes the refill exact), then the
    6-channel input."""
    masked = apply_mask(masked, mask, fill=mask_fill_value(model))
    return model(wav2lip_input(masked, reference), audio)
