"""The restoration parts of the SOVQAE: code predictor, feature fusion, frequency split (models.sovqae_restore)."""

from __future__ import annotations

import pytest
import torch

from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig
from talkfreq.models.sovqae_restore import frequency_split, gaussian_lowpass

TINY = dict(image_size=32, base_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention=False, latent_dim=8,
            codebook_size=16, kmeans_init=False)


def _model(**kw) -> SOVQAE:
    torch.manual_seed(0)
    return SOVQAE(config=SOVQAEConfig(**{**TINY, **kw})).eval()


def test_untrained_predictor_and_fusion_equal_nearest_code_autoencoder():
    plain, full = _model(), _model(code_predictor_layers=1, code_predictor_dim=16, fusion=True)
    full.load_state_dict({**full.state_dict(), **plain.state_dict()})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = plain(x)
        out = full(x, restore=True)
    # zero-initialised head: argmax of the prior alone is the nearest code; zero-initialised fusion: identity
    assert torch.equal(out.indices, ref.indices)
    torch.testing.assert_close(out.x_hat, ref.x_hat)
    assert out.logits.shape == (2, 16, 16, 16)


def test_fidelity_one_returns_the_input_unchanged():
    m = _model(fusion=True, split_sigma=2.0, fidelity=1.0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y, idx = m.restore(x)
        y_half, _ = m.restore(x, fidelity=0.5)
    assert torch.equal(y, x)
    assert idx.shape == (3, 16, 16)
    assert not torch.equal(y_half, x)


def test_inference_split_applies_outside_training_only(tmp_path):
    m = _model(fusion=True, split_sigma=1.5, inference_split_sigma=0.75)
    at = {s: _model(fusion=True, split_sigma=s) for s in (0.75, 1.5)}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(m.restore(x)[0], at[0.75].restore(x)[0])  # eval: the inference split
        m.train(), at[1.5].train()  # train: the split it learns with (same weights, so the same output)
        torch.testing.assert_close(m(x, restore=True).x_hat, at[1.5](x, restore=True).x_hat)
    m.eval().save_pretrained(tmp_path / "m")
    assert SOVQAE.from_pretrained(tmp_path / "m").config.inference_split_sigma == 0.75
    with pytest.raises(Exception, match="inference_split_sigma"):
        SOVQAEConfig(**{**TINY, "inference_split_sigma": -1.0})


def test_frequency_split_keeps_the_inputs_low_frequencies():
    torch.manual_seed(1)
    x = gaussian_lowpass(torch.rand(2, 3, 64, 64), sigma=3.0)  # smooth "stage-1" face
    detail = torch.randn(2, 3, 64, 64) * 0.1
    refined = x * 0.5 + detail  # wrong low frequencies, new detail
    y = frequency_split(x, refined, sigma=2.0)
    # DC from the input (reflect padding moves it by a few 1e-4)
    torch.testing.assert_close(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-3, rtol=0)
    low_err = (gaussian_lowpass(y, sigma=4.0) - gaussian_lowpass(x, sigma=4.0)).abs().mean()
    assert low_err < 0.1 * (gaussian_lowpass(refined, sigma=4.0) - gaussian_lowpass(x, sigma=4.0)).abs().mean()
    assert (y - x).abs().mean() > 0.5 * detail.abs().mean()  # the high frequencies come from the refiner
    assert torch.equal(frequency_split(x, refined, sigma=0.0), refined)


def test_restoration_model_round_trip_and_gradients(tmp_path):
    m = _model(code_predictor_layers=1, code_predictor_dim=16, fusion=True, split_sigma=1.0).train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = m(x, restore=True)
    (out.x_hat.abs().mean() + out.logits.logsumexp(1).mean()).backward()
    assert all(p.grad is not None for p in m.code_predictor.parameters())
    assert m.fusion[0].shift[-1].weight.grad.abs().sum() > 0
    m.eval()
    m.save_pretrained(tmp_path / "m")
    back = SOVQAE.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(back.restore(x)[0], m.restore(x)[0])


def test_code_predictor_needs_a_vq_codebook():
    from talkfreq.errors import ConfigError

    with pytest.raises(ConfigError, match="code predictor"):
        SOVQAEConfig(**{**TINY, "quantizer": "fsq", "code_predictor_layers": 1})


def test_refine_cli_fidelity_one_writes_the_input_faces_back(tmp_path, synth_dir):
    """``talkfreq refine --fidelity 1`` pastes the very crops it cut: the refiner is bypassed exactly."""
    import numpy as np

    from talkfreq.cli import main
    from talkfreq.io import VideoReader

    video = sorted(synth_dir.rglob("*.mp4"))[0]
    m = _model(fusion=True, split_sigma=1.0)
    m.save_pretrained(tmp_path / "ref")
    args = ["refine", str(video), "--refiner", str(tmp_path / "ref"), "--quiet", "crf=0"]
    assert main([*args, "--out", str(tmp_path / "f1.mp4"), "--fidelity", "1"]) == 0
    assert main([*args, "--out", str(tmp_path / "f0.mp4"), "--fidelity", "0"]) == 0
    a, b, c = (np.stack(list(VideoReader(p)))[:10].astype(float) for p in (video, tmp_path / "f1.mp4",
                                                                              tmp_path / "f0.mp4"))
    # the crop -> paste round trip (resampling, YUV rounding) is all that separates fidelity 1 from the input
    assert np.abs(b - a).mean() < 0.5 * np.abs(c - a).mean()
