"""Cost of one talkfreq network per frame: the benchmarked models, FLOP counting, timed sweeps and device peaks.

Shared by ``talkfreq bench`` (:mod:`talkfreq.bench`) and ``benchmarks/models.py``. Models are built from the
repository's training configs with random weights (speed does not depend on training); ``tiny`` uses the tiny test
configs. What is timed is the call the streaming pipeline makes (:func:`stage_call`).

- **FLOPs** are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 call in fp32 on the CPU, in
  its convention: one multiply-add = 2 FLOPs. It counts matmuls, convolutions and attention only; element-wise ops,
  norms and FFTs (FREAK's VEFM/AVFM) are not counted, so those numbers are lower bounds.
- **frames/s**: ``batch x iterations / seconds`` after a warm-up, under ``torch.inference_mode`` (and an
  :class:`~talkfreq.pipeline.accel.Accel`'s autocast when given); a measurement stops after ``max_iters``
  iterations or ``max_seconds`` (at least one iteration).
- **peaks**: a GPU's from :data:`GPU_PEAK_TFLOPS` (NVIDIA data sheets, dense); a CPU's measured by a matmul
  microbenchmark (:func:`cpu_matmul_peak`). The table and the microbenchmark are ours.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from talkfreq.config import packaged_config
from talkfreq.errors import TalkfreqError
from talkfreq.models import registry
from talkfreq.models.registry import BenchModel, ModelKind


def models() -> dict[str, tuple[ModelKind, BenchModel]]:
    """The benchmarked configurations: every ``bench`` entry of the registered kinds
    (:func:`talkfreq.models.registry.bench_models`), by name."""
    return registry.bench_models()


# dense TFLOP/s per GPU from NVIDIA's data sheets; fp32 convolutions run as TF32 when cuDNN allows it (torch default)
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100 SXM": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
}


@dataclass
class Bench:
    """A model in eval mode, its kind, and a function making the inputs of its pipeline call for (batch, device)."""

    name: str
    kind: ModelKind
    size: int
    model: Any
    inputs: Callable[..., tuple]


def _model_config(kind: ModelKind, source: str | Mapping[str, Any], overrides: list[str]) -> Any:
    """The network's config: the kind's section of a packaged run config, or a mapping, with dotted overrides."""
    from omegaconf import OmegaConf

    if not isinstance(source, str):
        return OmegaConf.merge(OmegaConf.create(dict(source)), OmegaConf.from_dotlist(overrides))
    from talkfreq.training.registry import load_run_config

    cfg = load_run_config(kind.run, packaged_config(source), overrides)
    if kind.run == "stage1":
        from talkfreq.training.stage1 import resolve_audio

        cfg = resolve_audio(cfg, speech_dim=0)  # mel audio, as trained
    return getattr(cfg, kind.config_section)


def build(name: str, *, tiny: bool = False, config: Optional[Mapping[str, Any]] = None) -> Bench:
    """The configuration ``name`` of :func:`models`, built from its config (random weights: cost only); ``config``:
    the network's config as already resolved (:func:`talkfreq.models._io.config_to_dict` of a built one), so the
    run config is not read again (nor its training module imported: bench's end-to-end processes start faster)."""
    import torch

    table = models()
    if name not in table:
        raise TalkfreqError(f"bench: unknown model {name!r}; choose one of {', '.join(table)}")
    kind, spec = table[name]
    if config is None:
        config, overrides = (spec.tiny_config, spec.tiny_overrides) if tiny else (spec.config, spec.overrides)
    else:
        overrides = []  # resolved already: the spec's overrides are in it
    config = _model_config(kind, config, list(overrides))
    model = kind.cls(config=config).eval()
    s = int(model.config.image_size)

    def rand(*shape):
        def make(b, dev, fmt=torch.contiguous_format):
            t = torch.rand(b, *shape, device=dev) * 2 - 1
            return t.contiguous(memory_format=fmt) if t.dim() == 4 else t
        return make

    img = rand(3, s, s)
    if kind.role == "generator":
        spec_a = kind.audio_spec(model.config)
        audio = rand(1, 80, 16) if spec_a.kind == "mel" else rand(2 * spec_a.context + 1, spec_a.dim)
        return Bench(name, kind, s, model, lambda b, dev, fmt=torch.contiguous_format: (
            img(b, dev, fmt), img(b, dev, fmt), audio(b, dev)))
    if kind.role == "expert":  # the Wav2Lip-style expert: lower halves of 5 frames, one mel window
        return Bench(name, kind, s, model, lambda b, dev, fmt=torch.contiguous_format: (
            rand(15, s // 2, s)(b, dev, fmt), rand(1, 80, 16)(b, dev)))
    return Bench(name, kind, s, model, lambda b, dev, fmt=torch.contiguous_format: (img(b, dev, fmt),))


def stage_call(bench: Bench, x: tuple):
    """One call of the model as the pipeline makes it (stage 1 on a half mask, the refiner's ``refine_tensor``)."""
    if bench.kind.role == "refiner":
        from talkfreq.pipeline.refine import refine_tensor

        return refine_tensor(bench.model, x[0])
    if bench.kind.role == "generator":
        from talkfreq.pipeline.inputs import stage1_forward

        return stage1_forward(bench.model, target=x[0], reference=x[1], audio=x[2], mask="half")
    return bench.model(*x)


def count_flops(bench: Bench) -> int:
    """FLOPs (2 x MACs) of one batch-1 call on the CPU in fp32, as counted by FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = bench.inputs(1, "cpu")
    counter = FlopCounterMode(display=False)
    with torch.inference_mode():
        stage_call(bench, x)  # not counted: one-off set-up on the first call (a VQ codebook's k-means init)
        with counter:
            stage_call(bench, x)
    return int(counter.get_total_flops())


def frames_per_second(bench: Bench, *, batch: int, device: str, warmup: int, max_iters: int, max_seconds: float,
                      accel=None) -> dict[str, Any]:
    """Throughput of :func:`stage_call` at ``batch``: {fps, iters, seconds, capped (by the time cap), latency_ms
    (one batch), gpu_peak_mb}; under ``accel`` (an :class:`~talkfreq.pipeline.accel.Accel`) when given."""
    import torch

    from talkfreq.pipeline.accel import inference

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fmt = torch.channels_last if accel is not None and accel.channels_last else torch.contiguous_format
    x = bench.inputs(batch, device, fmt)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with inference(accel) if accel is not None else torch.inference_mode():
        for _ in range(warmup):
            stage_call(bench, x)
        sync()
        t0, iters = time.perf_counter(), 0
        while iters < max_iters:
            stage_call(bench, x)
            sync()
            iters += 1
            if time.perf_counter() - t0 >= max_seconds:
                break
        seconds = time.perf_counter() - t0
    return {"fps": batch * iters / seconds, "iters": iters, "seconds": seconds, "capped": iters < max_iters,
            "latency_ms": 1000 * seconds / iters,
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def sweep(bench: Bench, *, device: str, batches: list[int], quick: bool, max_iters: int, max_seconds: float,
          max_iter_seconds: float, accel=None, progress: Callable[[str], None] | None = None) -> dict[int, dict]:
    """:func:`frames_per_second` at each batch size (ascending); a batch whose one iteration is predicted (from the
    smallest batch) to take longer than ``max_iter_seconds`` is skipped: {"fps": None, "skipped": why}."""
    out: dict[int, dict] = {}
    per_frame: Optional[float] = None
    for batch in sorted(batches):
        if progress is not None:
            progress(f"{bench.name} batch {batch}")
        predicted = None if per_frame is None else per_frame * batch
        if predicted is not None and predicted > max_iter_seconds:
            out[batch] = {"fps": None, "skipped": f"one iteration predicted at ~{predicted:.0f} s"}
            continue
        # a slow model gets one warm-up iteration, fast ones a few (first calls pay allocation and kernel set-up);
        # compiled ones at least three (compilation, then a possible recompilation for the new batch size)
        warmup = 1 if quick or (predicted or 0) > 1.0 else 3
        if accel is not None and accel.compile:
            warmup = max(warmup, 3)
        r = frames_per_second(bench, batch=batch, device=device, warmup=warmup, max_iters=max_iters,
                              max_seconds=max_seconds, accel=accel)
        out[batch] = r
        if per_frame is None:
            per_frame = r["seconds"] / r["iters"] / batch
    return out


def clip_head(video: Path, seconds: float, out: Path) -> Path:
    """The first ``seconds`` of ``video`` (re-encoded on the 25 fps timeline, with its audio)."""
    from talkfreq.io import VideoReader, VideoWriter, load_video_audio

    reader = VideoReader(video, fps=25.0)
    n = int(round(seconds * 25))
    wav = load_video_audio(video, duration=seconds)
    with VideoWriter(out, fps=25.0, width=reader.width, height=reader.height, audio=wav, sample_rate=16000) as w:
        for i, frame in enumerate(reader):
            if i >= n:
                break
            w.write(frame)
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_peak(name: str, dtype: str, *, tf32: bool) -> Optional[tuple[str, float]]:
    """(label, FLOP/s) of :data:`GPU_PEAK_TFLOPS` for a CUDA device name and the run's dtype name; None when the GPU
    is not in the table (H100/H200 NVL boards have their own, lower numbers and are left out)."""
    if "NVL" in name:
        return None
    key = next((k for k in ("H200", "A100") if k in name), None)
    if key is None and "H100" in name:
        key = "H100 PCIe" if "PCIE" in name.upper() else "H100 SXM"
    if key is None:
        return None
    kind = "tf32" if dtype == "fp32" and tf32 else dtype
    return f"{key} {kind} (data sheet)", GPU_PEAK_TFLOPS[key][kind] * 1e12


def cpu_matmul_peak(dtype, *, n: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of the fastest of repeated n x n matmuls at ``dtype`` with torch's current threads (best of, because
    other jobs on a shared machine only ever slow it down)."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    with torch.inference_mode():
        a @ b
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best
