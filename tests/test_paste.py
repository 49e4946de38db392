"""Paste-back: exact outside the mask, near-lossless round trip, no seam at the mask's edge."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkfreq.face import crop_face, crop_to_frame_affine
from talkfreq.pipeline.paste import EDGE_RAMP_PX, REGIONS, feather_mask, paste_back


def textured_frame(h: int = 200, w: int = 260, seed: int = 0) -> np.ndarray:
    """A gradient plus homogeneous smooth texture (the same statistics everywhere, so gradients compare)."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
    tex *= 12.0 / tex.std()
    yy, xx = np.mgrid[0:h, 0:w]
    img = 70 + 0.3 * xx[..., None] + 0.2 * yy[..., None] + tex
    return np.clip(img, 0, 255).round().astype(np.uint8)


def warped_mask(mask: np.ndarray, box, frame_shape) -> np.ndarray:
    m = crop_to_frame_affine(box, size=mask.shape[0])
    return cv2.warpAffine(mask, m, (frame_shape[1], frame_shape[0]), flags=cv2.INTER_LINEAR, borderValue=0.0)


@pytest.mark.parametrize("region", ["face", "lower"])
def test_mask_is_zero_on_the_border_and_feathered(region):
    m = feather_mask(96, region=region, feather=0.03)
    assert m.shape == (96, 96) and m.dtype == np.float32
    assert m[0].max() == 0 and m[-1].max() == 0 and m[:, 0].max() == 0 and m[:, -1].max() == 0
    assert m.min() >= 0 and m.max() == pytest.approx(1.0, abs=1e-4)
    assert ((m > 0.01) & (m < 0.99)).mean() > 0.05  # a real soft edge
    hard = feather_mask(96, region=region, feather=0.0)
    assert set(np.unique(hard).tolist()) <= {0.0, 1.0}
    assert feather_mask(96, region="lower").sum() < feather_mask(96, region="face").sum()
    with pytest.raises(ValueError):
        feather_mask(96, region="eyes")


@pytest.mark.parametrize("size", [64, 128, 256])
def test_inside_mask_keeps_the_feather_within_the_ellipse_and_stops_at_its_edge(size):
    """``inside=True``: the symmetric mask inside the ellipse, exactly 0 beyond EDGE_RAMP_PX outside it."""
    sym, ins = feather_mask(size, region="lower"), feather_mask(size, region="lower", inside=True)
    cx, cy, ax, ay = (v * size for v in REGIONS["lower"])
    c = np.arange(size) + 0.5
    rho = np.sqrt(((c[None, :] - cx) / ax) ** 2 + ((c[:, None] - cy) / ay) ** 2)
    assert np.array_equal(ins[rho <= 1], sym[rho <= 1])
    assert (ins <= sym + 1e-7).all()
    far = rho > 1 + 1.01 * EDGE_RAMP_PX / min(ax, ay)  # further out than the ramp, wherever on the ellipse
    assert ins[far].max() == 0.0 and sym[far].max() > 0.1  # the symmetric feather reached out there
    assert ins.max() == pytest.approx(1.0, abs=1e-4) and not ins.flags.writeable


@pytest.mark.parametrize("box", [[60.3, 30.7, 190.1, 160.5], [-30.0, 120.0, 90.0, 240.0]], ids=["inside", "edge"])
def test_outside_the_warped_mask_the_frame_is_bit_exact(box):
    frame = textured_frame()
    crop = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)  # wildly different content
    mask = feather_mask(128, region="face")
    out = paste_back(frame, crop, box, mask=mask)
    outside = warped_mask(mask, box, frame.shape) == 0
    assert outside.mean() > 0.3
    assert np.array_equal(out[outside], frame[outside])
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frame)


def test_pasting_the_unmodified_crop_back_changes_less_than_one_grey_level():
    frame = textured_frame()
    box = [60.3, 30.7, 190.1, 160.5]
    for size in (96, 256):  # shrinking (prefiltered) and enlarging crops
        mask = feather_mask(size, region="face")
        out = paste_back(frame, crop_face(frame, box, size=size), box, mask=mask)
        inside = warped_mask(mask, box, frame.shape) > 0
        diff = np.abs(out.astype(np.float64) - frame.astype(np.float64))[inside]
        assert diff.mean() < 1.0, (size, diff.mean())


def _band_vs_inside(feather: float) -> tuple[float, float]:
    """Mean gradient magnitude of the output on the mask's edge band and inside the pasted region, pasting a crop
    10 grey levels brighter than the frame (a refiner that shifts the tone). The box is pixel-aligned at the crop's
    scale, so the inside is not smoothed by resampling and both regions carry the same texture."""
    frame = textured_frame()
    box = [60, 30, 188, 158]
    crop = np.clip(crop_face(frame, box, size=128).astype(int) + 10, 0, 255).astype(np.uint8)
    mask = feather_mask(128, region="face", feather=feather)
    out = paste_back(frame, crop, box, mask=mask).astype(np.float32)
    grey = out.mean(axis=2)
    mag = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(grey, cv2.CV_32F, 0, 1) / 8)
    a = warped_mask(mask, box, frame.shape)
    support = cv2.dilate((a > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    band = support & (a < 0.99)  # the boundary of the pasted region, soft edge included
    inside = cv2.erode((a >= 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return float(mag[band].mean()), float(mag[inside].mean())


def test_no_seam_feathered_edge_is_not_sharper_than_the_inside():
    """Measured: band 3.44 vs inside 3.36 grey levels/px (the texture itself differs by ~1.5% between the two
    regions); a hard mask gives 4.97. Asserted: within 5% of the inside, and the hard-mask control is not."""
    band, inside = _band_vs_inside(0.03)
    assert band <= 1.05 * inside, (band, inside)
    hard_band, hard_inside = _band_vs_inside(0.0)
    assert hard_band > 1.3 * hard_inside, (hard_band, hard_inside)


def test_the_generator_the_paste_and_the_seam_measure_agree_on_where_the_lower_ellipse_is():
    from talkfreq.metrics.seam import boundary_band
    from talkfreq.models.masks import make_mask

    for size in (64, 97, 128):
        hidden = make_mask("lower", batch=1, size=size)[0, 0].numpy() > 0
        assert np.array_equal(hidden, feather_mask(size, region="lower", feather=0.0) > 0.5)  # generated = pasted
        # the seam band holds the whole edge: every hidden pixel next to a visible one
        inner = np.logical_and.reduce([np.roll(hidden, s, a) for s in (1, -1) for a in (0, 1)])
        edge = hidden & ~inner
        assert edge.any() and boundary_band(size, region="lower", width=0.1)[edge].all()
