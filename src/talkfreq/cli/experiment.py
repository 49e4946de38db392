"""The command line of the experiment scripts (``experiments/*.py``), on the ``talkfreq`` command's stack.

A script declares its command as a typer function whose options are the types below and those of
:mod:`talkfreq.cli._common` (``-c``, dotted overrides), loads its config with :func:`experiment_config` (the
explicit options checked against its config dataclass, as :func:`~talkfreq.cli._common.load_options` does for the
``talkfreq`` commands) and runs it with :func:`run_experiment`, which returns the exit status the way
``talkfreq`` does: a user error (TalkfreqError, a bad option or override) is one line on stderr and status 2::

    def command(config: ConfigOpt = None, out: OutOpt = None, steps: StepsOpt = None, quick: QuickOpt = False,
                overrides: Overrides = None) -> int:
        cfg = experiment_config(ExperimentConfig, config, DEFAULT_CONFIG, overrides, quick=quick, steps=steps)
        ...

    def main(argv=None) -> int:
        return run_experiment(command, argv, script=__file__, doc=__doc__)

    if __name__ == "__main__":
        raise SystemExit(main())

Nothing here parses or runs at import time, so importing a script runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from talkfreq.cli._common import ConfigOpt, Overrides, load_options

__all__ = ["ConfigOpt", "OutOpt", "Overrides", "QuickOpt", "StepsOpt", "VideoOpt", "experiment_config",
           "run_experiment"]

OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Work folder (data, runs, videos, report, results).")]
VideoOpt = Annotated[Optional[Path], typer.Option("--video", help="Your own talking-head clip instead of synth data.")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Training steps of every network (the config's steps).")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="A smoke run (the config's `quick` overrides first).")]


def experiment_config(schema: type, config: Optional[Path], default_config: Path, overrides: Optional[list[str]], *,
                      quick: bool = False, **options: Any) -> Any:
    """The experiment config: ``schema``'s defaults, the ``-c`` file (else ``default_config``), with ``quick`` the
    file's ``quick`` overrides, the dotted ``overrides``, then the explicit ``options`` (:func:`load_options`
    keywords, None = not given), which win. Sets torch's threads to the config's ``threads`` when it has one > 0."""
    from talkfreq.config import load_config

    file = config or default_config
    overrides = list(overrides or [])
    if quick:
        overrides = [*load_config(schema, file).quick, *overrides]
    cfg = load_options(schema, file, overrides, **options)
    if getattr(cfg, "threads", 0) > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    return cfg


def run_experiment(command: Callable[..., Any], argv: Optional[list[str]] = None, *, script: str | Path,
                   doc: Optional[str] = None) -> int:
    """Run the typer function ``command`` as the command line of ``script`` (its ``__file__``) on ``argv`` (None:
    ``sys.argv[1:]``); the first line of ``doc`` is the ``--help`` summary. Returns the exit status."""
    from talkfreq.cli._run import run_command

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    summary = (doc or command.__doc__ or "").strip().splitlines()
    app.command(help=summary[0] if summary else None)(command)
    return run_command(typer.main.get_command(app), argv, prog=Path(script).name)
