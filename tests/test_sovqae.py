"""SOVQAE (stage-2 refiner model): shapes, gradients, quantiser invariants, spectral norm, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from einops import rearrange

from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig

KINDS = [("vq", "euclidean"), ("vq", "cosine"), ("rvq", "euclidean"), ("rvq", "cosine"), ("fsq", "euclidean")]


def tiny(**kw) -> SOVQAEConfig:
    base = dict(image_size=32, base_channels=16, channel_mult=[1, 2], num_res_blocks=1, latent_dim=8, codebook_size=32)
    base.update(kw)
    return SOVQAEConfig(**base)


def images(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def initialised(cfg: SOVQAEConfig, seed: int = 0) -> SOVQAE:
    """A tiny model whose codebook went through k-means init (one training-mode forward), left in eval mode."""
    torch.manual_seed(seed)
    model = SOVQAE(config=cfg)
    model(images(4, seed=seed + 1))
    return model.eval()


def test_config_downsampling_and_validation():
    assert SOVQAEConfig().downsample_factor == 8 and SOVQAEConfig().latent_size == 32
    assert SOVQAEConfig(channel_mult=[1, 2, 4]).downsample_factor == 4
    assert SOVQAEConfig(channel_mult=[1, 1, 2, 2, 4]).downsample_factor == 16
    with pytest.raises(ConfigError, match="quantizer"):
        SOVQAEConfig(quantizer="lfq")
    with pytest.raises(ConfigError, match="divisible"):
        SOVQAEConfig(image_size=100)


@pytest.mark.parametrize("quantizer,kind", KINDS)
def test_shapes(quantizer, kind):
    torch.manual_seed(0)
    model = SOVQAE(config=tiny(quantizer=quantizer, codebook_kind=kind))
    out = model(images(2))
    assert out.x_hat.shape == (2, 3, 32, 32)
    assert out.z_e.shape == out.z_q.shape == (2, 8, 16, 16)
    expected_idx = (2, 16, 16, 2) if quantizer == "rvq" else (2, 16, 16)
    assert out.indices.shape == expected_idx and out.indices.dtype == torch.long
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < model.num_codes
    assert out.commit_loss.ndim == 0
    dq = 4 if quantizer == "fsq" else 8  # FSQ's grid lives in len(fsq_levels) dimensions
    assert model.codebook.shape == (model.num_codes, dq)
    assert model.quantizer_space(out.z_e).shape == (2, dq, 16, 16)


@pytest.mark.parametrize("quantizer,kind", [k for k in KINDS if k != ("rvq", "cosine")])
def test_gradients_reach_encoder_and_decoder(quantizer, kind):
    torch.manual_seed(0)
    model = SOVQAE(config=tiny(quantizer=quantizer, codebook_kind=kind))
    x = images(2)
    out = model(x)
    ((out.x_hat - x).abs().mean() + out.commit_loss).backward()
    for part in (model.encoder, model.decoder):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
    assert torch.isfinite(model.encoder.layers[0].weight.grad).all()


@pytest.fixture(scope="module")
def trained_kinds():
    """One k-means-initialised tiny model per quantiser kind, shared by the invariant tests (building is the cost)."""
    return {qk: initialised(tiny(quantizer=qk[0], codebook_kind=qk[1])) for qk in KINDS}


@pytest.mark.parametrize("quantizer,kind", KINDS)
def test_quantiser_invariants(trained_kinds, quantizer, kind):
    model = trained_kinds[(quantizer, kind)]
    with torch.no_grad():
        z_e = model.encode(images(3, seed=7))
        q = model.quantize(z_e)
        # decoding the indices (codebook lookup) equals decoding the quantised latents
        torch.testing.assert_close(model.decode_indices(q.indices), model.decode(q.z_q), atol=1e-5, rtol=1e-5)
        # the nearest code in quantizer_space is the quantiser's own choice: guards quantizer_space (which mirrors
        # FSQ's bound) and the codebook property against library changes
        z = rearrange(model.quantizer_space(z_e), "b d h w -> (b h w) d")
        nearest = torch.cdist(z, model.codebook.float()).argmin(dim=1)
    assert torch.equal(nearest, model.primary_indices(q.indices).flatten())


def test_without_skip_the_output_depends_on_the_input_only_through_the_indices():
    model = initialised(tiny())
    assert model.config.skip_connection is False
    x = images(2, seed=3)
    x2 = x + 1e-4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = model(x), model(x2)
        assert torch.equal(a.indices, b.indices), "precondition: a tiny perturbation keeps every code"
        assert not torch.equal(a.z_e, b.z_e)
        assert torch.equal(a.x_hat, b.x_hat)
        torch.testing.assert_close(a.x_hat, model.decode_indices(a.indices), atol=1e-5, rtol=1e-5)

    # the same check detects a skip path (once its zero-initialised projection has learnt something)
    skip = initialised(tiny(skip_connection=True))
    with torch.no_grad():
        torch.nn.init.normal_(skip.decoder.skip.weight)
        a, b = skip(x), skip(x2)
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.x_hat, b.x_hat)


def test_spectral_norm_bounds_the_encoder_convs():
    torch.manual_seed(0)
    model = SOVQAE(config=tiny(spectral_norm=True))
    for _ in range(5):  # each training-mode forward runs one power iteration
        model(images(2))
    first = model.encoder.layers[0]
    assert torch.nn.utils.parametrize.is_parametrized(first, "weight")
    sigma = torch.linalg.matrix_norm(first.weight.detach().reshape(first.weight.shape[0], -1), ord=2)
    assert abs(float(sigma) - 1.0) < 1e-2
    # data-dependent rescaling would void the bound: no GroupNorm and no attention in a spectral-norm encoder
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in model.encoder.modules())


def test_save_load_round_trip(tmp_path):
    model = initialised(tiny())
    folder = model.save_pretrained(tmp_path / "sovqae")
    loaded = SOVQAE.from_pretrained(folder).eval()
    assert loaded.config == model.config
    x = images(2, seed=5)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.x_hat, b.x_hat)
    assert torch.equal(model.codebook, loaded.codebook)


def test_load_rejects_missing_folder_and_mismatching_state(tmp_path):
    with pytest.raises(TalkfreqError, match="nowhere"):
        SOVQAE.from_pretrained(tmp_path / "nowhere")
    folder = initialised(tiny()).save_pretrained(tmp_path / "sovqae")
    cfg_file = folder / "config.json"
    meta = json.loads(cfg_file.read_text())
    meta["config"]["codebook_size"] = 64
    cfg_file.write_text(json.dumps(meta))
    with pytest.raises(TalkfreqError) as err:
        SOVQAE.from_pretrained(folder)
    msg = str(err.value)
    assert str(folder) in msg and "codebook" in msg and "\n" not in msg
    meta["config"].update(codebook_size=32, quantizer="lfq")  # rejected by the config's own validation
    cfg_file.write_text(json.dumps(meta))
    with pytest.raises(TalkfreqError, match="config.json.*quantizer"):
        SOVQAE.from_pretrained(folder)
