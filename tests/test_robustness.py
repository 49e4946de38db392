"""NRoUB diagnostics: margins, shifts, flips, and the no-flip-inside-the-bound theorem (random data and a model)."""

from __future__ import annotations

import pytest
import torch

from talkfreq.metrics.robustness import (
    code_flip_rate,
    code_margins,
    inside_bound_fraction,
    latent_shift,
    nearest_codes,
    robustness_report,
    temporal_flip_rate,
)
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig


def test_margin_is_half_the_gap_between_the_two_nearest_codes():
    codebook = torch.tensor([[1.0], [-3.0], [5.0]])
    z = torch.zeros(1, 1, 1, 1)  # distances 1, 3, 5
    assert float(code_margins(z, codebook)) == pytest.approx(1.0)
    assert int(nearest_codes(z, codebook)) == 0
    # cosine: measured on unit vectors, whatever the lengths
    cb = torch.tensor([[2.0, 0.0], [0.0, 7.0]])
    zc = torch.tensor([3.0, 1.0]).reshape(1, 2, 1, 1)
    u = torch.nn.functional.normalize(torch.tensor([3.0, 1.0]), dim=0)
    expected = (torch.dist(u, torch.tensor([0.0, 1.0])) - torch.dist(u, torch.tensor([1.0, 0.0]))) / 2
    assert float(code_margins(zc, cb, cosine=True)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("cosine", [False, True])
def test_no_code_flips_where_the_shift_is_inside_the_margin_random_data(cosine):
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(32, 8, generator=g, dtype=torch.float64)
    z = torch.randn(16, 8, 6, 6, generator=g, dtype=torch.float64)
    idx_clean, margin = nearest_codes(z, codebook, cosine=cosine), code_margins(z, codebook, cosine=cosine)
    inside_total = flips_total = 0
    for sigma in (0.01, 0.05, 0.2, 1.0):  # from mostly inside the bound to mostly outside
        noisy = z + sigma * torch.randn(z.shape, generator=g, dtype=torch.float64)
        shift = latent_shift(z, noisy, cosine=cosine)
        flipped = nearest_codes(noisy, codebook, cosine=cosine) != idx_clean
        inside = shift < margin
        assert not bool((flipped & inside).any())
        inside_total += int(inside.sum())
        flips_total += int(flipped.sum())
    assert inside_total > 100 and flips_total > 100  # both regimes were actually exercised


def test_flip_rates_and_bound_fraction():
    a = torch.tensor([[[0, 1], [2, 3]]])
    assert code_flip_rate(a, a.clone()) == 0.0
    assert code_flip_rate(a, torch.tensor([[[0, 1], [2, 0]]])) == 0.25
    rvq = torch.stack([a, a], dim=-1)  # (B, h, w, Q): a position flips if any stage does
    rvq2 = rvq.clone()
    rvq2[0, 0, 0, 1] = 9
    assert code_flip_rate(rvq, rvq2) == 0.25
    clip = torch.stack([torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2)]).long()  # (T, h, w)
    assert temporal_flip_rate(clip) == 0.5
    assert temporal_flip_rate(clip[:1]) == 0.0
    assert inside_bound_fraction(torch.tensor([0.1, 0.5, 1.0, 2.0]), torch.tensor([0.2, 0.5, 1.5, 1.0])) == 0.5


def _model(**kw) -> SOVQAE:
    torch.manual_seed(0)
    cfg = SOVQAEConfig(
        image_size=32, base_channels=16, channel_mult=[1, 2], num_res_blocks=1, latent_dim=8, codebook_size=32, **kw
    )
    model = SOVQAE(config=cfg)
    model(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)  # k-means init
    return model


@pytest.mark.parametrize(
    "kw", [{}, {"codebook_kind": "cosine"}, {"quantizer": "rvq"}, {"quantizer": "fsq"}], ids=["vq", "cos", "rvq", "fsq"]
)
def test_report_through_a_model_with_gaussian_noise(kw):
    model = _model(**kw)
    model.train()
    codebook_before = model.codebook.clone()
    g = torch.Generator().manual_seed(2)
    clean = torch.rand(6, 3, 32, 32, generator=g) * 2 - 1
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(-1, 1)
    rep = robustness_report(model, clean, noisy, consecutive=True, batch_size=4)
    assert model.training and torch.equal(model.codebook, codebook_before)  # eval inside: no EMA step, mode restored
    assert rep.flips_inside_bound == 0  # the theorem, with the quantiser's own indices
    assert rep.positions == 6 * 16 * 16 == rep.margins.numel() == rep.shifts.numel()
    for name in ("flip_rate", "inside_bound_fraction", "flip_rate_outside_bound", "temporal_flip_rate"):
        assert 0.0 <= getattr(rep, name) <= 1.0, name
    assert 0.0 < rep.flip_rate and rep.shift_mean > 0 and rep.margin_mean > 0
    assert set(rep.as_dict()) >= {"flip_rate", "inside_bound_fraction", "relative_margin_mean"}

    same = robustness_report(model, clean, clean.clone())
    assert same.flip_rate == 0.0 and same.shift_mean == 0.0 and same.flips_inside_bound == 0
    assert same.inside_bound_fraction == float((same.margins > 0).float().mean())
