"""Training losses: focal frequency (L_freq), LPIPS-VGG perceptual (L_percep), and the others' modules."""

from talkfreq.losses.codebook import (
    CodebookRegConfig,
    CodebookRegOutput,
    code_margin_loss,
    code_separation_loss,
    code_usage_loss,
    codebook_regularization,
    lipschitz_penalty,
    lipschitz_ratio,
    soft_code_usage_loss,
    sovqae_codebook_regularization,
)
from talkfreq.losses.frequency import FocalFrequencyLoss, focal_frequency_loss
from talkfreq.losses.perceptual import PerceptualLoss
from talkfreq.losses.sync import sync_preservation_loss
