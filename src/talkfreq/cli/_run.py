"""Running the ``talkfreq`` command: one line for a user's error, the exit status of a signal, cleanup on the way
out."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Optional

import typer

from talkfreq.cli._common import app
from talkfreq.errors import TalkfreqError, is_disk_full


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts, exits) as the installed typer raises them: typer >= 0.24 carries its own copy of click
    (``typer._click``) and no longer raises the ``click`` package's classes; older typer raises those. Both are
    collected, so either works."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(__import__(name, fromlist=["ClickException"]))
        except ImportError:
            pass

    def classes(attr: str, *more: type) -> tuple[type, ...]:
        found = [getattr(m, attr) for m in modules if isinstance(getattr(m, attr, None), type)]
        return tuple(dict.fromkeys([*found, *more]))

    return (classes("ClickException"), classes("Abort", getattr(typer, "Abort", KeyboardInterrupt)),
            classes("Exit", typer.Exit))


class _Signals:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread while a command runs, so every ``finally`` and
    atomic writer cleans up (temporary mp4s, frame caches) whatever stopped the run; which signal came is kept for
    the exit status (130 / 143). The previous handlers come back afterwards (tests call :func:`main` in-process)."""

    NAMES = {2: "aborted", 15: "terminated"}

    def __init__(self, prog: str = "talkfreq"):
        self.prog = prog
        self.received: Optional[int] = None
        self._saved: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
        raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def stopped(self) -> int:
        """Print why the command stopped; the exit status 128 + signal number (130 for Ctrl-C)."""
        sig = self.received or 2
        print(f"{self.prog}: {self.NAMES.get(sig, f'stopped by signal {sig}')}", file=sys.stderr)
        return 128 + sig


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``talkfreq`` console script; returns the exit status."""
    return run_command(typer.main.get_command(app), argv, prog="talkfreq")


def run_command(command, argv: list[str] | None, *, prog: str) -> int:
    """Run the click ``command`` on ``argv`` (None: ``sys.argv[1:]``) and return its exit status: a user error
    (TalkfreqError, a usage error) is one line on stderr, prefixed ``prog: error:``, and status 2; an interrupt
    128 + the signal number. The ``talkfreq`` command and the experiment scripts run this way."""
    usage_errors, aborts, exits = _click_exceptions()
    with _Signals(prog) as signals:
        try:
            rv = command.main(args=argv, prog_name=prog, standalone_mode=False)
        except TalkfreqError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        except exits as exc:
            if signals.received:  # typer turns an interrupt into Exit(130) itself
                return signals.stopped()
            return exc.exit_code
        except usage_errors as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `talkfreq`: the help is the answer
                exc.show()
                return exc.exit_code
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"{prog}: error: {exc.format_message()}{hint}", file=sys.stderr)
            return exc.exit_code
        except (KeyboardInterrupt, *aborts):
            return signals.stopped()
        except SystemExit:  # Lightning ends an interrupted fit with sys.exit(1)
            if signals.received:
                return signals.stopped()
            raise
        except OSError as exc:
            if is_disk_full(exc):  # a write the commands do not wrap themselves (checkpoints, datasets)
                where = f" ({exc.filename})" if exc.filename else ""
                print(f"{prog}: error: no space left on the device{where}; free some space and run again",
                      file=sys.stderr)
                return 2
            raise
    if signals.received:  # typer (>= 0.24, non-standalone) returns Exit(130) of an interrupt as the value
        return signals.stopped()
    return rv if isinstance(rv, int) else 0

