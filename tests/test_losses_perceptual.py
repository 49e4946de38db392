"""Focal frequency loss against a direct formula; LPIPS-VGG without torchvision, checked against torchmetrics' code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkfreq.errors import TalkfreqError
from talkfreq.losses.frequency import FocalFrequencyLoss, focal_frequency_loss
from talkfreq.losses.perceptual import PerceptualLoss
from talkfreq.models.lpips import LPIPS, VGG16_ENV, VGG16Features, load_vgg16, lpips_heads_path, perceptual_available


# ----------------------------------------------------------------------------------------------- focal frequency
def _ffl_direct(
    pred: np.ndarray, target: np.ndarray, *, alpha: float, patch: int, log_matrix: bool, batch_matrix: bool
) -> float:
    """The FFL definition written element by element: explicit DFT sums, loops over images/patches/channels."""
    n, c, h, w = pred.shape
    ph, pw = h // patch, w // patch
    dists, weights = [], []
    for i in range(n):
        for py in range(patch):
            for px in range(patch):
                for ch in range(c):
                    d = np.zeros((ph, pw))
                    for u in range(ph):
                        for v in range(pw):
                            acc = 0j
                            for y in range(ph):
                                for x in range(pw):
                                    yy, xx = py * ph + y, px * pw + x
                                    diff = pred[i, ch, yy, xx] - target[i, ch, yy, xx]
                                    acc += diff * np.exp(-2j * np.pi * (u * y / ph + v * x / pw))
                            d[u, v] = abs(acc / np.sqrt(ph * pw)) ** 2  # ortho DFT; FFT is linear
                    wgt = np.sqrt(d) ** alpha
                    if log_matrix:
                        wgt = np.log(wgt + 1.0)
                    dists.append(d)
                    weights.append(wgt)
    weights = np.stack(weights)
    if batch_matrix:
        weights = weights / weights.max()
    else:
        weights = weights / weights.max(axis=(1, 2), keepdims=True)
    return float(np.mean(weights * np.stack(dists)))


@pytest.mark.parametrize(
    "alpha,patch,log_matrix,batch_matrix",
    [(1.0, 1, False, False), (2.0, 2, False, False), (1.0, 1, True, False), (0.5, 2, False, True)],
)
def test_ffl_matches_direct_formula(alpha, patch, log_matrix, batch_matrix):
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 2, 4, 4, generator=g, dtype=torch.float64)
    target = torch.rand(2, 2, 4, 4, generator=g, dtype=torch.float64)
    opts = dict(alpha=alpha, log_matrix=log_matrix, batch_matrix=batch_matrix)
    got = focal_frequency_loss(pred, target, patch_factor=patch, **opts)
    want = _ffl_direct(pred.numpy(), target.numpy(), patch=patch, **opts)
    assert got.item() == pytest.approx(want, rel=1e-9)


def test_ffl_zero_for_identical_and_gradient_to_pred_only():
    x = torch.rand(2, 3, 8, 8)
    assert focal_frequency_loss(x, x.clone()).item() == 0.0
    pred = torch.rand(2, 3, 8, 8, requires_grad=True)
    target = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = FocalFrequencyLoss(alpha=1.0)(pred, target.detach())
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    # The weight is detached: the gradient equals that of w * |dF|^2 with w held constant, which for alpha=0
    # (w == 1 everywhere it is non-zero) is the plain mean squared spectral distance = mean squared pixel error.
    p2 = pred.detach().clone().requires_grad_(True)
    focal_frequency_loss(p2, target.detach(), alpha=0.0).backward()
    p3 = pred.detach().clone().requires_grad_(True)
    ((p3 - target.detach()) ** 2).mean().backward()
    torch.testing.assert_close(p2.grad, p3.grad, rtol=1e-4, atol=1e-7)


def test_ffl_rejects_bad_patch_factor():
    with pytest.raises(ValueError):
        focal_frequency_loss(torch.rand(1, 1, 6, 6), torch.rand(1, 1, 6, 6), patch_factor=4)


# ----------------------------------------------------------------------------------------------- VGG16 / LPIPS
@pytest.fixture(scope="module")
def vgg_random() -> VGG16Features:
    torch.manual_seed(0)
    return VGG16Features().eval()


@pytest.fixture(scope="module")
def vgg_file(vgg_random, tmp_path_factory):
    """A torchvision-format vgg16 state dict (features.* plus classifier.* keys) with random weights."""
    state = {k: v.clone() for k, v in vgg_random.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 8)
    state["classifier.0.bias"] = torch.zeros(4)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-test.pth"
    torch.save(state, path)
    return path


def test_vgg16_layout_matches_torchvision_indexing(vgg_random):
    keys = list(vgg_random.state_dict())
    conv_idx = sorted({int(k.split(".")[1]) for k in keys})
    assert conv_idx == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert vgg_random.state_dict()["features.28.weight"].shape == (512, 512, 3, 3)
    taps = vgg_random(torch.rand(1, 3, 32, 32))
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512, 512]
    assert [t.shape[-1] for t in taps] == [32, 16, 8, 4, 2]


def test_load_vgg16_roundtrip(vgg_random, vgg_file):
    loaded = load_vgg16(vgg_file)
    for k, v in vgg_random.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(loaded(x), vgg_random(x)):
            assert torch.equal(a, b)


def test_load_vgg16_rejects_wrong_keys(vgg_random, tmp_path):
    state = dict(vgg_random.state_dict())
    state["extra.weight"] = torch.zeros(1)
    del state["features.0.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(TalkfreqError, match="features.0.bias"):
        load_vgg16(bad)


def test_missing_weights_error_says_how_to_supply(tmp_path, monkeypatch):
    monkeypatch.delenv(VGG16_ENV, raising=False)
    missing = tmp_path / "nope.pth"
    for arg in (missing, None):
        with pytest.raises(TalkfreqError) as exc:
            load_vgg16(arg)
        msg = str(exc.value)
        assert "\n" not in msg
        assert "vgg16-397923af.pth" in msg and "--vgg16" in msg and VGG16_ENV in msg
    assert not perceptual_available(missing)
    assert not perceptual_available(None)
    with pytest.raises(TalkfreqError):
        PerceptualLoss(missing)


def test_perceptual_available_via_env(vgg_file, monkeypatch):
    monkeypatch.setenv(VGG16_ENV, str(vgg_file))
    assert perceptual_available()
    assert perceptual_available(vgg_file)


def test_lpips_heads_ship_with_torchmetrics():
    p = lpips_heads_path()
    assert p.is_file() and p.name == "vgg.pth"
    heads = torch.load(p, map_location="cpu", weights_only=True)
    shapes = [tuple(heads[f"lin{k}.model.1.weight"].shape) for k in range(5)]
    assert shapes == [(1, 64, 1, 1), (1, 128, 1, 1), (1, 256, 1, 1), (1, 512, 1, 1), (1, 512, 1, 1)]
    assert all((heads[f"lin{k}.model.1.weight"] >= 0).all() for k in range(5))  # LPIPS heads are non-negative


@pytest.fixture(scope="module")
def lpips_model(vgg_random) -> LPIPS:
    return LPIPS(vgg_random, normalize=True)


def test_lpips_basic_properties(lpips_model):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        assert torch.equal(lpips_model(x, x), torch.zeros(2))
        d_xy, d_yx = lpips_model(x, y), lpips_model(y, x)
        assert (d_xy > 0).all()
        torch.testing.assert_close(d_xy, d_yx)  # symmetric: squared differences of per-image features
        # [0, 1] with normalize=True equals [-1, 1] with normalize=False.
        torch.testing.assert_close(lpips_model(2 * x - 1, 2 * y - 1, normalize=False), d_xy)
    lpips_model.train()
    assert not lpips_model.training


def test_lpips_matches_torchmetrics_code_with_our_backbone(vgg_random, lpips_model, monkeypatch):
    """torchmetrics' _LPIPS builds its VGG from torchvision; hand it our features stack instead and compare."""
    tl = pytest.importorskip("torchmetrics.functional.image.lpips")
    monkeypatch.setattr(tl, "_get_tv_model_features", lambda net, pretrained=False: vgg_random.features)
    ref = tl._LPIPS(pretrained=True, net="vgg", pnet_rand=False)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        want = ref(x, y, normalize=True).flatten()
        got = lpips_model(x, y)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_perceptual_loss_gradients_reach_pred_only(lpips_model):
    loss_fn = PerceptualLoss(lpips=lpips_model)
    pred = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = loss_fn(pred, torch.rand(1, 3, 32, 32))
    loss.backward()
    assert loss.item() > 0 and pred.grad is not None and torch.isfinite(pred.grad).all()
    assert all(p.grad is None for p in loss_fn.parameters())
