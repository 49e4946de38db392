"""The torch device a command runs on, from its ``device`` setting, with one-line errors before any work starts."""

from __future__ import annotations

import torch

from talkfreq.errors import ConfigError, TalkfreqError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a torch device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TalkfreqError(f"device {name!r} asked for, but CUDA is not available here")
    return dev
