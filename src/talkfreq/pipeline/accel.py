"""How the networks of the streaming pipelines run: compute dtype, memory format, ``torch.compile``, CPU threads and
host-device transfers (the GPU and CPU paths).

:class:`AccelConfig` is what a user sets (``infer`` and ``refine`` share it through
:class:`~talkfreq.pipeline.common.StreamConfig`; ``talkfreq bench`` uses it too); :func:`resolve_accel` turns it into an
:class:`Accel` for one device, which the pipeline code calls for everything device-specific:

- ``accel.autocast()``: autocast to the compute dtype (bf16/fp16), or nothing for fp32;
- ``accel.images(uint8 (B, H, W, 3))``: one uint8 host->device copy (from pinned memory on CUDA, asynchronous), then
  the float conversion on the device: (B, 3, H, W) float32 in [-1, 1], channels-last strided when asked;
- ``accel.to_u8(x)`` / ``accel.host(u8)``: network output of any dtype -> uint8 (B, H, W, 3), on the device, then
  on the host. Whatever the compute dtype, what leaves a network is float32 or uint8.
- :func:`prepare_models`: eval mode, the device, channels-last weights, ``torch.compile`` with an eager fallback.

Defaults (``auto``/None) are ours: on CUDA bf16 (when the GPU has it), channels-last and compile, the usual winners
for convolutional networks on tensor cores; on the CPU fp32, NCHW and eager, from ``benchmarks/accel_cpu.py`` on the
2-core AVX512-BF16 development CPU: bf16 autocast ran stage 1 + refiner at 0.7x of fp32 with the default 256 px
configs (GroupNorm and the FFT blocks stay fp32, so autocast adds casts around every conv) and channels-last was
within the noise (0.7x-1.06x); the numbers are in ``benchmarks/RESULTS.md``.

Compile: a failure of ``torch.compile`` shows only at the first call (no C++ compiler, an op the backend lacks ...),
so the compiled forward is wrapped: when it raises and the eager forward then succeeds on the same inputs, the module
switches to eager for good and warns once; when eager raises too, that error is the caller's and propagates.
SOVQAE compiles its encoder and decoder only: the quantiser is a nearest-neighbour search that
:func:`talkfreq.pipeline.refine.refine_tensor` runs in float32 outside autocast anyway.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from talkfreq.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class AccelConfig:
    """Inference speed settings; None / ``auto`` = the device's default (see the module docstring)."""

    dtype: str = "auto"  # auto | fp32 | bf16 | fp16; auto: bf16 on CUDA when supported, else fp32
    channels_last: Optional[bool] = None  # None: on for CUDA, off on the CPU
    compile: Optional[bool] = None  # torch.compile; None: on for CUDA, off on the CPU; failure -> eager + a warning
    threads: Optional[int] = None  # CPU intra-op threads (process-wide); None leaves torch's setting
    overlap: bool = True  # decode/crop and paste/encode in background threads while the networks run

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", *DTYPES):
            raise ConfigError(f"accel.dtype must be one of auto, {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"accel.threads must be >= 1 (or unset), got {self.threads}")


@dataclass(frozen=True)
class Accel:
    """An :class:`AccelConfig` resolved for one device: what actually runs."""

    device: torch.device
    dtype: torch.dtype
    channels_last: bool
    compile: bool
    threads: Optional[int]
    overlap: bool

    @classmethod
    def plain(cls, device: torch.device) -> Accel:
        """fp32, NCHW, eager, in order: the reference path the optimised one is measured against."""
        return cls(device=torch.device(device), dtype=torch.float32, channels_last=False, compile=False,
                   threads=None, overlap=False)

    @property
    def dtype_name(self) -> str:
        return next(k for k, v in DTYPES.items() if v == self.dtype)

    def autocast(self):
        """Autocast to the compute dtype on this device; a no-op context for fp32."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def to_device(self, array: np.ndarray) -> Tensor:
        """A host array on the device unchanged (dtype, shape); through pinned memory and asynchronous on CUDA."""
        t = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type != "cuda":
            return t.to(self.device)
        return t.pin_memory().to(self.device, non_blocking=True)

    def images(self, batch: np.ndarray | Tensor) -> Tensor:
        """uint8 (B, H, W, 3) RGB (host array or device tensor) -> (B, 3, H, W) float32 in [-1, 1] on the device.

        The same arithmetic as :func:`talkfreq.data.datasets.frames_to_tensor`, so fp32 results match it bit for
        bit; only uint8 crosses the bus (a quarter of float32).
        """
        u8 = self.to_device(batch) if isinstance(batch, np.ndarray) else batch.to(self.device)
        x = u8.float().div_(127.5).sub_(1.0).movedim(-1, -3)  # NHWC memory: already channels-last strided
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    @staticmethod
    def to_u8(x: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1], any float dtype -> uint8 (B, H, W, 3) on the same device (clamped, rounded, as
        :func:`talkfreq.data.refiner_data.tensor_to_uint8`)."""
        return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().movedim(-3, -1)

    def sync(self) -> None:
        """Wait for the device's queued work (so a stage's seconds are its own); a no-op on the CPU."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @staticmethod
    def host(u8: Tensor) -> np.ndarray:
        """A device tensor as a contiguous host array (waits for the device)."""
        return np.ascontiguousarray(u8.cpu().numpy())


def resolve_accel(cfg: AccelConfig, device: torch.device) -> Accel:
    """``cfg`` for ``device``: ``auto``/None filled in, impossible choices refused in one line (fp16 on the CPU,
    bf16 on a GPU without it)."""
    cuda = device.type == "cuda"
    if cfg.dtype == "auto":
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = DTYPES[cfg.dtype]
    if dtype == torch.float16 and not cuda:
        raise ConfigError(f"accel.dtype=fp16 needs a CUDA device (running on {device}); use bf16 or fp32 on the CPU")
    if dtype == torch.bfloat16 and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"accel.dtype=bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16 or fp32")
    return Accel(device=device, dtype=dtype,
                 channels_last=cuda if cfg.channels_last is None else bool(cfg.channels_last),
                 compile=cuda if cfg.compile is None else bool(cfg.compile),
                 threads=cfg.threads, overlap=bool(cfg.overlap))


class _EagerFallback:
    """A compiled forward that turns into the eager one when compiling fails (see the module docstring)."""

    def __init__(self, compiled: Callable, eager: Callable, name: str):
        self.compiled, self.eager, self.name = compiled, eager, name
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any backend failure; a real input error re-raises from eager below
            out = self.eager(*args, **kwargs)
            self.failed = True
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            warnings.warn(f"torch.compile of {self.name} failed ({type(exc).__name__}: {first[:200]}); running it "
                          f"eagerly", RuntimeWarning, stacklevel=2)
            return out


def _compile_forward(module: nn.Module, name: str) -> None:
    if isinstance(module.__dict__.get("forward"), _EagerFallback):
        return  # prepared before
    eager = module.forward
    try:
        compiled = torch.compile(eager)
    except Exception as exc:  # noqa: BLE001 - e.g. an unsupported Python or platform: eager, as when a call fails
        warnings.warn(f"torch.compile of {name} unavailable ({type(exc).__name__}: {exc}); running it eagerly",
                      RuntimeWarning, stacklevel=3)
        return
    module.forward = _EagerFallback(compiled, eager, name)  # an instance attribute: nn.Module.__call__ finds it


def _compile_targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    from talkfreq.models.sovqae import SOVQAE

    name = type(model).__name__
    if isinstance(model, SOVQAE):
        return [(model.encoder, f"{name}.encoder"), (model.decoder, f"{name}.decoder")]
    return [(model, name)]


def prepare_models(*models: Optional[nn.Module], accel: Accel) -> tuple[Optional[nn.Module], ...]:
    """Each model (None passes through) in eval mode on ``accel.device``, channels-last weights and compiled as
    ``accel`` says; the same objects, changed in place. Also applies ``accel.threads`` (process-wide)."""
    if accel.threads is not None:
        torch.set_num_threads(accel.threads)
    for model in models:
        if model is None:
            continue
        model.to(accel.device).eval()
        if accel.channels_last:
            model.to(memory_format=torch.channels_last)  # 4-D weights only; the rest is left as it is
        if accel.compile:
            for module, name in _compile_targets(model):
                _compile_forward(module, name)
    return models


@contextmanager
def inference(accel: Accel) -> Iterator[None]:
    """``torch.inference_mode`` and the accel's autocast together: the context every pipeline network call runs in."""
    with torch.inference_mode(), accel.autocast():
        yield
