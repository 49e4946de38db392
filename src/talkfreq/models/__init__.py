"""Pure nn.Module models (no training code), their save/load format, and the registry of kinds
(:mod:`talkfreq.models.registry`). The classes are imported on first use."""

from talkfreq._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("SOVQAE", "QuantizeOutput", "SOVQAEConfig", "SOVQAEOutput"), "talkfreq.models.sovqae"),
    **dict.fromkeys(("PatchDiscriminator", "PatchDiscriminatorConfig"), "talkfreq.models.discriminator"),
    **dict.fromkeys(("FREAK", "FREAKConfig"), "talkfreq.models.freak"),
    **dict.fromkeys(("apply_mask", "make_mask"), "talkfreq.models.masks"),
    **dict.fromkeys(("SyncNet", "SyncNetConfig", "SyncNetOutput", "expert_loss", "sync_probability"),
                    "talkfreq.models.syncnet"),
    **dict.fromkeys(("SyncNetV2", "SyncNetV2Config"), "talkfreq.models.syncnet_v2"),
    **dict.fromkeys(("Wav2Lip", "Wav2LipConfig"), "talkfreq.models.wav2lip"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
