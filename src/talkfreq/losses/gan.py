"""Adversarial losses on raw discriminator logits (e.g. :class:`~talkfreq.models.discriminator.PatchDiscriminator`).

- ``hinge`` (Lim & Ye 2017; VQGAN/CodeFormer): D minimises ``mean(relu(1 - real)) + mean(relu(1 + fake))``,
  G minimises ``-mean(fake)``.
- ``bce`` — the non-saturating GAN of Goodfellow et al. (Wav2Lip's discriminator loss): D minimises
  ``BCE(real, 1) + BCE(fake, 0)``, G minimises ``BCE(fake, 1)``.

Both average over every patch logit. The D loss is halved (real and fake terms averaged) as in pix2pix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_LOSSES = ("hinge", "bce")


def _check(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"GAN loss must be one of {', '.join(GAN_LOSSES)}, got {kind!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *, kind: str = "hinge") -> torch.Tensor:
    """Scalar D loss from logits on real (any shape) and generated (any shape) images."""
    _check(kind)
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, *, kind: str = "hinge") -> torch.Tensor:
    """Scalar adversarial G loss from D's logits on generated images."""
    _check(kind)
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
