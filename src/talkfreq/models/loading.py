"""Loading trained networks by path, without Lightning: a stage-1 generator or a refiner from a ``model/`` folder
(``save_pretrained``), a Lightning ``.ckpt`` of its training run, or a published weights file.

A path holding another kind of network is a one-line :class:`~talkfreq.errors.TalkfreqError` saying which kind it
holds and where it belongs, so swapping ``--stage1`` and ``--refiner`` is caught before any work starts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from talkfreq.errors import TalkfreqError
from talkfreq.models import registry
from talkfreq.models._io import build_config, load_prefixed_state, peek_model_class, read_lightning_checkpoint
from talkfreq.models.published import build_published, load_published, published_kind, state_of
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig

Stage1Model = nn.Module  # a registered generator kind (talkfreq.models.registry)
INFERENCE_FILE = "inference.json"  # beside a saved refiner: the defaults `infer`/`refine` read (latent_smoothing)


def _refiner_hint(path: Path) -> TalkfreqError:
    return TalkfreqError(f"{path}: is a refiner (SOVQAE) checkpoint, not a stage-1 model; pass it as --refiner "
                         f"and give a {_generators()} run's model/ folder as --stage1")


def _generators() -> str:
    return " or ".join(registry.names("generator"))


def load_stage1(path: str | Path, *, map_location: str | torch.device = "cpu") -> Stage1Model:
    """A stage-1 generator (a registered ``generator`` kind: FREAK, Wav2Lip ...) from a ``model/`` folder
    (``save_pretrained``), a stage-1 Lightning ``.ckpt``, or a published file such as Wav2Lip's ``wav2lip.pth`` /
    ``wav2lip_gan.pth`` (:mod:`talkfreq.models.published`).

    A refiner or any other model is a one-line TalkfreqError that says which it is.
    """
    p = Path(path)
    if not p.exists():
        raise TalkfreqError(f"{p}: stage-1 model not found (expected a run's model/ folder or a .ckpt file)")
    if p.is_dir():
        name = peek_model_class(p)
        kind = registry.by_class_name(name)
        if kind is not None and kind.role == "refiner":
            raise _refiner_hint(p)
        if kind is None or kind.role != "generator":
            raise TalkfreqError(f"{p}: holds a {name} model, not a stage-1 generator ({_generators()})")
        return kind.cls.from_pretrained(p, map_location=map_location)
    ckpt, hp = read_lightning_checkpoint(p, map_location=map_location)
    if hp.get("talkfreq_kind") == "refiner":
        raise _refiner_hint(p)
    if not hp:  # not a Lightning checkpoint: a published file?
        state = state_of(ckpt)
        published = published_kind(state) if state is not None else None
        if published is not None and registry.by_published(published).role == "generator":
            return build_published(published, state, source=str(p))
        if published is not None:
            raise TalkfreqError(f"{p}: holds a published {published} network, not a stage-1 generator")
    name = hp.get("model")
    if name not in registry.names("generator"):
        raise TalkfreqError(f"{p}: not a stage-1 checkpoint (no {'/'.join(registry.names('generator'))} model in "
                            f"its config)")
    kind = registry.get(name)
    model = kind.cls(config=hp.get(kind.config_section))
    return load_prefixed_state(model, ckpt, prefix="generator.", source=str(p))


def load_refiner(path: str | Path, *, map_location: str | torch.device = "cpu") -> SOVQAE:
    """A trained :class:`SOVQAE` from a ``model/`` folder (``save_pretrained``) or a refiner Lightning ``.ckpt``.

    Anything else (a stage-1 model folder or checkpoint, a missing path) is a one-line TalkfreqError.
    """
    p = Path(path)
    if not p.exists():
        raise TalkfreqError(f"{p}: refiner not found (expected a model folder or a .ckpt file)")
    if p.is_dir():
        kind = registry.by_class_name(peek_model_class(p))
        if kind is not None and kind.role == "generator":
            raise TalkfreqError(f"{p}: is a stage-1 {kind.cls.__name__} model, not a refiner; pass it as --stage1 "
                                f"and give a refiner run's model/ folder as --refiner")
        return SOVQAE.from_pretrained(p, map_location=map_location)
    ckpt, hp = read_lightning_checkpoint(p, map_location=map_location)
    if hp.get("talkfreq_kind") != "refiner":
        kind = "another kind of model"
        if isinstance(hp.get("model"), str):
            kind = f"a stage-1 {hp['model']} generator"  # stage 1's config names its model kind at the top
        raise TalkfreqError(f"{p}: not a refiner checkpoint (it holds {kind}); pass a refiner run's model/ "
                            f"folder or checkpoints/*.ckpt")
    sov = build_config(SOVQAEConfig, hp["config"].get("sovqae"), source=f"{p} (sovqae config)")
    return load_prefixed_state(SOVQAE(config=sov), ckpt, prefix="model.", source=str(p))


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Any talkfreq network by path: a ``model/`` folder of a registered kind, a stage-1 or refiner Lightning
    ``.ckpt``, or a published weights file (Wav2Lip, lipsync_expert, syncnet_v2); a one-line TalkfreqError for
    anything else."""
    p = Path(path)
    if p.is_dir():
        name = peek_model_class(p)
        kind = registry.by_class_name(name)
        if kind is None:
            raise TalkfreqError(f"{p}: holds a {name} model, which is no registered kind "
                                f"({', '.join(registry.class_names())})")
        return kind.cls.from_pretrained(p, map_location=map_location)
    if not p.is_file():
        raise TalkfreqError(f"{p}: model not found (expected a model/ folder, a .ckpt or a published weights file)")
    _, hp = read_lightning_checkpoint(p, map_location="cpu")
    if hp.get("talkfreq_kind") == "refiner":
        return load_refiner(p, map_location=map_location)
    if hp:
        return load_stage1(p, map_location=map_location)
    return load_published(p, map_location=map_location)


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
