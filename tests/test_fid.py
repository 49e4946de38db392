"""FID as pytorch-fid: the Frechet distance against scipy's sqrtm formula, running statistics, and the Inception port
loading a file in pytorch-fid's key layout (random weights; the real file is the user's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkfreq.errors import TalkfreqError
from talkfreq.metrics.fid import FeatureStats, fid_from_stats, frechet_distance, inception_features
from talkfreq.metrics.fidelity import fid_score
from talkfreq.models.inception_fid import FIDInceptionV3, load_fid_inception

torch.set_num_threads(1)

# pytorch-fid's fid_inception_v3(): torchvision's Inception3(num_classes=1008, aux_logits=False) with FIDInception
# blocks; a few of its state-dict keys and shapes, and its parameter count
INCEPTION_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7dbl_5.conv.weight": (192, 128, 1, 7),
    "Mixed_6e.branch7x7_3.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
INCEPTION_PARAMS = 23_850_960


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The formula, written out with scipy's sqrtm."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_equals_the_scipy_formula():
    rng = np.random.default_rng(0)
    d = 32
    a = rng.normal(0.0, 1.0, (500, d)) @ rng.normal(0, 0.5, (d, d)) + 3.0
    b = rng.normal(0.3, 1.2, (400, d)) @ rng.normal(0, 0.5, (d, d)) + 3.1
    ref = _reference_fid(a, b)
    assert ref > 1.0
    assert fid_score(a, b) == pytest.approx(ref, abs=1e-4)
    assert fid_score(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(ref, rel=1e-4)
    # same Gaussian: 0 up to sqrtm's round-off
    assert abs(fid_score(a, a)) < 1e-6
    # in batches, and pooled from two accumulators: the same statistics as all rows at once
    sa = FeatureStats(d)
    for i in range(0, 500, 64):
        sa.add(a[i:i + 64])
    np.testing.assert_allclose(sa.mean, a.mean(0), atol=1e-12)
    np.testing.assert_allclose(sa.cov, np.cov(a, rowvar=False), atol=1e-10)
    pooled = FeatureStats(d).add(b[:150]) + FeatureStats(d).add(b[150:] + 0.0)
    np.testing.assert_allclose(pooled.cov, np.cov(b, rowvar=False), atol=1e-10)
    assert fid_from_stats(sa, pooled) == pytest.approx(ref, abs=1e-4)
    assert frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)) == \
        pytest.approx(ref, abs=1e-4)


def test_fewer_samples_than_dimensions():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 64)), rng.normal(1.0, 2.0, size=(12, 64))  # singular covariances
    assert fid_score(a, b) == pytest.approx(_reference_fid(a, b), abs=1e-4)
    with pytest.raises(ValueError, match="not finite"):
        fid_score(np.full((3, 4), np.nan), b[:, :4])


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.05, 0.05)
            m.running_var.uniform_(0.5, 1.5)
    # as the published file: a bare state dict without num_batches_tracked (the port predates it)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path, model.eval()


@pytest.mark.heavy
def test_inception_port_has_pytorch_fids_layout_and_loads_it(inception_file):
    path, model = inception_file
    state = FIDInceptionV3().state_dict()
    assert {k: tuple(state[k].shape) for k in INCEPTION_KEYS} == INCEPTION_KEYS
    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == INCEPTION_PARAMS
    loaded = load_fid_inception(path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    f = inception_features(loaded, x, batch_size=1)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and (f >= 0).all()  # after a ReLU and average pool
    with torch.no_grad():
        torch.testing.assert_close(f, model(x))


def test_inception_bad_file_one_line(tmp_path):
    bad = tmp_path / "inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(TalkfreqError, match="inception.pth .*weights do not match FIDInceptionV3"):
        load_fid_inception(bad)


@pytest.mark.heavy
def test_video_scorer_fid_column(inception_file):
    from talkfreq.report.scoring import VideoScorer

    _, model = inception_file
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
    kw = dict(size=48, mouth=(10, 30, 38, 44), psnr_cap_db=100.0, inception=model)
    ref, cand = VideoScorer("real", **kw), VideoScorer("fake", **kw)
    none = VideoScorer("x", **{**kw, "inception": None})
    idx = np.arange(3)
    ref.add(real, real, index=idx)
    cand.add(fake, real, index=idx)
    none.add(fake, real, index=idx)
    fr = inception_features(model, torch.from_numpy(real).permute(0, 3, 1, 2).float() / 255)
    ff = inception_features(model, torch.from_numpy(fake).permute(0, 3, 1, 2).float() / 255)
    # the accumulated statistics are those of the crops' features (one 2048-d distance is slow on a CPU: one only)
    np.testing.assert_allclose(cand.fid_stats.mean, ff.double().mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(ref.fid_stats.cov, np.cov(fr.double().numpy(), rowvar=False), atol=1e-8)
    assert cand.values(ref, hf_radius=0.5)["fid"] == pytest.approx(
        frechet_distance(fr.double().mean(0), np.cov(fr.double().numpy(), rowvar=False),
                         ff.double().mean(0), np.cov(ff.double().numpy(), rowvar=False)), rel=1e-6)
    assert none.values(ref, hf_radius=0.5)["fid"] is None  # "unavailable" without weights
