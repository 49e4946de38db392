"""Pure nn.Module models (no training code)."""

from talkfreq.models.sovqae import SOVQAE, QuantizeOutput, SOVQAEConfig, SOVQAEOutput
from talkfreq.models.discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from talkfreq.models.freak import FREAK, FREAKConfig, apply_mask, make_mask
from talkfreq.models.syncnet import SyncNet, SyncNetConfig, SyncNetOutput, expert_loss, sync_probability
from talkfreq.models.syncnet_v2 import SyncNetV2, SyncNetV2Config
from talkfreq.models.wav2lip import Wav2Lip, Wav2LipConfig
