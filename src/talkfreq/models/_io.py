"""Save and load pure ``nn.Module`` models as a folder: ``config.json`` + ``model.pt``.

One small format shared by every talkfreq model so that a checkpoint carries the config that built it and the kind
of model it holds:

- ``config.json``: ``{"format": "talkfreq-model", "version": 1, "model_class": "FREAK", "config": {...}}`` where
  ``config`` is ``dataclasses.asdict`` of the model's config dataclass (plain JSON types only);
- ``model.pt``: the ``state_dict``, read back with ``torch.load(weights_only=True)`` (no pickled code runs).

Loading is strict: the class name must match, the config must validate against the dataclass schema (through
OmegaConf, so wrong types and unknown keys are caught), and every tensor name and shape must match. Anything else is
a one-line :class:`~talkfreq.errors.TalkfreqError` naming the folder and the first offending keys — never a silent
``strict=False``.

A model opts in by subclassing :class:`PretrainedMixin` and setting ``config_class``; it must keep its config
dataclass in ``self.config`` and accept ``config=`` as a keyword in its constructor.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from talkfreq.errors import TalkfreqError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
FORMAT = "talkfreq-model"
VERSION = 1
_SHOW = 3  # how many offending keys a message names

M = TypeVar("M", bound="PretrainedMixin")
C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass (or OmegaConf structured config) as a plain dict."""
    if OmegaConf.is_config(config):
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    raise TypeError(f"expected a config dataclass, got {type(config).__name__}")


def build_config(config_class: type[C], values: Any, *, source: str) -> C:
    """Validate ``values`` (dict, dataclass or DictConfig) against ``config_class``; one-line error on failure."""
    if values is None:
        return config_class()
    if isinstance(values, config_class):
        return values
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_class), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TalkfreqError(f"{source}: invalid {config_class.__name__} ({first})") from exc


def save_model(model: nn.Module, config: Any, directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.pt`` for ``model`` into ``directory`` (created if needed)."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": VERSION, "model_class": type(model).__name__,
                "config": config_to_dict(config)}
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        # Contiguous CPU copies: the file must not depend on the device or on views of shared storage.
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, d / WEIGHTS_FILE)
    except OSError as exc:
        raise TalkfreqError(f"{d}: cannot write model ({exc.strerror or exc})") from exc
    return d


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved model folder (checks that it is one)."""
    d = Path(directory)
    if not d.exists():
        raise TalkfreqError(f"{d}: model folder not found")
    if not d.is_dir():
        raise TalkfreqError(f"{d}: expected a model folder (with {CONFIG_FILE} and {WEIGHTS_FILE}), got a file")
    cfg_path = d / CONFIG_FILE
    if not cfg_path.is_file():
        raise TalkfreqError(f"{d}: not a talkfreq model folder ({CONFIG_FILE} missing)")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise TalkfreqError(f"{cfg_path}: unreadable model config ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "model_class" not in meta:
        raise TalkfreqError(f"{cfg_path}: not a talkfreq model config (no format/model_class)")
    return meta


def peek_model_class(directory: str | Path) -> str:
    """The class name stored in a saved model folder, e.g. ``"FREAK"`` (to dispatch before building a model)."""
    return str(read_meta(directory)["model_class"])


def _first(items: list[str]) -> str:
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Raise a one-line TalkfreqError naming the first missing / unexpected / wrongly shaped keys, if any."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"missing {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected {_first(unexpected)}")
    if shape:
        parts.append(f"shape file vs model: {_first(shape)}")
    if parts:
        raise TalkfreqError(f"{source}: weights do not match {type(model).__name__}: " + "; ".join(parts))


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, as one whole clause for a one-line error. torch's own message
    runs for paragraphs and advises ``weights_only=False``, which would run the file's pickled code: talkfreq never
    does that, so the advice is not passed on."""
    text = " ".join(str(exc).split())
    if "central directory" in text or "PytorchStreamReader" in text:
        return "the file is damaged or truncated (its zip archive cannot be read); copy or download it again"
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" such as {found.group(1)}" if found else ""
        return (f"it holds Python objects{what} besides tensors, or is damaged; talkfreq loads plain tensors only and "
                f"never runs a file's pickled code")
    if not text:
        return type(exc).__name__
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]  # one whole sentence, never cut inside one
    return first.rstrip(".")


def load_state_file(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a state dict, with one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise TalkfreqError(f"{p}: weights file not found")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: all mean "not a readable weights file"
        raise TalkfreqError(f"{p}: not a readable weights file: {load_failure(exc)}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TalkfreqError(f"{p}: expected a state dict (name -> tensor)")
    return state


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> nn.Module:
    """Load a published state dict into ``model`` strictly and return it in eval mode: missing
    ``num_batches_tracked`` buffers (files saved before PyTorch 0.4.1) are filled with 0; any other difference is a
    one-line TalkfreqError naming ``source`` and the first keys."""
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros_like(v)
    check_state_dict(model, state, source=source)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. dtype problems the name/shape check does not see
        raise TalkfreqError(f"{source}: cannot load weights ({str(exc).splitlines()[0]})") from exc
    return model.eval()


def load_model(cls: type[M], directory: str | Path, *, map_location: str | torch.device = "cpu") -> M:
    """Build ``cls`` from the saved config in ``directory`` and load its weights strictly."""
    d = Path(directory)
    meta = read_meta(d)
    if meta["model_class"] != cls.__name__:
        raise TalkfreqError(f"{d}: holds a {meta['model_class']} model, not {cls.__name__}")
    config = build_config(cls.config_class, meta.get("config"), source=str(d / CONFIG_FILE))
    model = cls(config=config)
    state = load_state_file(d / WEIGHTS_FILE, map_location=map_location)
    check_state_dict(model, state, source=str(d / WEIGHTS_FILE))
    model.load_state_dict(state, strict=True)
    return model


class PretrainedMixin:
    """Adds ``save_pretrained(dir)`` / ``from_pretrained(dir)`` to an ``nn.Module`` with a config dataclass."""

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write this model (config + weights) into ``directory``; returns the folder."""
        return save_model(self, self.config, directory)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, *, map_location: str | torch.device = "cpu") -> M:
        """Rebuild a model saved by :meth:`save_pretrained`; a wrong kind or any mismatch is a TalkfreqError.

        A file instead of a folder is read as a published weights file (:mod:`talkfreq.models.published`) holding
        this kind of network.
        """
        if Path(directory).is_file():
            from talkfreq.models.published import load_published, published_kind_of

            kind = published_kind_of(cls)
            if kind is None:
                raise TalkfreqError(f"{directory}: expected a {cls.__name__} model folder (with {CONFIG_FILE} and "
                                    f"{WEIGHTS_FILE}), got a file")
            return load_published(directory, expect=kind, map_location=map_location)  # type: ignore[return-value]
        return load_model(cls, directory, map_location=map_location)


def read_lightning_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """(checkpoint, hyper_parameters) of a Lightning ``.ckpt``; a one-line TalkfreqError when it can't be read."""
    p = Path(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: all mean "not a readable checkpoint"
        raise TalkfreqError(f"{p}: not a readable checkpoint: {load_failure(exc)}") from exc
    if not isinstance(ckpt, dict):
        return {}, {}
    hp = ckpt.get("hyper_parameters", {})
    return ckpt, hp if isinstance(hp, dict) else {}


def load_prefixed_state(model: M, ckpt: dict, *, prefix: str, source: str) -> M:
    """Load the ``prefix``-ed part of a LightningModule's state dict into ``model``, strictly (no dropped weights)."""
    state = {k[len(prefix):]: v for k, v in ckpt.get("state_dict", {}).items() if k.startswith(prefix)}
    check_state_dict(model, state, source=source)
    model.load_state_dict(state, strict=True)
    return model
