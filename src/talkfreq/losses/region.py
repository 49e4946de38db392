"""L1 with extra weight on the mouth: where a lip-sync generator or a refiner must be right, and what a uniform L1
over the whole crop under-weights (the mouth box is about 12 % of a face crop). Ours; neither paper weights regions."""

from __future__ import annotations

from torch import Tensor

from talkfreq.face.config import MOUTH_REGION, fraction_box


def mouth_crop(x: Tensor) -> Tensor:
    """(B, C, S, S) crops -> (B, C, h, w): the :data:`~talkfreq.face.config.MOUTH_REGION` box (a view)."""
    x0, y0, x1, y1 = fraction_box(MOUTH_REGION, x.shape[-1])
    return x[..., y0:y1, x0:x1]


GAN_REGIONS = ("face", "mouth")  # what a discriminator sees (loss.gan_region of both training modules)


def gan_view(x: Tensor, *, region: str) -> Tensor:
    """What a discriminator judges of (B, C, S, S) crops: all of them (``face``) or the mouth box (``mouth``: a tenth
    of the pixels, so the adversarial term costs little and spends itself where stage 1 blurs)."""
    if region not in GAN_REGIONS:
        raise ValueError(f"region must be one of {', '.join(GAN_REGIONS)}, got {region!r}")
    return mouth_crop(x) if region == "mouth" else x


def mouth_mask(x: Tensor) -> Tensor:
    """(1, 1, S, S) mask, 1 inside :data:`~talkfreq.face.config.MOUTH_REGION` of (B, C, S, S) crops ``x``."""
    s = x.shape[-1]
    m = x.new_zeros((1, 1, s, s))
    mouth_crop(m).fill_(1.0)
    return m


def mouth_weighted_l1(pred: Tensor, target: Tensor, *, mouth_weight: float) -> Tensor:
    """Mean of |pred - target| weighted 1 outside the mouth box and ``1 + mouth_weight`` inside, normalised by the
    mean weight so that a uniform error gives the plain L1 (``mouth_weight`` 0 is exactly ``F.l1_loss``)."""
    err = (pred - target).abs()
    if not mouth_weight:
        return err.mean()
    weight = 1.0 + mouth_weight * mouth_mask(target)
    return (err * weight).mean() / weight.mean()


__all__ = ["GAN_REGIONS", "gan_view", "mouth_crop", "mouth_mask", "mouth_weighted_l1"]
