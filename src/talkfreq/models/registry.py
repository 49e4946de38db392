"""The kinds of network talkfreq knows, and everything the rest of the package asks about one.

Each :class:`ModelKind` names its class, its role (a stage-1 ``generator``, the stage-2 ``refiner``, a sync
``expert``), how a stage-1 generator is called on talkfreq's tensors (``forward``), which audio window it takes
(``audio``) and which mask it dubs with (``dub_mask``), whether it can do one-shot, the published weights format it
reads, where its training config keeps its settings, and the configurations ``talkfreq bench`` measures. Training,
loading, inference, the cost model, the benchmark and the CLI look kinds up here instead of testing classes, so a new
generator is its own module plus one :func:`register` call (and its training module if its losses differ).

The built-in kinds are a table of import paths (``"module:attr"``), so listing names for ``talkfreq --help`` imports
no torch; a class or adapter is imported when first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from talkfreq.errors import TalkfreqError

Role = Literal["generator", "refiner", "expert"]


@dataclass(frozen=True)
class AudioSpec:
    """What audio window a stage-1 model takes: ``mel`` (1, 80, 16), or ``speech`` (2·context+1, dim)."""

    kind: Literal["mel", "speech"]
    context: int = 0
    dim: int = 0


MEL = AudioSpec("mel")


@dataclass(frozen=True)
class BenchModel:
    """A configuration ``talkfreq bench`` measures (random weights: cost only).

    ``config`` / ``tiny_config``: a run config of the kind's ``run`` (relative to the packaged ``configs/``), or the
    network's own config as a mapping; ``overrides`` are dotted keys applied to it. ``refiner``: for a generator,
    the bench name of the refiner at its face size; the two make a pipeline that is timed end to end.
    """

    config: str | Mapping[str, Any]
    tiny_config: str | Mapping[str, Any]
    overrides: tuple[str, ...] = ()
    tiny_overrides: tuple[str, ...] = ()
    refiner: Optional[str] = None


Ref = Any  # a "module:attr" path, or the object itself


def _resolve(ref: Ref) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ModelKind:
    """One kind of network (see the module docstring). Adapters may be import paths or callables:

    - ``forward(model, *, reference, masked, audio, mask) -> (B,3,S,S)``: a generator on (B,3,S,S) [-1, 1] images
      (``masked``: the target with the hidden pixels mid-grey), (B, *window) audio and the (B,1,S,S) mask;
    - ``audio(config) -> AudioSpec`` (default: the mel window; a kind with this adapter has ``audio_len`` /
      ``audio_dim`` in its config, which stage-1 training sets from ``data.audio``);
    - ``dub_mask(config) -> "half" | "lower"`` (default ``half``).
    """

    name: str  # the value of ``model:`` in a stage-1 run config, and that config's section for this network
    role: Role
    model: Ref  # the nn.Module class (PretrainedMixin: from_pretrained / save_pretrained, config=)
    run: Optional[str] = None  # the `talkfreq train` kind whose run config holds this network (section: ``section``)
    section: Optional[str] = None  # default: ``name``
    forward: Ref = None
    audio: Ref = None
    dub_mask: Ref = None
    one_shot: bool = False  # trained on full masks too (a portrait, no source video)
    published: Optional[str] = None  # the published file format it reads (talkfreq.models.published)
    published_config: Mapping[str, Any] = field(default_factory=dict)  # that file's input convention
    bench: Mapping[str, BenchModel] = field(default_factory=dict)

    @property
    def cls(self) -> type:
        return _resolve(self.model)

    @property
    def config_section(self) -> str:
        return self.section or self.name

    def generate(self, model, *, reference, masked, audio, mask):
        """The generator ``model`` on talkfreq's tensors (see :class:`ModelKind`)."""
        return _resolve(self.forward)(model, reference=reference, masked=masked, audio=audio, mask=mask)

    def audio_spec(self, config: Any) -> AudioSpec:
        return MEL if self.audio is None else _resolve(self.audio)(config)

    def mask_for_dubbing(self, config: Any) -> str:
        return "half" if self.dub_mask is None else _resolve(self.dub_mask)(config)


_BUILTIN: dict[str, ModelKind] = {k.name: k for k in (
    ModelKind(
        "freak", "generator", "talkfreq.models.freak:FREAK", run="stage1", forward="talkfreq.models.freak:generate",
        audio="talkfreq.models.freak:audio_spec", dub_mask="talkfreq.models.freak:dub_mask", one_shot=True,
        bench={"FREAK-256": BenchModel("stage1/freak_256.yaml", "stage1/tiny_freak.yaml", refiner="SOVQAE-256"),
               "FREAK-512": BenchModel("stage1/freak_512.yaml", "stage1/tiny_freak.yaml",
                                       tiny_overrides=("freak.image_size=128",), refiner="SOVQAE-512")}),
    ModelKind(
        "wav2lip", "generator", "talkfreq.models.wav2lip:Wav2Lip", run="stage1",
        forward="talkfreq.models.wav2lip:generate", published="wav2lip",
        # what the original training and inference feed: OpenCV BGR frames / 255, the target's lower half black
        published_config={"image_size": 96, "color_order": "bgr", "mask_fill": 0.0},
        bench={"Wav2Lip-96": BenchModel("stage1/wav2lip_96.yaml", "stage1/tiny_wav2lip.yaml", refiner="SOVQAE-96")}),
    ModelKind(
        "syncnet", "expert", "talkfreq.models.syncnet:SyncNet", run="syncnet", section="model",
        published="lipsync_expert",
        published_config={"image_size": 96, "width": 512, "color_order": "bgr", "pixel_range": "0..1"},
        bench={"SyncNet-96": BenchModel("stage1/syncnet.yaml", "stage1/tiny_syncnet.yaml")}),
    ModelKind("syncnet_v2", "expert", "talkfreq.models.syncnet_v2:SyncNetV2", published="syncnet_v2"),
    # a refiner has the face size of its stage 1 (infer checks it), hence SOVQAE-96 beside Wav2Lip-96
    ModelKind(
        "sovqae", "refiner", "talkfreq.models.sovqae:SOVQAE", run="refiner",
        bench={"SOVQAE-256": BenchModel("refiner/sovqae_256.yaml", "refiner/tiny.yaml",
                                        tiny_overrides=("sovqae.image_size=64",)),
               "SOVQAE-512": BenchModel("refiner/sovqae_512.yaml", "refiner/tiny.yaml",
                                        tiny_overrides=("sovqae.image_size=128",)),
               "SOVQAE-96": BenchModel("refiner/sovqae_256.yaml", "refiner/tiny.yaml", ("sovqae.image_size=96",),
                                       ("sovqae.image_size=96",))}),
)}
_KINDS: dict[str, ModelKind] = dict(_BUILTIN)


def register(kind: ModelKind) -> ModelKind:
    """Add (or replace) a kind; returns it. A module defining a new network calls this at import."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a registered kind (a built-in one comes back as it was)."""
    _KINDS.pop(name, None)
    if name in _BUILTIN:
        _KINDS[name] = _BUILTIN[name]


def names(role: Role | None = None) -> list[str]:
    """The kinds' names, of ``role`` only when given, in registration order (no class is imported)."""
    return [k.name for k in _KINDS.values() if role is None or k.role == role]


def get(name: str, *, role: Role | None = None, source: str = "model") -> ModelKind:
    """The kind ``name``; a one-line TalkfreqError naming ``source`` and the choices when there is none of that
    ``role``."""
    kind = _KINDS.get(name)
    if kind is None or (role is not None and kind.role != role):
        raise TalkfreqError(f"{source}: unknown {role or 'model'} kind {name!r}; choose one of "
                            f"{', '.join(names(role))}")
    return kind


def _class_name(ref: Ref) -> str:
    return ref.partition(":")[2] if isinstance(ref, str) else ref.__name__


def by_class_name(class_name: str) -> ModelKind | None:
    """The kind whose class is called ``class_name`` (what a saved ``config.json`` records), or None."""
    return next((k for k in _KINDS.values() if _class_name(k.model) == class_name), None)


def kind_of(model: Any) -> ModelKind:
    """The kind of a network object (its class or a subclass of it)."""
    for k in _KINDS.values():
        if _class_name(k.model) in {c.__name__ for c in type(model).__mro__} and isinstance(model, k.cls):
            return k
    raise TalkfreqError(f"{type(model).__name__} is not a registered talkfreq model "
                        f"(talkfreq.models.registry.register)")


def by_published(fmt: str) -> ModelKind:
    """The kind that reads the published file format ``fmt`` (``wav2lip``, ``lipsync_expert``, ``syncnet_v2``)."""
    kind = next((k for k in _KINDS.values() if k.published == fmt), None)
    if kind is None:
        raise TalkfreqError(f"no talkfreq model reads published {fmt} files")
    return kind


def bench_models() -> dict[str, tuple[ModelKind, BenchModel]]:
    """Every configuration ``talkfreq bench`` can measure: bench name -> (kind, how to build it)."""
    return {name: (k, spec) for k in _KINDS.values() for name, spec in k.bench.items()}


def class_names(role: Role | None = None) -> list[str]:
    """The class names of the kinds (of ``role``), without importing them: for help texts."""
    return [_class_name(k.model) for k in _KINDS.values() if role is None or k.role == role]


def bench_pipelines() -> dict[str, tuple[str, str]]:
    """name -> (stage-1 bench model, refiner bench model): every benchmarked generator that names its refiner."""
    return {name: (name, spec.refiner) for name, (kind, spec) in bench_models().items()
            if kind.role == "generator" and spec.refiner}


def plugin_modules() -> list[str]:
    """The modules that registered kinds beyond the built-in ones (a child process imports them to see them)."""
    out = []
    for k in _KINDS.values():
        if _BUILTIN.get(k.name) is not k:
            ref = k.model
            out.append(ref.partition(":")[0] if isinstance(ref, str) else ref.__module__)
    return list(dict.fromkeys(out))

