"""What the sub-commands share: the typer app, the option types that recur, config loading with the explicit options
checked against the command's schema, and the rich progress helpers."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from talkfreq.errors import TalkfreqError

app = typer.Typer(
    name="talkfreq",
    help="High-fidelity audio-driven talking heads: prepare data, train, infer, refine, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (see configs/).")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. face.padding=0.3", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
# how the networks of infer / refine / bench run (pipeline.accel.AccelConfig; accel.overlap=false as an override)
DtypeOpt = Annotated[Optional[str], typer.Option(help="Compute dtype: auto, fp32, bf16 or fp16 (auto: bf16 on a GPU that has it, else fp32).")]
CompileOpt = Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the networks (default: on for CUDA, off on the CPU).", show_default=False)]
ChannelsLastOpt = Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="Channels-last memory format (default: on for CUDA, off on the CPU).", show_default=False)]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="CPU threads of torch (default: torch's own setting).")]
FidelityOpt = Annotated[Optional[float], typer.Option(help="Refiner output back towards its input, 0-1 (1: unchanged; default: the model's).")]


def accel_options(dtype: Optional[str], compile_: Optional[bool], channels_last: Optional[bool],
                  threads: Optional[int]) -> dict[str, Any]:
    """The accel options as :func:`load_options` keywords."""
    return {"accel__dtype": dtype, "accel__compile": compile_, "accel__channels_last": channels_last,
            "accel__threads": threads}


def _field_type(schema: type, name: str) -> Optional[type]:
    """The type of field ``name`` of dataclass ``schema`` (``Optional`` unwrapped); None when it has no such field."""
    if name not in {f.name for f in dataclasses.fields(schema)}:
        return None
    hint = typing.get_type_hints(schema)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint


def option_keys(schema: type, names: typing.Iterable[str]) -> dict[str, str]:
    """``{keyword: dotted key}`` for :func:`load_options` keywords (``face__crop_size`` -> ``face.crop_size``); a
    keyword that names no field of ``schema`` is a TypeError, so a renamed config field breaks the command in the
    tests, before a user's option is silently refused."""
    keys = {}
    for name in names:
        node: Optional[type] = schema
        for part in name.split("__"):
            node = _field_type(node, part) if node is not None and dataclasses.is_dataclass(node) else None
            if node is None:
                raise TypeError(f"{schema.__name__} has no field {name.replace('__', '.')!r}")
        keys[name] = name.replace("__", ".")
    return keys


def load_options(schema: type, config: Optional[Path], overrides: Optional[list[str]], **options: Any) -> Any:
    """:func:`talkfreq.config.load_config` of ``schema``: its defaults, the ``-c`` file, the dotted overrides, then
    the explicit options, which win; each keyword is a field of ``schema`` (``__`` for the dots of a nested one),
    None meaning "not given"."""
    from talkfreq.config import load_config

    keys = option_keys(schema, options)
    return load_config(schema, config, overrides or [], extra={keys[k]: v for k, v in options.items()})


def optional_str(path: Optional[Path]) -> Optional[str]:
    """A path option as the string a config field holds (None: not given)."""
    return str(path) if path else None


def parse_candidates(specs: list[str]) -> dict[str, Path]:
    """``{name: path}`` of NAME=PATH candidate arguments, in order; a name given twice is a user error."""
    from talkfreq.report.common import parse_candidate

    cands: dict[str, Path] = {}
    for spec in specs:
        name, path = parse_candidate(spec)
        if name in cands:
            raise TalkfreqError(f"candidate name {name!r} given twice")
        cands[name] = path
    return cands


def console():
    from rich.console import Console

    return Console(stderr=False)


def _frames_per_second_column():
    """A rich progress column showing the task's speed in frames/s (rich's speed columns are for bytes)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class FramesPerSecond(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f} frames/s" if task.speed else "", style="progress.data.speed")

    return FramesPerSecond()


def frame_bars(quiet: bool, *, remaining: bool = False):
    """A rich Progress of frame counts and speeds (with the time left when ``remaining``); disabled when ``quiet``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _frames_per_second_column(),
               TimeElapsedColumn()]
    if remaining:
        columns += [TextColumn("left"), TimeRemainingColumn()]
    return Progress(*columns, disable=quiet)


def stage_progress(bar, labels: dict[str, str]):
    """A ``progress(stage, done, total)`` callback adding one task per stage to the rich Progress ``bar``."""
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: Optional[int]) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return on_progress


def written_size(res) -> str:
    """``WxH`` as written, saying so when an odd input size was padded."""
    text = f"{res.width}x{res.height}"
    if res.padded_from:
        w, h = res.padded_from
        text += f", padded from {w}x{h}: h264 players need even sizes"
    return text
