"""Loading trained networks by path, without Lightning: a stage-1 generator or a refiner from a ``model/`` folder
(``save_pretrained``), a Lightning ``.ckpt`` of its training run, or a published weights file.

A path holding another kind of network is a one-line :class:`~talkfreq.errors.TalkfreqError` saying which kind it
holds and where it belongs, so swapping ``--stage1`` and ``--refiner`` is caught before any work starts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Union

import torch

from talkfreq.errors import TalkfreqError
from talkfreq.models._io import peek_model_class
from talkfreq.models.freak import FREAK
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig
from talkfreq.models.wav2lip import Wav2Lip

Stage1Model = Union[FREAK, Wav2Lip]
INFERENCE_FILE = "inference.json"  # beside a saved refiner: the defaults `infer`/`refine` read (latent_smoothing)
STAGE1_CLASSES = {"FREAK": FREAK, "Wav2Lip": Wav2Lip}


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
