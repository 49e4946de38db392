"""Small files written atomically: a reader (or a crash) never sees half of one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """``write(fh)`` into a temporary binary file beside ``path`` (its folder made if missing), renamed into place
    when it returns; the temporary file is removed if the write fails, so ``path`` is whole or untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON at ``path``, written by :func:`atomic_write`."""
    return atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


__all__ = ["atomic_write", "write_json"]
