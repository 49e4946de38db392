"""Configuration: dataclass schemas filled from OmegaConf YAML and dotted overrides.

Each sub-system owns the dataclass of its own settings (``FaceConfig`` beside the face code, ``MelConfig`` beside
the mel code ...), so every default is written once, in its dataclass. YAML files under ``configs/`` only select and
override. :func:`load_config` merges, in order, the schema's defaults, a YAML file, and ``key.sub=value`` overrides,
and turns OmegaConf's multi-line errors into one :class:`~talkfreq.errors.ConfigError` line. A YAML file may start
from another with a top-level ``base: PATH`` (relative to the file naming it): it holds only what differs from that
recipe (:func:`load_yaml`). The configs that ship with talkfreq are package data (:func:`packaged_config`): a
``-c configs/...`` path that does not exist where the command runs is looked up there, so an installed talkfreq
finds them from any folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import is_dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from talkfreq.errors import ConfigError

T = TypeVar("T")

PACKAGED = "configs"  # the folder of talkfreq's own configs, in the package (and linked at a checkout's root)
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")


def is_override(token: str) -> bool:
    """True for a ``dotted.key=value`` token (used to tell overrides from input paths on the command line)."""
    return bool(_OVERRIDE.match(token)) and not Path(token).exists()


def split_overrides(tokens: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split command-line tokens into (positional arguments, ``key=value`` overrides)."""
    args: list[str] = []
    overrides: list[str] = []
    for tok in tokens:
        (overrides if is_override(tok) else args).append(tok)
    return args, overrides


def packaged_config(*parts: str) -> Path:
    """The path of a config shipped with talkfreq, e.g. ``packaged_config("demo", "freak.yaml")`` (a folder with no
    ``parts``); found through :mod:`importlib.resources`, so it is the installed package's copy."""
    return Path(str(files("talkfreq").joinpath(PACKAGED, *parts)))


def resolve_config_path(file: str | Path) -> Path:
    """``file`` (a config or a folder of them) as given when it exists; else, for ``configs/<rel>`` or ``<rel>``, the
    packaged one of that name when there is one; else ``file`` unchanged (the caller's not-found error names what
    the user wrote)."""
    path = Path(file)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == (PACKAGED,) else path.parts
    packaged = packaged_config(*parts)
    return packaged if parts and packaged.exists() else path


def _one_line(exc: OmegaConfBaseException, source: str) -> str:
    msg = str(exc).splitlines()[0].strip() if str(exc) else type(exc).__name__
    key = getattr(exc, "full_key", None)
    if key and key not in msg:
        msg = f"{key}: {msg}"
    return f"{source}: {msg}"


def load_yaml(file: str | Path, _including: tuple[Path, ...] = ()) -> DictConfig:
    """The mapping of a YAML config ``file``; when it names ``base: PATH`` (relative to ``file``, or absolute), the
    base is loaded the same way (so it may have its own base) and the file's keys are merged over it (nested
    mappings merge key by key; any other value, a list included, replaces the base's). ``base`` is dropped."""
    path = resolve_config_path(file)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml errors are not OmegaConf exceptions
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not a valid YAML config ({first})") from exc
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: a config file must hold a mapping at the top level")
    if "base" not in loaded:
        return loaded
    ref = loaded.pop("base")
    if not isinstance(ref, str):
        raise ConfigError(f"{path}: base must be the path of a YAML config file, got {ref!r}")
    base, chain = path.parent / ref, (*_including, path.resolve())
    if base.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base.resolve()))
        raise ConfigError(f"{path}: base {ref} makes a cycle ({cycle})")
    if not base.is_file():
        raise ConfigError(f"{path}: base file {base} not found")
    return OmegaConf.merge(load_yaml(base, chain), loaded)  # type: ignore[return-value]


def _mapping_paths(cfg: DictConfig, layer: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of the plain-mapping fields (``dict[str, X]``, not dataclasses) of ``cfg`` that ``layer`` sets."""
    out = []
    for key in layer:
        node = cfg.get(key) if key in cfg else None
        if not isinstance(node, DictConfig) or not isinstance(layer[key], DictConfig):
            continue
        path = f"{prefix}{key}"
        out += [path] if OmegaConf.get_type(node) is dict else _mapping_paths(node, layer[key], path + ".")
    return out


def load_config(
    schema: type[T],
    file: str | Path | None = None,
    overrides: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> T:
    """Build a ``schema`` instance from its defaults, an optional YAML ``file`` and dotted ``overrides``.

    ``extra`` maps dotted keys to values set by explicit command-line options (``{"face.crop_size": 256}`` from
    ``--size 256``; None means "not given"); they win over the file and the overrides. The file's ``base:`` chain
    is resolved first (:func:`load_yaml`). A mapping field (``dict[str, X]``) given whole, in the file or as an
    override ``key={...}``, replaces the default mapping; ``key.sub=value`` edits one entry. Unknown keys and wrong
    types raise ConfigError.
    """
    if not is_dataclass(schema):
        raise TypeError(f"{schema!r} is not a dataclass schema")
    base = OmegaConf.structured(schema)
    layers: list[tuple[str, DictConfig]] = []
    if file is not None:
        layers.append((str(file), load_yaml(file)))
    if overrides:
        bad = [o for o in overrides if not _OVERRIDE.match(o)]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key.sub=value")
        try:
            layers.append(("override", OmegaConf.from_dotlist(list(overrides))))
        except OmegaConfBaseException as exc:
            raise ConfigError(_one_line(exc, "override")) from exc
    if extra:
        opt = OmegaConf.create()
        for key, value in extra.items():
            if value is not None:
                OmegaConf.update(opt, key, value, force_add=True)
        layers.append(("option", opt))
    cfg = base
    whole = [o.split("=", 1)[0] for o in overrides if o.split("=", 1)[1].lstrip().startswith("{")]
    for source, layer in layers:
        try:
            # a mapping given whole (in a file, or as key={...}) replaces the one before; key.sub=v edits one entry
            for key in _mapping_paths(cfg, layer):
                if source == str(file) or (source == "override" and key in whole):
                    OmegaConf.update(cfg, key, {}, merge=False)
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as exc:
            raise ConfigError(_one_line(exc, source)) from exc
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc, "config")) from exc


def to_yaml(cfg: Any) -> str:
    """The YAML text of a config dataclass (saved beside every output so a run can be reproduced)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
