"""FREAK: frequency-modulated talking-face generator (Ni, Fu, Zhou, ICMR 2025, arXiv 2503.04067) — our version.

There is no public code; only the abstract, the first pages and a third-party summary are known.

**From the paper**
- Inputs: one reference image, a masked image (half mask = video dubbing: the lower half of the target frame is
  hidden; full mask = one-shot: the whole target is hidden) and an audio window with a context length (HuBERT in the
  paper). One model serves both mask modes.
- Two visual encoders (reference, masked) with multi-scale features, coupled at each scale by a **VEFM**: FFT2 of
  the reference features -> real part -> 1×1 conv = adaptive filter; masked features -> gated conv -> FFT2;
  element-wise product; inverse FFT (outline only, from a summary).
- An **AVFM** that modulates the visual features with the audio in the frequency domain (inside unknown).
- A decoder back to the image. (Losses L_rec + L_percep + L_freq live in ``talkfreq.losses``.)

**Ours** (every other choice)
- The mask as a 4th input channel of the masked encoder, so the network knows which mode it is in.
- Encoders/decoder: a GroupNorm/SiLU residual U-Net; scale 0 at full resolution, each later scale halves it;
  widths ``base_channels · channel_mult``.
- ``stem_downsample = f > 1``: a space-to-depth (pixel-unshuffle) stem moves f×f pixel blocks into channels, so
  scale 0 is at S/f, and the output conv predicts f² sub-pixels per position (pixel shuffle). Every pixel still
  reaches the network and the output keeps full-resolution detail, but the U-Net runs on f² times fewer
  positions: the cost-budgeted 256/512 configs use it. The VEFM/AVFM spectra then cover frequencies up to S/(2f)
  cycles per side; finer ones live across the f² sub-pixel channels.
- VEFM details: rFFT2 with ``norm="ortho"``, RMS-normalised reference spectrum, residual form, zero-init filter
  (exact identity at step 0) — see :class:`~talkfreq.models.freak_blocks.VEFM`.
- Skip fusion: ``conv1x1(cat(VEFM(ref, masked), ref))``. The reference is concatenated as well because a purely
  multiplicative spectral coupling cannot move reference appearance into a blank (full-mask) target: the spectrum
  of a spatially constant map is DC only, and a product with it stays DC. With ``use_vefm=False`` this becomes
  the plain fusion ``conv1x1(cat(masked, ref))``.
- AVFM entirely: audio encoder (LayerNorm, 1-D convs over the window, MLP) -> embedding; per-channel gains over
  ``avfm_bands`` radial frequency bands on the rFFT2 of the bottleneck and the ``avfm_decoder_scales`` coarsest
  decoder levels, residual form, then per-channel FiLM; zero-init heads (identity at step 0). With
  ``use_avfm=False`` only the FiLM remains (plain audio conditioning) at the same places.
- Output ``tanh`` in [-1, 1]; mel (80×16) as the default audio, HuBERT by ``audio_dim``/``audio_len``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from omegaconf import DictConfig
from torch import nn

from talkfreq.audio.mel import MelConfig
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.models._io import PretrainedMixin, build_config
from talkfreq.models.freak_blocks import AVFM, VEFM, AudioEncoder, ResBlock, VisualEncoder, group_count
from talkfreq.models.masks import DUB_MASKS, MaskKind
from talkfreq.models.registry import MEL, AudioSpec


@dataclass
class FREAKConfig:
    """Settings of :class:`FREAK` (all defaults live here)."""

    image_size: int = 256  # face crop side S: 128, 256 or 512 (any multiple of stem_downsample·2^(num_scales-1))
    base_channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 8])  # one entry per scale
    num_scales: int = 5  # must equal len(channel_mult); scale i is at S / (stem_downsample · 2^i)
    stem_downsample: int = 1  # space-to-depth factor f of the stem and output (1: scale 0 at full resolution)
    use_vefm: bool = True  # False: plain fusion conv1x1(cat(masked, ref)) at every scale
    use_avfm: bool = True  # False: FiLM-only audio conditioning at the same places
    use_mask_channel: bool = True  # the mask (B,1,S,S) is a 4th input channel of the masked encoder
    audio_dim: int = 80  # F: 80 for mel, 768/1024 for HuBERT base/large
    audio_len: int = 16  # T: 16 mel frames, or 2*context+1 HuBERT frames (the paper ablates the context)
    audio_hidden: int = 256
    audio_embed_dim: int = 512
    avfm_bands: int = 8  # radial frequency bands of the AVFM gain
    avfm_decoder_scales: int = 2  # AVFM on the bottleneck and on this many of the coarsest decoder levels
    # The dubbing mask this model is trained with and run with (ours): "half" hides rows S/2.. (Wav2Lip's); "lower"
    # hides only the ellipse over nose, mouth and chin that the paste-back replaces (face.config.REGIONS), so the
    # cheeks' outline and the face's position stay visible - see configs/personal/freak.yaml for what it buys.
    dub_mask: str = "half"
    # Ours: the output keeps the visible pixels of ``masked`` exactly (out = mask * generated + (1 - mask) * masked),
    # so the generator draws only what is hidden and every gradient of the loss goes there; off, it redraws the
    # whole face as the paper's generator does.
    compose: bool = False


def _validate(cfg: FREAKConfig) -> None:
    if len(cfg.channel_mult) != cfg.num_scales:
        raise ConfigError(f"FREAK: channel_mult has {len(cfg.channel_mult)} entries but num_scales is {cfg.num_scales}")
    if cfg.num_scales < 2:
        raise ConfigError("FREAK: num_scales must be at least 2")
    if cfg.stem_downsample < 1:
        raise ConfigError(f"FREAK: stem_downsample must be >= 1, got {cfg.stem_downsample}")
    factor = cfg.stem_downsample * 2 ** (cfg.num_scales - 1)
    if cfg.image_size % factor != 0:
        raise ConfigError(f"FREAK: image_size {cfg.image_size} must be divisible by stem_downsample·2^(num_scales-1)"
                          f" = {factor}")
    if not 0 <= cfg.avfm_decoder_scales <= cfg.num_scales - 1:
        raise ConfigError(f"FREAK: avfm_decoder_scales must be in 0..{cfg.num_scales - 1}")
    if cfg.dub_mask not in DUB_MASKS:
        raise ConfigError(f"FREAK: dub_mask must be one of {', '.join(DUB_MASKS)}, got {cfg.dub_mask!r}")
    if min(cfg.base_channels, cfg.audio_dim, cfg.audio_len, cfg.avfm_bands, *cfg.channel_mult) < 1:
        raise ConfigError("FREAK: channel, audio and band sizes must be positive")


class FREAK(PretrainedMixin, nn.Module):
    """The FREAK generator (see the module docstring for what is the paper's and what is ours).

    ``forward(reference (B,3,S,S), masked (B,3,S,S), audio (B,T,F), mask (B,1,S,S)) -> (B,3,S,S)`` in [-1, 1].
    ``mask`` is 1 where the target is hidden (lower half: dubbing; everywhere: one-shot); the caller has already
    blanked those pixels in ``masked`` (see :func:`apply_mask`). ``audio`` may also be a Wav2Lip-style mel window
    (B,1,F,T).
    """

    config_class = FREAKConfig

    def __init__(self, *, config: FREAKConfig | DictConfig | dict | None = None):
        super().__init__()
        cfg = build_config(FREAKConfig, config, source="FREAK config")
        _validate(cfg)
        self.config = cfg
        ch = [cfg.base_channels * m for m in cfg.channel_mult]
        self.channels = ch

        f = cfg.stem_downsample
        self.ref_encoder = VisualEncoder(in_channels=3, channels=ch, stem_downsample=f)
        self.masked_encoder = VisualEncoder(in_channels=4 if cfg.use_mask_channel else 3, channels=ch,
                                            stem_downsample=f)
        self.vefm = nn.ModuleList([VEFM(channels=c) for c in ch]) if cfg.use_vefm else None
        self.fuse = nn.ModuleList([nn.Conv2d(2 * c, c, 1) for c in ch])

        self.audio_encoder = AudioEncoder(audio_dim=cfg.audio_dim, audio_len=cfg.audio_len,
                                          hidden=cfg.audio_hidden, embed_dim=cfg.audio_embed_dim)

        def avfm(c: int) -> AVFM:
            return AVFM(channels=c, embed_dim=cfg.audio_embed_dim, num_bands=cfg.avfm_bands, spectral=cfg.use_avfm)

        self.mid_in = ResBlock(in_channels=ch[-1], out_channels=ch[-1])
        self.mid_avfm = avfm(ch[-1])
        self.mid_out = ResBlock(in_channels=ch[-1], out_channels=ch[-1])

        # Decoder level i (i = N-2 .. 0) brings level i+1 up to S/2^i and merges fused skip i.
        n = cfg.num_scales
        self.up = nn.ModuleList([nn.Conv2d(ch[i + 1], ch[i], 3, padding=1) for i in range(n - 1)])
        self.dec = nn.ModuleList([ResBlock(in_channels=2 * ch[i], out_channels=ch[i]) for i in range(n - 1)])
        # Keys are decoder levels as strings (ModuleDict needs str); the coarsest levels get an AVFM.
        self.dec_avfm = nn.ModuleDict({str(i): avfm(ch[i]) for i in range(n - 2, n - 2 - cfg.avfm_decoder_scales, -1)})

        self.out_norm = nn.GroupNorm(group_count(ch[0]), ch[0])
        self.out_conv = nn.Conv2d(ch[0], 3 * f * f, 3, padding=1)
        self.out_shuffle = nn.PixelShuffle(f) if f > 1 else nn.Identity()  # no parameters: f=1 keeps old files

    def _check(self, reference: torch.Tensor, masked: torch.Tensor, audio: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
        cfg = self.config
        s = cfg.image_size
        for name, t in (("reference", reference), ("masked", masked)):
            if t.dim() != 4 or tuple(t.shape[1:]) != (3, s, s):
                raise ValueError(f"FREAK: {name} must be (B,3,{s},{s}), got {tuple(t.shape)}")
        if audio.dim() == 4 and audio.shape[1] == 1:  # Wav2Lip-style mel window (B,1,F,T)
            audio = rearrange(audio, "b 1 f t -> b t f")
        if audio.dim() != 3 or tuple(audio.shape[1:]) != (cfg.audio_len, cfg.audio_dim):
            raise ValueError(f"FREAK: audio must be (B,{cfg.audio_len},{cfg.audio_dim}) (audio_len, audio_dim), "
                             f"got {tuple(audio.shape)}")
        if cfg.use_mask_channel:
            if mask is None:
                raise ValueError("FREAK: this model takes the mask (B,1,S,S) as input (use_mask_channel=True)")
            if mask.dim() != 4 or tuple(mask.shape[1:]) != (1, s, s):
                raise ValueError(f"FREAK: mask must be (B,1,{s},{s}), got {tuple(mask.shape)}")
        return audio

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """(B,T,F) -> (B,E) audio embedding (exposed so a caller can cache it across frames)."""
        return self.audio_encoder(audio)

    def forward(self, reference: torch.Tensor, masked: torch.Tensor, audio: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B,3,S,S), (B,3,S,S), (B,T,F), (B,1,S,S) -> (B,3,S,S) in [-1, 1]."""
        audio = self._check(reference, masked, audio, mask)
        a = self.encode_audio(audio)
        m_in = torch.cat([masked, mask.to(masked.dtype)], dim=1) if self.config.use_mask_channel else masked
        refs = self.ref_encoder(reference)
        ms = self.masked_encoder(m_in)

        fused = []
        for i, (r, m) in enumerate(zip(refs, ms)):
            if self.vefm is not None:
                m = self.vefm[i](r, m)
            fused.append(self.fuse[i](torch.cat([m, r], dim=1)))

        x = self.mid_out(self.mid_avfm(self.mid_in(fused[-1]), a))
        for i in range(self.config.num_scales - 2, -1, -1):
            x = self.up[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = self.dec[i](torch.cat([x, fused[i]], dim=1))
            if str(i) in self.dec_avfm:
                x = self.dec_avfm[str(i)](x, a)
        out = torch.tanh(self.out_shuffle(self.out_conv(F.silu(self.out_norm(x)))))
        if self.config.compose:
            m = mask.to(out.dtype)
            out = m * out + (1.0 - m) * masked.to(out.dtype)
        return out


def generate(model: FREAK, *, reference: torch.Tensor, masked: torch.Tensor, audio: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """The registry's stage-1 call (:class:`talkfreq.models.registry.ModelKind`): FREAK takes the mask itself."""
    return model(reference, masked, audio, mask)


def audio_spec(config: FREAKConfig) -> AudioSpec:
    """The audio window of a FREAK: ``(audio_len, audio_dim)`` is (16, 80) for mel windows and (2·context+1, D) for
    speech features (stage-1 training sets it from ``data.audio``; the window length is odd, so the two never
    collide)."""
    mel = MelConfig()
    if (config.audio_len, config.audio_dim) == (mel.frames_per_window, mel.n_mels):
        return MEL
    if config.audio_len % 2 == 0:
        raise TalkfreqError(f"FREAK audio input {config.audio_len}x{config.audio_dim} is neither a mel window "
                            f"({mel.frames_per_window}x{mel.n_mels}) nor an odd speech-feature window")
    return AudioSpec("speech", context=(config.audio_len - 1) // 2, dim=config.audio_dim)


def dub_mask(config: FREAKConfig) -> MaskKind:
    """The mask a FREAK dubs with: its ``dub_mask`` (``half`` or the ``lower`` ellipse)."""
    return config.dub_mask
