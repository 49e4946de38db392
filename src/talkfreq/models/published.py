"""Published weight files, read by path: Wav2Lip's generator and lip-sync expert, syncnet_python's syncnet_v2.

What each original saves (github.com/Rudrabha/Wav2Lip ``save_checkpoint``; joonson/syncnet_python):

* ``wav2lip.pth``, ``wav2lip_gan.pth`` (generator) and ``lipsync_expert.pth`` (``SyncNet_color``):
  ``torch.save({"state_dict": model.state_dict(), "optimizer": ..., "global_step": ..., "global_epoch": ...})``,
  the keys prefixed ``module.`` when the network was trained under ``DataParallel`` (the published files are), in
  PyTorch's zip format or the legacy one of PyTorch < 1.6. The original loaders strip every ``module.``.
* ``syncnet_v2.model``: a bare state dict (:meth:`talkfreq.models.SyncNetV2.load_original`).

Both formats are read with ``torch.load(weights_only=True)`` (no pickled code runs). The kind is told by the keys
(:func:`published_kind`), never by the file name. Each network is built with the input convention its weights were
trained with recorded in its config (the registry's ``published_config``); the models apply it at
their boundary, so every caller keeps feeding talkfreq's RGB [-1, 1] faces.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

import torch

from talkfreq.errors import TalkfreqError
from talkfreq.models import registry
from talkfreq.models._io import load_state_strict

__all__ = ["PublishedKind", "build_published", "import_published",
           "load_published", "published_kind", "published_kind_of", "read_published", "state_of"]

PublishedKind = Literal["wav2lip", "lipsync_expert", "syncnet_v2"]

# A key each network has and the others do not (module names of the originals).
_MARKERS: dict[str, PublishedKind] = {
    "face_encoder_blocks.0.0.conv_block.0.weight": "wav2lip",
    "face_encoder.0.conv_block.0.weight": "lipsync_expert",
    "netcnnaud.0.weight": "syncnet_v2",
}
_PREFIXES = ("module.", "__S__.")  # DataParallel; SyncNetInstance's own state dicts


def _load(path: Path, map_location) -> Any:
    if not path.is_file():
        raise TalkfreqError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: all mean "not a readable weights file"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TalkfreqError(f"{path}: not a readable weights file ({first[:200]})") from exc


def state_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The state dict inside a loaded file (``{"state_dict": ...}`` or bare), prefixes stripped; None if none."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and "hyper_parameters" not in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    state = {str(k): v for k, v in obj.items()}
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def published_kind(state: dict[str, torch.Tensor]) -> PublishedKind | None:
    """Which published network a (prefix-stripped) state dict belongs to, from its keys; None if none."""
    for key, kind in _MARKERS.items():
        if key in state:
            return kind
    return None


def read_published(path: str | Path, *, map_location: str | torch.device = "cpu"
                   ) -> tuple[PublishedKind, dict[str, torch.Tensor]]:
    """(kind, state dict) of a published weights file; a one-line TalkfreqError for anything else."""
    p = Path(path)
    state = state_of(_load(p, map_location))
    kind = published_kind(state) if state is not None else None
    if kind is None:
        raise TalkfreqError(f"{p}: not a published Wav2Lip generator, Wav2Lip lip-sync expert or syncnet_v2 file "
                            f"(no state dict with their keys)")
    return kind, state


def published_kind_of(cls: type) -> PublishedKind | None:
    """The published kind a talkfreq model class reads (``Wav2Lip`` -> ``wav2lip``, ...); None for others."""
    kind = registry.by_class_name(cls.__name__)
    return None if kind is None else kind.published  # type: ignore[return-value]


def load_published(path: str | Path, *, expect: PublishedKind | tuple[PublishedKind, ...] | None = None,
                   map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """The network of a published weights file, strictly loaded, in eval mode, its input convention in its config.

    ``expect``: the kind(s) the caller takes; another kind is a one-line error naming what the file holds.
    """
    kind, state = read_published(path, map_location=map_location)
    wanted = (expect,) if isinstance(expect, str) else expect
    if wanted is not None and kind not in wanted:
        raise TalkfreqError(f"{path}: holds a published {kind} network, not {' or '.join(wanted)}")
    return build_published(kind, state, source=str(path))


def build_published(kind: PublishedKind, state: dict[str, torch.Tensor], *, source: str) -> torch.nn.Module:
    """The ``kind`` network with its published input convention (the registry's ``published_config``), ``state``
    (prefix-stripped) loaded strictly."""
    entry = registry.by_published(kind)
    return load_state_strict(entry.cls(config=dict(entry.published_config)), state, source=source)


def import_published(path: str | Path, out: str | Path) -> tuple[PublishedKind, Path]:
    """Convert a published weights file into a talkfreq model folder ``out`` (``config.json`` with its input
    convention + ``model.pt``), loadable by ``from_pretrained`` and every command. ``out`` must not exist; it is
    written under a temporary name and renamed when whole."""
    dst = Path(out)
    if dst.exists():
        raise TalkfreqError(f"{dst}: already exists; choose a new folder for the imported model")
    kind, state = read_published(path)
    model = build_published(kind, state, source=str(path))
    tmp = dst.with_name(f".{dst.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)  # type: ignore[operator]
        tmp.rename(dst)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TalkfreqError(f"{dst}: cannot write the imported model ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return kind, dst
