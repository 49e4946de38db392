"""Self-supervised speech features (HuBERT, wav2vec2, WavLM hidden states) on the video timeline.

FREAK conditions on HuBERT features with a context window (the paper ablates its length). These encoders share a
convolutional front end with a total stride of 320 samples (20 ms, 50 Hz at 16 kHz) followed by a transformer; we
take one hidden state (``layer``) and resample it to one row per video frame.

Models are read only from a local directory or the local Hugging Face cache; nothing is ever downloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkfreq.errors import TalkfreqError

# Context added on each side of a chunk and trimmed afterwards (ours). 1 s, or more when the positional
# convolution is wider (HuBERT's 128-tap kernel reaches 64 frames = 1.28 s), so that everything up to the first
# transformer layer is exactly the same as in one long pass.
_CONTEXT_SECONDS = 1.0


@dataclass
class SpeechFeatureConfig:
    """Speech-encoder features for the generator's audio branch."""

    enabled: bool = False
    model: str = "facebook/hubert-large-ls960-ft"  # HF repo id (local cache only) or a local directory
    layer: int = -1  # index into hidden_states (0 = before the first transformer layer); negative counts back
    chunk_seconds: float = 20.0  # long audio runs in chunks of this length so memory does not grow with it
    device: str = "cpu"
    dtype: str = "float32"  # storage dtype of cached features: float32 or float16


def _hf_home() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HOME)
    except Exception:  # an old or missing huggingface_hub only costs us the hint
        return "~/.cache/huggingface"


def _in_hf_cache(repo_id: str, filename: str) -> str | None:
    """The cached path of ``filename`` in ``repo_id``, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # invalid repo ids (absolute paths, odd characters) are simply "not cached"
        return None
    return found if isinstance(found, str) else None


def load_speech_model(name_or_path: str, *, device: str = "cpu") -> tuple[Any, Any | None]:
    """Load a HuBERT / wav2vec2 / WavLM encoder and its feature extractor, offline.

    ``name_or_path``: a directory holding ``config.json`` and weights (e.g. from ``save_pretrained`` or a
    downloaded snapshot), else a Hugging Face repo id that must already be in the local cache. CTC checkpoints
    (``...-ft``) load as the bare encoder via ``AutoModel``; the CTC head is not needed.
    Returns ``(model, feature_extractor)`` with the model in eval mode on ``device``. ``feature_extractor`` is None
    when no ``preprocessor_config.json`` is saved; :func:`speech_features` then normalises the audio to zero mean
    and unit variance (ours: what every public HuBERT-large / wav2vec2-large / WavLM preprocessor asks for).
    """
    from transformers import AutoFeatureExtractor, AutoModel

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TalkfreqError(
                f"{path}: not a speech model directory (no config.json); pass a folder written by save_pretrained "
                f"or a Hugging Face snapshot folder as speech.model"
            )
        source, where = str(path), str(path)
        has_preprocessor = (path / "preprocessor_config.json").is_file()
    else:
        looks_like_path = path.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1
        if looks_like_path or path.exists():
            what = "is a file, not a model directory" if path.exists() else "not found"
            raise TalkfreqError(
                f"speech model directory {path} {what}; pass speech.model=/path/to/dir (holding config.json and "
                f"weights) or a Hugging Face repo id already in the local cache (HF_HOME={_hf_home()})"
            )
        if _in_hf_cache(name_or_path, "config.json") is None:
            raise TalkfreqError(
                f"speech model '{name_or_path}' not found: no directory {name_or_path} and not in the Hugging Face "
                f"cache (HF_HOME={_hf_home()}); download it on a machine with internet "
                f"(huggingface-cli download {name_or_path}) and copy the cache, or pass speech.model=/path/to/dir"
            )
        source, where = name_or_path, f"speech model '{name_or_path}' (Hugging Face cache, HF_HOME={_hf_home()})"
        has_preprocessor = _in_hf_cache(name_or_path, "preprocessor_config.json") is not None

    try:
        model = AutoModel.from_pretrained(source, local_files_only=True)
        feature_extractor = (
            AutoFeatureExtractor.from_pretrained(source, local_files_only=True) if has_preprocessor else None
        )
    except Exception as exc:  # corrupt / partial files surface as many exception types; all mean "re-fetch"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TalkfreqError(
            f"{where}: cannot load the speech model ({first}); the files are incomplete or corrupt, download or "
            f"save the model again"
        ) from exc
    if not hasattr(model.config, "conv_stride"):
        raise TalkfreqError(
            f"{where}: model type '{model.config.model_type}' is not a speech encoder with a convolutional front "
            f"end; use a HuBERT, wav2vec2 or WavLM model"
        )
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise TalkfreqError(f"speech.device='{device}' cannot be used ({exc}); set speech.device=cpu") from exc
    return model.eval(), feature_extractor


SPEECH_RECORD = "speech.json"  # beside a stage-1 model/: the speech encoder its features came from


def save_speech_record(folder: str | Path, *, model: str, layer: int) -> None:
    """Write ``speech.json`` into a model folder, so inference makes the features training used without being told."""
    (Path(folder) / SPEECH_RECORD).write_text(json.dumps({"model": model, "layer": int(layer)}, indent=1))


def read_speech_record(folder: str | Path) -> dict[str, Any] | None:
    """``{"model": ..., "layer": ...}`` from a model folder's ``speech.json``; None when there is none."""
    f = Path(folder) / SPEECH_RECORD
    if not f.is_file():
        return None
    try:
        rec = json.loads(f.read_text())
        return {"model": str(rec["model"]), "layer": int(rec["layer"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TalkfreqError(f"{f}: unreadable speech record ({exc}); delete it and pass --speech-model") from exc


def _conv_geometry(config: Any) -> tuple[int, int]:
    """(total stride, receptive field) in samples of the convolutional front end: (320, 400) for HuBERT."""
    stride, field = 1, 1
    for kernel, step in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * stride
        stride *= step
    return stride, field


def _n_outputs(n_samples: int, config: Any) -> int:
    n = n_samples
    for kernel, step in zip(config.conv_kernel, config.conv_stride):
        n = (n - kernel) // step + 1 if n >= kernel else 0
    return n


def speech_features(
    wav: np.ndarray | torch.Tensor,
    *,
    model: Any,
    feature_extractor: Any | None,
    n_frames: int,
    fps: float,
    layer: int = -1,
    sample_rate: int = 16000,
    chunk_seconds: float = 20.0,
) -> np.ndarray:
    """Hidden state ``layer`` of the speech encoder, one row per video frame: float32 (n_frames, D).

    ``wav``: (L,) float mono audio at ``sample_rate`` (must equal the model's rate, 16 kHz; no resampling here).
    ``layer`` indexes ``hidden_states`` (num_hidden_layers + 1 entries; 0 is the input to the first transformer
    layer, -1 the last).

    Timeline convention (ours): encoder frame k covers samples ``[k*S, k*S + R)`` (S = 320 stride, R = 400
    receptive field for HuBERT) and is placed at time ``(k + 0.5) * S / sample_rate`` (its true centre is R/2 = 2.5 ms
    later; we keep the simpler half-stride rule). Row i is the linear interpolation of the encoder sequence at
    ``t = i / fps``, clamped to the first/last encoder frame outside the audio.

    Chunking (ours): audio longer than ``chunk_seconds`` is encoded in chunks with at least 1 s of extra context on
    each side, trimmed afterwards; chunk starts are multiples of S so the convolutional features line up exactly.
    Self-attention is global, so transformer outputs differ slightly from one long pass (the model sees
    ``chunk_seconds`` + 2 s at a time); memory stays bounded by the chunk length.
    Audio is zero-mean-unit-variance normalised over its whole length first when the feature extractor asks for
    it (``do_normalize``) or when there is none; audio shorter than R is zero-padded to R.
    """
    x = torch.as_tensor(np.asarray(wav)) if not isinstance(wav, torch.Tensor) else wav.detach()
    if x.ndim != 1:
        raise TalkfreqError(f"speech features need mono audio of shape (samples,), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TalkfreqError(f"audio must be float in [-1, 1], got {x.dtype}; divide PCM16 samples by 32768")
    if x.numel() == 0:
        raise TalkfreqError("audio is empty (0 samples); speech features need at least one sample of audio")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if fps <= 0:
        raise TalkfreqError(f"video frame rate must be positive, got fps={fps}; check the video's metadata")
    expected_sr = int(getattr(feature_extractor, "sampling_rate", 16000) or 16000)
    if sample_rate != expected_sr:
        raise TalkfreqError(
            f"speech model expects {expected_sr} Hz audio, got {sample_rate} Hz; resample the audio to {expected_sr} Hz"
        )
    if chunk_seconds <= 0:
        raise TalkfreqError(f"speech.chunk_seconds must be positive, got {chunk_seconds}")
    config = model.config
    n_states = config.num_hidden_layers + 1
    if not -n_states <= layer < n_states:
        raise TalkfreqError(
            f"speech.layer={layer} is out of range: the model has {n_states} hidden states "
            f"(use {-n_states}..{n_states - 1})"
        )

    x = x.to(torch.float64)
    if feature_extractor is None or getattr(feature_extractor, "do_normalize", True):
        # As Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, over the whole clip so chunks share statistics.
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    stride, field = _conv_geometry(config)
    if x.numel() < field:
        x = torch.nn.functional.pad(x, (0, field - x.numel()))
    param = next(model.parameters())
    x = x.to(device=param.device, dtype=param.dtype)

    n_enc = _n_outputs(x.numel(), config)
    chunk = max(1, int(round(chunk_seconds * sample_rate / stride)))
    pos_half = int(getattr(config, "num_conv_pos_embeddings", 0)) // 2 + 1
    context = max(int(math.ceil(_CONTEXT_SECONDS * sample_rate / stride)), pos_half)
    parts = []
    with torch.inference_mode():
        for start in range(0, n_enc, chunk):
            stop = min(n_enc, start + chunk)
            lo, hi = max(0, start - context), min(n_enc, stop + context)
            seg = x[lo * stride : min(x.numel(), (hi - 1) * stride + field)]
            states = model(seg[None], output_hidden_states=True).hidden_states[layer][0]
            parts.append(states[start - lo : stop - lo].float().cpu())
    enc = torch.cat(parts).numpy()  # (n_enc, D) at sample_rate / stride Hz

    t = np.arange(n_frames, dtype=np.float64) / fps
    pos = np.clip(t * sample_rate / stride - 0.5, 0.0, n_enc - 1)
    k0 = np.floor(pos).astype(np.int64)
    k1 = np.minimum(k0 + 1, n_enc - 1)
    w = (pos - k0)[:, None]
    return ((1.0 - w) * enc[k0] + w * enc[k1]).astype(np.float32)


def feature_window(feats: np.ndarray, frame_index: int, *, context: int) -> np.ndarray:
    """(2 * context + 1, D) rows of ``feats`` (N, D) centred on ``frame_index``, edge rows repeated past the ends."""
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise TalkfreqError(f"speech features must have shape (frames>0, D), got {feats.shape}; is the audio empty?")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    rows = np.clip(np.arange(frame_index - context, frame_index + context + 1), 0, feats.shape[0] - 1)
    return feats[rows]
