"""``talkfreq train KIND``: each trainable kind names its run-config dataclass and its ``fit`` function.

A kind's module exposes ``Config`` (a dataclass with ``trainer``/``logging``/``run`` sections, see
:mod:`talkfreq.training.common`) and ``fit(cfg) -> Path`` (trains, returns the run folder). Modules are imported
only when their kind is asked for, so ``talkfreq --help`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from talkfreq.config import load_config
from talkfreq.errors import TalkfreqError

KINDS: dict[str, str] = {
    "syncnet": "talkfreq.training.syncnet",
    "stage1": "talkfreq.training.stage1",
    "refiner": "talkfreq.training.refiner",
}


def kind_module(kind: str):
    if kind not in KINDS:
        raise TalkfreqError(f"train: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def load_run_config(kind: str, file: str | Path | None, overrides: Sequence[str] = (),
                    extra: dict | None = None) -> Any:
    return load_config(kind_module(kind).Config, file, overrides, extra=extra)


def train(kind: str, file: str | Path | None, overrides: Sequence[str] = (), extra: dict | None = None) -> Path:
    cfg = load_run_config(kind, file, overrides, extra)
    return kind_module(kind).fit(cfg)
