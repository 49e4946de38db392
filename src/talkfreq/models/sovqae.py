"""SOVQAE: the stage-2 "space-optimised" VQ autoencoder that refines blurry lip-synced face crops.

What is LaDTalk's (Yang et al., arXiv 2410.00990; only the abstract and first page are known):
- the idea that a VQ autoencoder trained only on one identity's *clean* frames is itself a denoiser for that
  identity: a degraded frame's latents move little (Lipschitz encoder), quantisation snaps them back onto the clean
  codes, and the decoder restores the high-frequency detail stored in the codes;
- the Noise Robustness Upper Bound (NRoUB): a latent shifted by less than half the gap to the next code keeps its
  code. ``talkfreq.metrics.robustness`` measures it; ``talkfreq.losses.codebook`` tries to enlarge it.

What is ours (the paper gives no architecture):
- the VQGAN-style encoder/decoder (GroupNorm + SiLU residual blocks, stride-2 downsampling, nearest upsampling,
  optional single-head attention at the lowest resolution), downsampling factor
  ``stem_downsample * 2 ** (len(channel_mult) - 1)``;
- ``stem_downsample = f > 1``: a space-to-depth (pixel-unshuffle) stem before the first conv and a pixel-shuffle
  after the last one, so the first level runs at S/f with f² sub-pixels per position. The cost-budgeted 256/512
  configs use it; a permutation of pixels does not change the encoder's Lipschitz bound;
- the quantisers, all from vector-quantize-pytorch: ``VectorQuantize`` (euclidean or cosine codebook, EMA updates,
  k-means init, the library's rotation-trick straight-through), ``FSQ`` and ``ResidualVQ`` for ablations;
- ``spectral_norm=True``: every encoder conv is wrapped in ``torch.nn.utils.parametrizations.spectral_norm`` *and*
  the encoder drops its GroupNorms and attention, because both rescale by data-dependent statistics and would void
  any Lipschitz bound. (Spectral norm bounds the norm of the reshaped ``(out, in*k*k)`` kernel, which bounds the
  conv operator by ``k``; residual adds double the bound. The finite-difference
  :func:`talkfreq.losses.codebook.lipschitz_ratio` measures the real constant.)
- no skip path around the quantiser by default: it would carry the blur of a degraded input straight to the
  decoder. ``skip_connection=True`` adds a zero-initialised 1x1 projection of ``z_e`` to the decoder input.

Images are ``(B, 3, H, W)`` in ``[-1, 1]``; the decoder output is linear (clamp for display).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ, ResidualVQ, VectorQuantize

from talkfreq.errors import ConfigError
from talkfreq.models._io import CONFIG_FILE, PretrainedMixin, build_config
from talkfreq.models.sovqae_restore import CodePredictor, FeatureFusion, frequency_split


@dataclass
class SOVQAEConfig:
    """Architecture and quantiser of a SOVQAE (every default is written here once)."""

    image_size: int = 256
    in_channels: int = 3
    base_channels: int = 64
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2, 4])  # factor 2**(len-1): 8
    num_res_blocks: int = 2
    attention: bool = True  # single-head self-attention at the lowest resolution
    latent_dim: int = 256  # codebook dimension D
    quantizer: str = "vq"  # vq | fsq | rvq
    codebook_size: int = 1024  # K (vq, rvq); FSQ's K is prod(fsq_levels)
    codebook_kind: str = "euclidean"  # euclidean | cosine (vq, rvq)
    ema_decay: float = 0.99
    kmeans_init: bool = True
    commitment_weight: float = 0.25
    dead_code_threshold: float = 0.0  # EMA cluster size below which a code is re-seeded from the batch (0: never)
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])
    rvq_num_quantizers: int = 2
    spectral_norm: bool = False  # Lipschitz control of the encoder (see module docstring)
    skip_connection: bool = False  # encoder->decoder path around the quantiser; off: it carries blur through
    stem_downsample: int = 1  # space-to-depth factor f of the stem and output (1: first level at full resolution)
    # restoration parts (models.sovqae_restore), used by restore() and forward(restore=True) only:
    code_predictor_layers: int = -1  # -1: nearest-code snapping; >= 0: CodePredictor with that many layers
    code_predictor_dim: int = 128
    code_temperature: float = 0.1  # of the nearest-code prior, on squared distances in units of the spread
    fusion: bool = False  # encoder features of the input fused into the decoder at every level
    fusion_weight: float = 1.0  # CodeFormer's w at inference (training uses 1)
    split_sigma: float = 0.0  # output = input's low frequencies below this Gaussian sigma (px) + refined high ones
    # the split outside training (None: split_sigma), like fusion_weight: a refiner trained at 1.5 px and used at
    # 0.75 px cost the demo FREAK 4.5-11 % of its LSE-C, one trained and used at 0.75 px 20 % (RESULTS.md "demo")
    inference_split_sigma: Optional[float] = None
    fidelity: float = 0.0  # 1: restore() returns its input unchanged (see frequency_split)

    def __post_init__(self) -> None:
        if self.quantizer not in ("vq", "fsq", "rvq"):
            raise ConfigError(f"sovqae.quantizer: {self.quantizer!r} is not one of vq, fsq, rvq")
        if self.codebook_kind not in ("euclidean", "cosine"):
            raise ConfigError(f"sovqae.codebook_kind: {self.codebook_kind!r} is not one of euclidean, cosine")
        if not self.channel_mult:
            raise ConfigError("sovqae.channel_mult: needs at least one level")
        if self.stem_downsample < 1:
            raise ConfigError(f"sovqae.stem_downsample: must be >= 1, got {self.stem_downsample}")
        if self.image_size % self.downsample_factor:
            raise ConfigError(
                f"sovqae.image_size: {self.image_size} is not divisible by the downsampling factor "
                f"{self.downsample_factor}"
            )
        if self.code_predictor_layers >= 0 and self.quantizer != "vq":
            raise ConfigError("sovqae.code_predictor_layers: the code predictor needs quantizer vq")
        if not 0.0 <= self.fidelity <= 1.0 or self.split_sigma < 0 or (self.inference_split_sigma or 0.0) < 0:
            raise ConfigError("sovqae.fidelity must be in [0, 1] and sovqae.split_sigma, inference_split_sigma >= 0")
        if self.quantizer == "fsq" and any(level < 3 for level in self.fsq_levels):
            raise ConfigError(f"sovqae.fsq_levels: every level must be >= 3, got {list(self.fsq_levels)}")

    @property
    def downsample_factor(self) -> int:
        return self.stem_downsample * 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_size(self) -> int:
        """Side ``h = w`` of the latent grid for ``image_size`` inputs."""
        return self.image_size // self.downsample_factor


@dataclass
class QuantizeOutput:
    """``z_q`` (B, D, h, w); ``indices`` (B, h, w), or (B, h, w, Q) for residual VQ; ``commit_loss`` scalar,
    already multiplied by ``commitment_weight`` (zero in eval mode and for FSQ)."""

    z_q: Tensor
    indices: Tensor
    commit_loss: Tensor


@dataclass
class SOVQAEOutput:
    """``x_hat`` (B, 3, H, W); ``z_e``/``z_q`` (B, D, h, w); ``indices`` as in :class:`QuantizeOutput`;
    ``logits`` (B, K, h, w) of the code predictor (restore mode with a predictor only)."""

    x_hat: Tensor
    z_e: Tensor
    z_q: Tensor
    indices: Tensor
    commit_loss: Tensor
    logits: Tensor | None = None


def _groups(channels: int) -> int:
    g = min(32, channels)
    while channels % g:
        g -= 1
    return g


def _norm(channels: int, enabled: bool) -> nn.Module:
    return nn.GroupNorm(_groups(channels), channels, eps=1e-6) if enabled else nn.Identity()


class _ConvFactory:
    """Builds Conv2d layers, spectral-normalised when asked (the encoder's Lipschitz control)."""

    def __init__(self, *, spectral: bool):
        self.spectral = spectral

    def __call__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Module:
        conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        return nn.utils.parametrizations.spectral_norm(conv) if self.spectral else conv


class ResBlock(nn.Module):
    """VQGAN residual block: (norm, SiLU, conv3x3) twice plus a 1x1 shortcut when channels change."""

    def __init__(self, cin: int, cout: int, *, conv: _ConvFactory, norm: bool = True):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, norm), conv(cin, cout, 3)
        self.norm2, self.conv2 = _norm(cout, norm), conv(cout, cout, 3)
        self.shortcut = conv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the h*w positions of a (B, C, h, w) map, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels, True)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three c) h w -> three b 1 (h w) c", three=3)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(rearrange(out, "b 1 (h w) c -> b c h w", h=x.shape[-2]))


class Encoder(nn.Module):
    """(B, in_channels, H, W) -> (B, latent_dim, H/f, W/f)."""

    def __init__(self, cfg: SOVQAEConfig):
        super().__init__()
        lipschitz = cfg.spectral_norm
        conv, norm = _ConvFactory(spectral=lipschitz), not lipschitz
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        f = cfg.stem_downsample
        # f=1 adds no layer, so the layer indices (state-dict keys) of files saved before the option still match
        layers: list[nn.Module] = ([nn.PixelUnshuffle(f)] if f > 1 else []) + [conv(cfg.in_channels * f * f, chs[0], 3)]
        cin = chs[0]
        self.level_ends: list[int] = []  # layer index after which level l's features are complete (fusion input)
        for level, ch in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cin, ch, conv=conv, norm=norm))
                cin = ch
            self.level_ends.append(len(layers) - 1)
            if level != len(chs) - 1:
                layers.append(conv(ch, ch, 3, stride=2))
        layers.append(ResBlock(cin, cin, conv=conv, norm=norm))
        if cfg.attention and not lipschitz:
            layers.append(Attention(cin))
        layers += [ResBlock(cin, cin, conv=conv, norm=norm), _norm(cin, norm), nn.SiLU(), conv(cin, cfg.latent_dim, 3)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(latents, per-level features [level 0 (highest resolution), ..., last level])."""
        feats = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.level_ends:
                feats.append(x)
        return x, feats


class Decoder(nn.Module):
    """(B, latent_dim, h, w) -> (B, in_channels, h*f, w*f); optional skip input of the same shape as ``z``."""

    def __init__(self, cfg: SOVQAEConfig):
        super().__init__()
        conv = _ConvFactory(spectral=False)
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        cin = chs[-1]
        self.conv_in = conv(cfg.latent_dim, cin, 3)
        self.skip: nn.Module | None = None
        if cfg.skip_connection:
            self.skip = nn.Conv2d(cfg.latent_dim, cin, 1)
            # zero-init: training starts from the pure-code decoder and only learns to use the skip if it helps
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        layers: list[nn.Module] = [ResBlock(cin, cin, conv=conv)]
        if cfg.attention:
            layers.append(Attention(cin))
        layers.append(ResBlock(cin, cin, conv=conv))
        self.level_ends: dict[int, int] = {}  # layer index -> level whose resolution and channels it ends on
        for level in reversed(range(len(chs))):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cin, chs[level], conv=conv))
                cin = chs[level]
            self.level_ends[len(layers) - 1] = level
            if level != 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, cin, 3)]
        f = cfg.stem_downsample
        layers += [_norm(cin, True), nn.SiLU(), conv(cin, cfg.in_channels * f * f, 3)]
        if f > 1:
            layers.append(nn.PixelShuffle(f))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor, *, skip: Tensor | None = None, fuse=None) -> Tensor:
        """``fuse(level, h) -> h`` is called where each level's blocks end (the restoration fusion)."""
        h = self.conv_in(z)
        if self.skip is not None and skip is not None:
            h = h + self.skip(skip)
        if fuse is None:
            return self.layers(h)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i in self.level_ends:
                h = fuse(self.level_ends[i], h)
        return h


def _build_quantizer(cfg: SOVQAEConfig) -> nn.Module:
    vq_kwargs = dict(
        decay=cfg.ema_decay,
        kmeans_init=cfg.kmeans_init,
        commitment_weight=cfg.commitment_weight,
        use_cosine_sim=cfg.codebook_kind == "cosine",
        threshold_ema_dead_code=cfg.dead_code_threshold,
    )
    if cfg.quantizer == "vq":
        return VectorQuantize(dim=cfg.latent_dim, codebook_size=cfg.codebook_size, **vq_kwargs)
    if cfg.quantizer == "rvq":
        return ResidualVQ(
            dim=cfg.latent_dim, num_quantizers=cfg.rvq_num_quantizers, codebook_size=cfg.codebook_size, **vq_kwargs
        )
    return FSQ(levels=list(cfg.fsq_levels), dim=cfg.latent_dim)


class SOVQAE(PretrainedMixin, nn.Module):
    """Encoder -> quantiser -> decoder. ``SOVQAE(config=SOVQAEConfig(...))``, ``SOVQAE(config={...})`` (a dict or
    DictConfig, validated like FREAK's) or ``SOVQAE(**config_fields)``.

    ``save_pretrained(dir)`` / ``SOVQAE.from_pretrained(dir)`` (the shared ``models._io`` folder format: config.json +
    model.pt, EMA codebook state included) load strictly; any mismatch is a one-line TalkfreqError.
    """

    config_class = SOVQAEConfig

    def __init__(self, *, config: SOVQAEConfig | Mapping[str, Any] | None = None, **kwargs):
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("pass either config= or config fields as keywords, not both")
        self.config = build_config(SOVQAEConfig, config if config is not None else kwargs, source="SOVQAE config")
        cfg = self.config
        self.encoder = Encoder(cfg)
        self.quantizer = _build_quantizer(cfg)
        self.decoder = Decoder(cfg)
        # created only when configured, so the state dicts of files saved without them are unchanged
        if cfg.code_predictor_layers >= 0:
            self.code_predictor = CodePredictor(latent_dim=cfg.latent_dim, num_codes=cfg.codebook_size,
                                                positions=cfg.latent_size ** 2, dim=cfg.code_predictor_dim,
                                                layers=cfg.code_predictor_layers, temperature=cfg.code_temperature)
            # the clean latents' spread, set by training: the predictor's prior in scale-free units
            self.register_buffer("latent_scale", torch.ones(()))
        if cfg.fusion:
            self.fusion = nn.ModuleList(FeatureFusion(channels=cfg.base_channels * m) for m in cfg.channel_mult)

    # -- properties used by the regulariser and the NRoUB diagnostics --------------------------------------------

    @property
    def is_cosine(self) -> bool:
        return self.config.quantizer != "fsq" and self.config.codebook_kind == "cosine"

    @property
    def num_codes(self) -> int:
        """K: codes of the (first-stage) codebook; ``prod(fsq_levels)`` for FSQ."""
        return int(self.quantizer.codebook_size)

    @property
    def codebook(self) -> Tensor:
        """(K, Dq) code vectors in the space where the quantiser takes its nearest neighbour.

        vq: the (EMA-updated, buffer) codebook, (K, D); unit vectors for a cosine codebook. rvq: the first stage's
        codebook (the coarse code; later stages quantise residuals that depend on it). fsq: there is no learned
        codebook; this is FSQ's implicit grid, (prod(levels), len(levels)), in its normalised bounded space, where
        rounding each coordinate *is* the euclidean nearest grid point. Pair it with :meth:`quantizer_space`.
        """
        q = self.quantizer
        if isinstance(q, VectorQuantize):
            return q.codebook
        if isinstance(q, ResidualVQ):
            return q.codebooks[0]
        return q.implicit_codebook

    def quantizer_space(self, z_e: Tensor) -> Tensor:
        """(B, D, h, w) encoder latents -> (B, Dq, h, w): what the quantiser compares with :attr:`codebook`.

        Identity for a euclidean codebook, L2-normalised over channels for a cosine one, FSQ's projected and
        tanh-bounded coordinates (before rounding, divided by half the level width) for FSQ.
        """
        if isinstance(self.quantizer, FSQ):
            fsq = self.quantizer
            z = fsq.project_in(rearrange(z_e, "b d h w -> b h w d")).float()
            # mirrors FSQ.bound (vector-quantize-pytorch 1.x) without the rounding; test_sovqae checks that the
            # nearest grid point of this equals FSQ's own indices, so a library change cannot drift silently
            levels = fsq._levels.to(z)
            half_l = (levels - 1) * (1 + 1e-3) / 2
            offset = torch.where(fsq._levels % 2 == 0, 0.5, 0.0).to(z)
            bounded = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset
            return rearrange(bounded / (fsq._levels // 2).to(z), "b h w d -> b d h w")
        if self.is_cosine:
            return F.normalize(z_e, dim=1, eps=1e-6)
        return z_e

    def primary_indices(self, indices: Tensor) -> Tensor:
        """(B, h, w) indices of :attr:`codebook` (the first stage's for residual VQ)."""
        return indices[..., 0] if indices.ndim == 4 else indices

    # -- the autoencoder ------------------------------------------------------------------------------------------

    def encode(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> pre-quantisation latents ``z_e`` (B, D, H/f, W/f)."""
        return self.encoder(x)

    def quantize(self, z_e: Tensor) -> QuantizeOutput:
        """(B, D, h, w) -> :class:`QuantizeOutput`. In training mode a VQ codebook takes an EMA step."""
        h = z_e.shape[-2]
        seq = rearrange(z_e, "b d h w -> b (h w) d")
        if isinstance(self.quantizer, FSQ):
            z_q, idx = self.quantizer(seq)
            commit = z_e.new_zeros(())
        else:
            z_q, idx, commit = self.quantizer(seq)
            commit = commit.sum()  # ResidualVQ returns one loss per stage
        idx = rearrange(idx.long(), "b (h w) ... -> b h w ...", h=h)
        return QuantizeOutput(z_q=rearrange(z_q, "b (h w) d -> b d h w", h=h), indices=idx, commit_loss=commit)

    def decode(self, z_q: Tensor, *, skip: Tensor | None = None) -> Tensor:
        """(B, D, h, w) quantised latents -> (B, 3, h*f, w*f). ``skip`` (= ``z_e``) is used only when configured."""
        return self.decoder(z_q, skip=skip)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """(B, h, w) or (B, h, w, Q) code indices -> (B, 3, H, W), through the quantiser's codebook lookup."""
        h = indices.shape[1]
        flat = rearrange(indices, "b h w ... -> b (h w) ...")
        if isinstance(self.quantizer, FSQ):
            codes = self.quantizer.indices_to_codes(flat)
        else:
            codes = self.quantizer.get_output_from_indices(flat)
        return self.decode(rearrange(codes, "b (h w) d -> b d h w", h=h))

    def forward(self, x: Tensor, *, restore: bool = False) -> SOVQAEOutput:
        """(B, 3, H, W) -> :class:`SOVQAEOutput`: the autoencoder (clean training: nearest codes, no fusion, no
        split), or with ``restore=True`` the restoration path of :meth:`restore`."""
        if restore:
            return self._restore(x)
        z_e = self.encode(x)
        q = self.quantize(z_e)
        x_hat = self.decode(q.z_q, skip=z_e if self.config.skip_connection else None)
        return SOVQAEOutput(x_hat=x_hat, z_e=z_e, z_q=q.z_q, indices=q.indices, commit_loss=q.commit_loss)

    @property
    def restores(self) -> bool:
        """Whether :meth:`restore` differs from the plain autoencoder (a predictor, fusion or an output split)."""
        c = self.config
        split = c.split_sigma > 0 or bool(c.inference_split_sigma)
        return c.code_predictor_layers >= 0 or c.fusion or split or c.fidelity > 0

    def code_logits(self, z_e: Tensor) -> Tensor:
        """(B, D, h, w) latents -> (B, K, h, w) logits of the code predictor (``code_predictor_layers >= 0``)."""
        return self.code_predictor(self.quantizer_space(z_e), codebook=self.codebook, scale=self.latent_scale)

    @property
    def inference_split(self) -> float:
        """The output split (px) used outside training: ``inference_split_sigma``, else ``split_sigma``."""
        c = self.config
        return c.split_sigma if c.inference_split_sigma is None else c.inference_split_sigma

    def _restore(self, x: Tensor, *, latent_filter=None, fidelity: float | None = None,
                 split_sigma: float | None = None) -> SOVQAEOutput:
        cfg = self.config
        if cfg.fusion:
            z_e, feats = self.encoder.features(x)
        else:
            z_e, feats = self.encode(x), []
        z_e = z_e if latent_filter is None else latent_filter(z_e)
        logits = None
        if cfg.code_predictor_layers >= 0:
            with torch.autocast(x.device.type, enabled=False):
                logits = self.code_logits(z_e.float())
                idx = logits.argmax(dim=1)
                z_q = rearrange(self.quantizer.get_output_from_indices(rearrange(idx, "b h w -> b (h w)")),
                                "b (h w) d -> b d h w", h=idx.shape[1])
            q = QuantizeOutput(z_q=z_q, indices=idx, commit_loss=z_e.new_zeros(()))
        else:
            with torch.autocast(x.device.type, enabled=False):
                q = self.quantize(z_e.float())
        z_q = q.z_q.to(z_e.dtype)
        fuse = None
        if cfg.fusion:
            weight = 1.0 if self.training else cfg.fusion_weight
            fuse = lambda level, h: self.fusion[level](h, feats[level], weight=weight)  # noqa: E731
        r = self.decoder(z_q, skip=z_e if cfg.skip_connection else None, fuse=fuse)
        f = cfg.fidelity if fidelity is None else fidelity
        if split_sigma is not None:
            sigma = split_sigma
        else:
            sigma = cfg.split_sigma if self.training else self.inference_split
        if sigma > 0 or f > 0:
            r = frequency_split(x.to(r.dtype), r, sigma=sigma, fidelity=f)
        return SOVQAEOutput(x_hat=r, z_e=z_e, z_q=z_q, indices=q.indices, commit_loss=q.commit_loss, logits=logits)

    def restore(self, x: Tensor, *, latent_filter=None, fidelity: float | None = None,
                split_sigma: float | None = None) -> tuple[Tensor, Tensor]:
        """Refine degraded (B, 3, H, W) crops -> (restored (B, 3, H, W), primary code indices (B, h, w)).

        ``latent_filter(z_e) -> z_e`` runs between encoder and code choice (the pipeline's temporal smoothing);
        ``fidelity`` overrides the config's (1 returns ``x`` unchanged), ``split_sigma`` the output split of the
        current mode (training or not). The code choice runs in float32.
        """
        out = self._restore(x, latent_filter=latent_filter, fidelity=fidelity, split_sigma=split_sigma)
        return out.x_hat, self.primary_indices(out.indices)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, map_location: str | torch.device = "cpu") -> SOVQAE:
        """Rebuild a model saved by ``save_pretrained``; any mismatch is a one-line TalkfreqError naming the file."""
        try:
            return super().from_pretrained(directory, map_location=map_location)
        except ConfigError as exc:  # raised by SOVQAEConfig.__post_init__, which does not know the file
            raise ConfigError(f"{Path(directory) / CONFIG_FILE}: {exc}") from exc
