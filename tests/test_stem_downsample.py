"""The space-to-depth stem option (``stem_downsample``) of FREAK and SOVQAE, on tiny configs: shapes, gradients,
save/load, FREAK's identity-at-init modulators, and that the default (1) keeps the old layer layout."""

from __future__ import annotations

import pytest
import torch

from talkfreq.errors import ConfigError
from talkfreq.models.freak import FREAK, FREAKConfig
from talkfreq.models.masks import apply_mask, make_mask
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig

S, B = 32, 2


def freak_cfg(**kw) -> FREAKConfig:
    base = dict(image_size=S, base_channels=8, channel_mult=[2, 2, 4], num_scales=3, stem_downsample=2,
                audio_hidden=16, audio_embed_dim=16)
    return FREAKConfig(**(base | kw))


def freak_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ref, tgt = (torch.rand(B, 3, S, S, generator=g) * 2 - 1 for _ in range(2))
    mask = make_mask("half", batch=B, size=S)
    return ref, apply_mask(tgt, mask), torch.randn(B, 16, 80, generator=g), mask


def sovqae_cfg(**kw) -> SOVQAEConfig:
    base = dict(image_size=S, base_channels=16, channel_mult=[1, 2], num_res_blocks=1, latent_dim=8,
                codebook_size=32, stem_downsample=2)
    return SOVQAEConfig(**(base | kw))


def test_freak_stem_shapes_gradients_and_identity_at_init():
    torch.manual_seed(0)
    model = FREAK(config=freak_cfg())
    ref, masked, audio, mask = freak_inputs()
    y = model(ref, masked, audio, mask)
    assert y.shape == (B, 3, S, S) and y.abs().max() <= 1.0
    with torch.no_grad():  # every VEFM/AVFM starts as the identity: the audio cannot matter yet
        assert torch.equal(model.eval()(ref, masked, audio, mask), model(ref, masked, -audio, mask))
    model.train()
    target = torch.rand(B, 3, S, S) * 2 - 1
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):  # after one step the zero-initialised heads pass gradients upstream too
        opt.zero_grad()
        (model(ref, masked, audio, mask) - target).abs().mean().backward()
        opt.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead


def test_freak_stem_save_load_and_validation(tmp_path):
    model = FREAK(config=freak_cfg()).eval()
    loaded = FREAK.from_pretrained(model.save_pretrained(tmp_path / "m")).eval()
    assert loaded.config.stem_downsample == 2
    x = freak_inputs(1)
    with torch.no_grad():
        assert torch.equal(model(*x), loaded(*x))
    with pytest.raises(ConfigError, match="stem_downsample"):
        FREAK(config=freak_cfg(image_size=36))  # not divisible by 2 * 2^2
    with pytest.raises(ConfigError, match="stem_downsample"):
        FREAK(config=freak_cfg(stem_downsample=0))


def test_default_stem_keeps_the_old_layer_names():
    """stem_downsample=1 must not move a parameter: checkpoints saved before the option still load strictly."""
    freak = FREAK(config=freak_cfg(stem_downsample=1)).state_dict()
    assert "ref_encoder.stem.weight" in freak and freak["out_conv.weight"].shape[0] == 3
    sov = SOVQAE(config=sovqae_cfg(stem_downsample=1)).state_dict()
    assert sov["encoder.layers.0.weight"].shape[1] == 3


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_sovqae_stem_shapes_gradients_and_save_load(tmp_path, spectral_norm):
    torch.manual_seed(0)
    cfg = sovqae_cfg(spectral_norm=spectral_norm)
    assert cfg.downsample_factor == 4 and cfg.latent_size == S // 4
    model = SOVQAE(config=cfg)
    x = torch.rand(B, 3, S, S) * 2 - 1
    out = model(x)
    assert out.x_hat.shape == x.shape and out.z_e.shape == (B, 8, S // 4, S // 4)
    ((out.x_hat - x).abs().mean() + out.commit_loss).backward()
    for part in (model.encoder, model.decoder):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())
    model.eval()
    loaded = SOVQAE.from_pretrained(model.save_pretrained(tmp_path / "m")).eval()
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.x_hat, b.x_hat)
    with pytest.raises(ConfigError, match="stem_downsample"):
        sovqae_cfg(stem_downsample=0)
