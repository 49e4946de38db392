"""Model loading at inference (stage 1 and the refiner, without importing Lightning) and stage-1 inputs, built
exactly as training builds them.

Training (:class:`talkfreq.data.datasets.Stage1Dataset` on a prepared clip) feeds the generator:

- images as ``frames_to_tensor`` (uint8 RGB -> (3,S,S) in [-1, 1]);
- ``mask`` from ``make_mask("half" | "lower" | "full")`` and ``masked = apply_mask(target, mask)`` (mid-grey fill; a
  published Wav2Lip's config asks for black, :func:`talkfreq.models.wav2lip.mask_fill_value`);
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

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import torch

from talkfreq.audio.features import (SpeechFeatureConfig, feature_window, load_speech_model, read_speech_record,
                                     speech_features)
from talkfreq.audio.mel import MelConfig, mel_window, melspectrogram
from talkfreq.data.frames import frames_to_tensor
from talkfreq.errors import TalkfreqError
from talkfreq.models._io import peek_model_class
from talkfreq.models.freak import FREAK, MaskKind, apply_mask, make_mask
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig
from talkfreq.models.wav2lip import Wav2Lip, mask_fill_value, wav2lip_input

Stage1Model = Union[FREAK, Wav2Lip]
INFERENCE_FILE = "inference.json"  # beside a saved refiner: the defaults `infer`/`refine` read (latent_smoothing)
STAGE1_CLASSES = {"FREAK": FREAK, "Wav2Lip": Wav2Lip}


@dataclass(frozen=True)
class AudioSpec:
    """What audio window a stage-1 model takes: ``mel`` (1, 80, 16), or ``speech`` (2·context+1, dim)."""

    kind: Literal["mel", "speech"]
    context: int = 0
    dim: int = 0


def audio_spec(model: Stage1Model) -> AudioSpec:
    """The audio input of ``model``, from its config (see the module docstring)."""
    if isinstance(model, Wav2Lip):
        return AudioSpec("mel")
    cfg, mel = model.config, MelConfig()
    if (cfg.audio_len, cfg.audio_dim) == (mel.frames_per_window, mel.n_mels):
        return AudioSpec("mel")
    if cfg.audio_len % 2 == 0:
        raise TalkfreqError(f"FREAK audio input {cfg.audio_len}x{cfg.audio_dim} is neither a mel window "
                            f"({mel.frames_per_window}x{mel.n_mels}) nor an odd speech-feature window")
    return AudioSpec("speech", context=(cfg.audio_len - 1) // 2, dim=cfg.audio_dim)


def _refiner_hint(path: Path) -> TalkfreqError:
    return TalkfreqError(f"{path}: is a refiner (SOVQAE) checkpoint, not a stage-1 model; pass it as --refiner "
                         f"and give a FREAK or Wav2Lip run's model/ folder as --stage1")


def load_stage1(path: str | Path, *, map_location: str | torch.device = "cpu") -> Stage1Model:
    """A FREAK or Wav2Lip generator from a ``model/`` folder (``save_pretrained``), a stage-1 Lightning ``.ckpt``, or
    Wav2Lip's published ``wav2lip.pth`` / ``wav2lip_gan.pth`` (:mod:`talkfreq.models.published`).

    A refiner or any other model is a one-line TalkfreqError that says which it is.
    """
    p = Path(path)
    if not p.exists():
        raise TalkfreqError(f"{p}: stage-1 model not found (expected a run's model/ folder or a .ckpt file)")
    if p.is_dir():
        cls = peek_model_class(p)
        if cls == "SOVQAE":
            raise _refiner_hint(p)
        if cls not in STAGE1_CLASSES:
            raise TalkfreqError(f"{p}: holds a {cls} model, not a stage-1 generator (FREAK or Wav2Lip)")
        return STAGE1_CLASSES[cls].from_pretrained(p, map_location=map_location)
    from talkfreq.models._io import load_prefixed_state, read_lightning_checkpoint

    ckpt, hp = read_lightning_checkpoint(p, map_location=map_location)
    if hp.get("talkfreq_kind") == "refiner":
        raise _refiner_hint(p)
    kind = hp.get("model")
    if not hp:  # not a Lightning checkpoint: a published file?
        from talkfreq.models.published import build_published, published_kind, state_of

        state = state_of(ckpt)
        published = published_kind(state) if state is not None else None
        if published == "wav2lip":
            return build_published(published, state, source=str(p))
        if published is not None:
            raise TalkfreqError(f"{p}: holds a published {published} network, not a stage-1 generator")
    if kind not in ("freak", "wav2lip"):
        raise TalkfreqError(f"{p}: not a stage-1 checkpoint (no freak/wav2lip model in its config)")
    model = FREAK(config=hp.get(kind)) if kind == "freak" else Wav2Lip(config=hp.get(kind))
    return load_prefixed_state(model, ckpt, prefix="generator.", source=str(p))


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
    """The mask ``model`` dubs with: a FREAK's ``dub_mask`` (``half`` or ``lower``), Wav2Lip's half."""
    return model.config.dub_mask if isinstance(model, FREAK) else "half"


def stage1_forward(model: Stage1Model, *, target: torch.Tensor, reference: torch.Tensor, audio: torch.Tensor,
                   mask: MaskKind) -> torch.Tensor:
    """:func:`stage1_batch` on tensors already on the model's device: ``target``, ``reference`` (B, 3, S, S) in
    [-1, 1] (any memory format), ``audio`` (B, *window) -> (B, 3, S, S) (in the autocast dtype, if any)."""
    m = make_mask(mask, batch=len(target), size=target.shape[-1], device=target.device)
    masked = apply_mask(target, m, fill=mask_fill_value(model))
    # the dispatch of Stage1Module.generate (training), on the bare generator
    if isinstance(model, Wav2Lip):
        return model(wav2lip_input(masked, reference), audio)
    return model(reference, masked, audio, m)


def load_refiner(path: str | Path, *, map_location: str | torch.device = "cpu") -> SOVQAE:
    """A trained :class:`SOVQAE` from a ``model/`` folder (``save_pretrained``) or a refiner Lightning ``.ckpt``.

    Anything else (a stage-1 model folder or checkpoint, a missing path) is a one-line TalkfreqError.
    """
    p = Path(path)
    if not p.exists():
        raise TalkfreqError(f"{p}: refiner not found (expected a model folder or a .ckpt file)")
    if p.is_dir():
        return SOVQAE.from_pretrained(p, map_location=map_location)
    from talkfreq.models._io import build_config, load_prefixed_state, read_lightning_checkpoint

    ckpt, hp = read_lightning_checkpoint(p, map_location=map_location)
    if hp.get("talkfreq_kind") != "refiner":
        kind = "another kind of model"
        if isinstance(hp.get("model"), str):
            kind = f"a stage-1 {hp['model']} generator"  # stage 1's config names its model kind at the top
        raise TalkfreqError(f"{p}: not a refiner checkpoint (it holds {kind}); pass a refiner run's model/ "
                            f"folder or checkpoints/*.ckpt")
    sov = build_config(SOVQAEConfig, hp["config"].get("sovqae"), source=f"{p} (sovqae config)")
    return load_prefixed_state(SOVQAE(config=sov), ckpt, prefix="model.", source=str(p))


def with_fidelity(model: SOVQAE, fidelity: float | None) -> SOVQAE:
    """``model`` with its output fidelity (:func:`talkfreq.models.sovqae_restore.frequency_split`) set to
    ``fidelity``; None keeps the model's own."""
    if fidelity is not None:
        model.config = replace(model.config, fidelity=float(fidelity))
    return model


def inference_defaults(path: str | Path) -> dict[str, Any]:
    """The ``inference.json`` saved beside a model folder (or the config in a .ckpt): ``{"latent_smoothing": a}``."""
    p = Path(path)
    f = p / INFERENCE_FILE
    if p.is_dir() and f.is_file():
        try:
            return dict(json.loads(f.read_text()))
        except (OSError, ValueError):
            return {}
    return {}
