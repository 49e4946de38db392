"""Audio front ends: Wav2Lip's mel spectrogram and HuBERT-style speech features, both on the video timeline."""

from talkfreq.audio.features import SpeechFeatureConfig, feature_window, load_speech_model, speech_features
from talkfreq.audio.mel import (
    MelConfig,
    mel_center_frequencies,
    mel_filterbank,
    mel_index,
    mel_window,
    melspectrogram,
)

__all__ = [
    "MelConfig",
    "SpeechFeatureConfig",
    "feature_window",
    "load_speech_model",
    "mel_center_frequencies",
    "mel_filterbank",
    "mel_index",
    "mel_window",
    "melspectrogram",
    "speech_features",
]
