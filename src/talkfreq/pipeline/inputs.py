"""Stage-1 inputs at inference, built exactly as training builds them (the networks are loaded by
:mod:`talkfreq.models.loading`).

Training (:class:`talkfreq.data.datasets.Stage1Dataset` on a prepared clip) feeds the generator:

- images as ``frames_to_tensor`` (uint8 RGB -> (3,S,S) in [-1, 1]);
- ``mask`` from ``make_mask("half" | "lower" | "full")`` and ``masked = apply_mask(target, mask)`` (mid-grey fill; a
  generator that wants another fill, a published Wav2Lip's black, refills in its registry ``forward``);
- audio: the Wav2Lip mel of the 16 kHz audio fitted to N / fps seconds, windowed per frame by ``mel_window`` into
  (1, 80, 16) — for FREAK and Wav2Lip alike — or the HuBERT-style rows of ``speech_features`` (one per video frame),
  windowed by ``feature_window`` into (2·context+1, D).

The same functions are used here on whole-audio arrays instead of a prepared clip's memmaps (``mel_tensor`` of the
datasets module takes a clip; :func:`audio_window` is its array form).

Which audio a checkpoint wants is read from its own config: FREAK's ``(audio_len, audio_dim)`` is (16, 80) for mel
windows and (2·context+1, D) for speech features (``resolve_audio`` in stage-1 training sets it; the window length is
odd, so the two never collide); Wav2Lip always takes mel. *Which* speech encoder made the features is recorded by
``prepare`` per clip and written by stage-1 ``fit`` into ``model/speech.json``; :func:`resolve_speech` reads it, so
only a ``.ckpt`` (or a folder without the record) needs ``speech.model`` from the user. The encoder's hidden size is
checked against ``audio_dim`` either way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from talkfreq.audio.features import (
    SpeechFeatureConfig,
    feature_window,
    load_speech_model,
    read_speech_record,
    speech_features,
)
from talkfreq.audio.mel import MelConfig, mel_window, melspectrogram
from talkfreq.data.frames import frames_to_tensor
from talkfreq.errors import TalkfreqError
from talkfreq.models.loading import Stage1Model
from talkfreq.models.masks import MaskKind, apply_mask, make_mask
from talkfreq.models.registry import AudioSpec, kind_of


def audio_spec(model: Stage1Model) -> AudioSpec:
    """The audio input of ``model``, from its config (see the module docstring)."""
    return kind_of(model).audio_spec(model.config)


def resolve_speech(stage1: object, speech: SpeechFeatureConfig) -> SpeechFeatureConfig:
    """``speech`` with the model and layer recorded beside a stage-1 ``model/`` folder filled in, unless the user
    gave ``speech.model`` (the user's choice wins). ``stage1`` may be a path or an already loaded model."""
    if speech.model or not isinstance(stage1, (str, Path)) or not Path(stage1).is_dir():
        return speech
    rec = read_speech_record(stage1)
    return speech if rec is None else replace(speech, model=rec["model"], layer=rec["layer"])


def check_speech_config(spec: AudioSpec, speech: SpeechFeatureConfig, *, source: str) -> None:
    """One-line error when a speech-feature model is used without ``speech.model`` (given or recorded)."""
    if spec.kind == "speech" and not speech.model:  # InferConfig's default is "" = not given
        raise TalkfreqError(f"{source}: this FREAK takes speech features ({2 * spec.context + 1}x{spec.dim}); "
                            f"pass --speech-model with the HuBERT/wav2vec2 model it was trained with")


def audio_track(wav: np.ndarray, *, n_frames: int, fps: float, spec: AudioSpec,
                speech: SpeechFeatureConfig | None = None) -> np.ndarray:
    """The whole driving audio as model features: mel (80, T) or speech rows (n_frames, D).

    ``wav`` (L,) float32 mono at ``MelConfig().sample_rate`` (16 kHz), fitted by the caller to ``n_frames / fps``
    seconds, as prepare does. Both arrays are small next to the video (mel: 25 KB/s; HuBERT-large rows: 100 KB/s).
    """
    mel_cfg = MelConfig()
    if spec.kind == "mel":
        return melspectrogram(wav, cfg=mel_cfg)
    assert speech is not None and speech.model
    model, extractor = load_speech_model(speech.model, device=speech.device)
    hidden = int(model.config.hidden_size)
    if hidden != spec.dim:
        raise TalkfreqError(f"speech model {speech.model} gives {hidden}-dim features but the stage-1 model takes "
                            f"{spec.dim}; pass the speech model it was trained with")
    return speech_features(wav, model=model, feature_extractor=extractor, n_frames=n_frames, fps=fps,
                           layer=speech.layer, sample_rate=mel_cfg.sample_rate, chunk_seconds=speech.chunk_seconds)


def audio_window(track: np.ndarray, k: int, *, fps: float, spec: AudioSpec) -> np.ndarray:
    """Frame ``k``'s window of :func:`audio_track`: (1, 80, 16) mel, as ``mel_tensor``, or (2·context+1, D)."""
    if spec.kind == "mel":
        return mel_window(track, k, fps=fps, cfg=MelConfig())[None].astype(np.float32, copy=False)
    return feature_window(track, k, context=spec.context).astype(np.float32, copy=False)


def stage1_batch(model: Stage1Model, *, targets: np.ndarray, references: np.ndarray, audio: np.ndarray,
                 mask: MaskKind) -> torch.Tensor:
    """Run the generator on a batch; returns (B, 3, S, S) in [-1, 1] on the model's device.

    ``targets``, ``references``: (B, S, S, 3) uint8 crops at the model's ``image_size``; ``audio``: (B, *window)
    from :func:`audio_window`; ``mask``: ``half`` (dubbing) or ``full`` (one-shot).
    """
    device = next(model.parameters()).device
    s = int(model.config.image_size)
    target = frames_to_tensor(targets, size=s).to(device)
    reference = frames_to_tensor(references, size=s).to(device)
    return stage1_forward(model, target=target, reference=reference, mask=mask,
                          audio=torch.from_numpy(np.ascontiguousarray(audio)).to(device))


def dub_mask(model: Stage1Model) -> MaskKind:
    """The mask ``model`` dubs with (a FREAK's ``dub_mask``, ``half`` or ``lower``; Wav2Lip's half)."""
    return kind_of(model).mask_for_dubbing(model.config)


def stage1_forward(model: Stage1Model, *, target: torch.Tensor, reference: torch.Tensor, audio: torch.Tensor,
                   mask: MaskKind) -> torch.Tensor:
    """:func:`stage1_batch` on tensors already on the model's device: ``target``, ``reference`` (B, 3, S, S) in
    [-1, 1] (any memory format), ``audio`` (B, *window) -> (B, 3, S, S) (in the autocast dtype, if any)."""
    m = make_mask(mask, batch=len(target), size=target.shape[-1], device=target.device)
    # the generator's own call, as training makes it (Stage1Module.generate)
    return kind_of(model).generate(model, reference=reference, masked=apply_mask(target, m), audio=audio, mask=m)
