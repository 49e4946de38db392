"""User-facing errors.

Every problem a user can fix (a missing file, a video without audio, a bad config key) is raised as a
:class:`TalkfreqError` whose message is one line naming the file and what is wrong; the CLI prints it without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class TalkfreqError(Exception):
    """A one-line, user-fixable problem."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(TalkfreqError):
    """An unknown key, a wrong type or an unreadable config file."""


class MediaError(TalkfreqError):
    """A media file that is missing, unreadable or lacks what is needed (a video stream, an audio track, a face)."""


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a one-line error if it is not an existing, readable file."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: {what} not found")
    if p.is_dir():
        raise MediaError(f"{p}: expected a {what}, got a directory")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise MediaError(f"{p}: cannot read {what} ({exc.strerror or exc})") from exc
    return p


def require_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be created in it; raise a one-line error otherwise."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".talkfreq-write-test-{__import__('os').getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise TalkfreqError(f"{p}: output folder cannot be written ({exc.strerror or exc})") from exc
    return p


def is_disk_full(exc: BaseException) -> bool:
    """True for the OSError of a write that found the device (or the user's quota) full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
