"""Degradations: each kind changes the image, keeps shape and dtype, and is the identity at strength 0."""

from __future__ import annotations

import numpy as np
import pytest

from talkfreq.data.degradations import (
    FIXED_STRENGTHS,
    KINDS,
    Degradation,
    apply_kind,
    degrade,
    motion_kernel,
    stage1_output_pairs,
)
from talkfreq.errors import ConfigError

IDENTITY = {"gaussian_blur": 0.0, "motion_blur": 1.0, "downup": 1.0, "jpeg": 100.0, "noise": 0.0}


def face_like(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth gradient with sharp detail (edges, dots): every degradation has something to remove."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1).astype(np.float32) + 40
    img[size // 4 : size // 2, size // 3 : 2 * size // 3] = 220  # a sharp-edged block
    img += (rng.random((size, size, 1)) < 0.05) * 120.0  # "moles"
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_the_image_keeps_shape_and_is_identity_at_zero(kind):
    img = face_like()
    before = img.copy()
    out = apply_kind(img, kind=kind, strength=FIXED_STRENGTHS[kind], rng=np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() > 0.5
    assert np.array_equal(img, before)  # the input is never modified
    same = apply_kind(img, kind=kind, strength=IDENTITY[kind], rng=np.random.default_rng(1))
    assert np.array_equal(same, img)


def test_random_degrade_is_reproducible_and_strength_zero_is_identity():
    img = face_like()
    cfg = Degradation()
    a = degrade(img, cfg=cfg, rng=np.random.default_rng([3, 7]))
    b = degrade(img, cfg=cfg, rng=np.random.default_rng([3, 7]))
    c = degrade(img, cfg=cfg, rng=np.random.default_rng([3, 8]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == img.shape and a.dtype == np.uint8 and not np.array_equal(a, img)
    for seed in range(5):
        assert np.array_equal(degrade(img, cfg=Degradation(strength=0.0), rng=np.random.default_rng(seed)), img)
    # min_kinds forces at least one degradation even when prob is 0
    assert not np.array_equal(degrade(img, cfg=Degradation(prob=0.0, min_kinds=1), rng=np.random.default_rng(0)), img)


def test_scale_degrades_at_the_generators_size_and_comes_back_up():
    """``scale`` 0.5: what a 256 px refiner over a 128 px stage 1 sees. At strength 0 it is the plain area-down /
    bicubic-up round trip; the same draw at scale 1 degrades the crop itself, as before the option existed."""
    import cv2

    img = face_like(64)
    half = Degradation(scale=0.5)
    round_trip = cv2.resize(cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA), (64, 64),
                            interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(degrade(img, cfg=Degradation(scale=0.5, strength=0.0), rng=np.random.default_rng(0)),
                          round_trip)
    out = degrade(img, cfg=half, rng=np.random.default_rng(4))
    assert out.shape == img.shape and out.dtype == np.uint8
    # the crop's sharp detail does not survive the trip through half the size
    lap = lambda x: float(np.abs(cv2.Laplacian(x.astype(np.float32), cv2.CV_32F)).mean())  # noqa: E731
    assert lap(out) < lap(img) and lap(round_trip) < lap(img)
    with pytest.raises(ConfigError):
        Degradation(scale=0.0)
    with pytest.raises(ConfigError):
        Degradation(scale=1.5)


def test_motion_kernel_is_normalised_and_centred():
    for angle in (0.0, 30.0, 90.0):
        k = motion_kernel(7.0, angle)
        assert k.sum() == pytest.approx(1.0, abs=1e-5) and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        ys, xs = np.mgrid[0 : k.shape[0], 0 : k.shape[1]]
        c = (k.shape[0] - 1) / 2
        assert float((k * xs).sum()) == pytest.approx(c, abs=0.3) and float((k * ys).sum()) == pytest.approx(c, abs=0.3)


def test_config_validation():
    with pytest.raises(ConfigError):
        Degradation(kinds=["gaussian_blur", "sharpen"])
    with pytest.raises(ConfigError):
        Degradation(gaussian_sigma=[2.0, 1.0])
    assert set(FIXED_STRENGTHS) == set(KINDS)


def test_stage1_output_pairs_pairs_generator_output_with_the_same_clean_frames():
    frames = np.stack([face_like(32, seed=s) for s in range(5)])
    seen = []

    def generate(clean: np.ndarray, idx: np.ndarray) -> np.ndarray:
        seen.append(idx.tolist())
        return np.stack([apply_kind(np.repeat(np.repeat(c, 2, 0), 2, 1), kind="gaussian_blur", strength=2.0)
                         for c in clean])  # a "generator" that works at 2x the size and blurs

    pairs = list(stage1_output_pairs(generate, frames, indices=np.arange(10, 15), batch_size=2))
    assert seen == [[10, 11], [12, 13], [14]]
    degraded = np.concatenate([d for d, _ in pairs])
    clean = np.concatenate([c for _, c in pairs])
    assert degraded.shape == frames.shape and degraded.dtype == np.uint8
    assert np.array_equal(clean, frames) and not np.array_equal(degraded, frames)
