"""``talkfreq bench``: what the default models cost per frame and how fast the whole pipeline runs.

Models are randomly initialised from the repository's training configs (speed does not depend on training; ``tiny``
uses the tiny test configs). For each pipeline of :func:`pipelines` (stage 1 + the SOVQAE refiner at the same face
size) it measures:

- **per stage**: frames/s and latency (the wall time of one batch, which is what a frame waits in that stage) of the
  exact call the pipeline makes (``stage1_forward`` on a half mask, ``refine_tensor``), under the run's
  :class:`~talkfreq.pipeline.accel.AccelConfig` (dtype, channels-last, compile), over a sweep of batch sizes; peak
  host RSS (Linux VmHWM, reset before each model) and peak GPU memory (``max_memory_allocated``) while it ran;
- **end to end**: the real :func:`~talkfreq.pipeline.infer.infer` dubbing the first ``seconds`` of a real clip with
  its own audio (every stage: both decodes, Haar detection, crops, networks, paste, encode, model preparation), at
  batch 1 (streaming) and at the pipeline's best batch (the sweep's best combined stage-1 + refiner throughput), each
  run in a fresh subprocess so its peak RSS is its own; with ``torch.compile`` on, a first run warms the compiler and
  the second is timed;
- **GFLOPs per frame** counted by ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs; matmul,
  convolution and attention only - FFTs and element-wise ops are not counted, so FREAK's numbers are lower bounds)
  and the **fraction of the device's peak** reached: GFLOPs/frame x frames/s over a peak from
  :data:`GPU_PEAK_TFLOPS` (NVIDIA data sheets, dense) on a GPU, or on the CPU over a matmul microbenchmark at the
  run's dtype, timed in the same process.

Targets shown pass/fail (the budget the default models were sized to): refiner GFLOPs <= stage-1 GFLOPs; on the
CPU, end-to-end FREAK-256 + SOVQAE >= 0.5x the Wav2Lip-96 generator alone (both best batches of this run); on CUDA,
end to end >= 60 fps at 256 px and >= 25 fps at 512 px. The measurement plan (subprocesses, VmHWM, the best-batch
rule, the peak table) is ours.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from talkfreq.errors import ConfigError, TalkfreqError, require_file
from talkfreq.model_cost import build, clip_head, count_flops, cpu_matmul_peak, cpu_model, gpu_peak, sweep
from talkfreq.models import registry
from talkfreq.models._io import config_to_dict
from talkfreq.pipeline.accel import AccelConfig, prepare_models, resolve_accel


def pipelines() -> dict[str, tuple[str, str]]:
    """name -> (stage-1 model, refiner) of every pipeline bench can time end to end
    (:func:`talkfreq.models.registry.bench_pipelines`: FREAK-256, FREAK-512, Wav2Lip-96, any registered one's)."""
    return registry.bench_pipelines()


CPU_TARGET = ("FREAK-256", "Wav2Lip-96", 0.5)  # end-to-end pipeline, generator alone, minimum ratio
GPU_TARGETS = {"FREAK-256": 60.0, "FREAK-512": 25.0}  # end-to-end frames/s at 256 and 512 px
DEFAULT_BATCHES = {"cpu": [1, 4, 16], "cuda": [1, 8, 32, 64]}


@dataclass
class BenchConfig:
    """Settings of ``talkfreq bench``; ``--quick`` (:func:`bench_config`) applies :data:`QUICK` on top."""

    video: str = ""  # end-to-end input, dubbed with its own audio (required: --video)
    seconds: float = 4.0  # of the video, from its start, per end-to-end run
    pipelines: list[str] = field(default_factory=lambda: list(pipelines()))
    batches: Optional[list[int]] = None  # stage sweep; None: DEFAULT_BATCHES of the device
    e2e_batches: list[str] = field(default_factory=lambda: ["1", "best"])  # sizes, or best (of the sweep)
    max_seconds: float = 10.0  # time cap of one stage measurement (at least one iteration)
    max_iters: int = 50
    max_iter_seconds: float = 60.0  # skip a batch whose one iteration is predicted to take longer
    peak_seconds: float = 1.0  # of the CPU matmul microbenchmark (best of its repetitions)
    device: str = "auto"
    accel: AccelConfig = field(default_factory=AccelConfig)
    tiny: bool = False  # the tiny test configs (a smoke run), not the default models
    quick: bool = False  # one warm-up iteration per measurement (set by QUICK)

    def __post_init__(self) -> None:
        known = pipelines()
        unknown = [p for p in self.pipelines if p not in known]
        if unknown or not self.pipelines:
            raise ConfigError(f"pipelines: {unknown[0] if unknown else 'none'!r} is not one of {', '.join(known)}")
        if self.batches is not None and (not self.batches or min(self.batches) < 1):
            raise ConfigError(f"batches must be positive integers, got {self.batches}")
        if any(b != "best" and not str(b).isdigit() for b in self.e2e_batches):
            raise ConfigError(f"e2e_batches: sizes or 'best', got {self.e2e_batches}")
        if not self.seconds > 0 or not self.max_seconds > 0 or self.max_iters < 1:
            raise ConfigError("seconds and max_seconds must be > 0 and max_iters >= 1")


QUICK: dict[str, Any] = {"seconds": 1.0, "batches": [1, 8], "e2e_batches": ["best"], "max_seconds": 2.0,
                         "max_iters": 10, "peak_seconds": 0.3, "quick": True}


def bench_config(file: Optional[Path], overrides: list[str], *, quick: bool = False, **options: Any) -> BenchConfig:
    """The config from defaults, ``file``, dotted ``overrides``, the :data:`QUICK` preset, then explicit ``options``
    (None = not given)."""
    from talkfreq.config import load_config

    extra = dict(QUICK) if quick else {}
    extra.update({k: v for k, v in options.items() if v is not None})
    return load_config(BenchConfig, file, overrides, extra=extra)


# ---------------------------------------------------------------------------------------------- child processes


def _reset_peak_rss() -> None:
    try:  # Linux: "5" resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_MSG = "@talkfreq-bench "  # prefix of the child's stdout lines meant for the parent


def _say(**msg: Any) -> None:
    print(_MSG + json.dumps(msg), flush=True)


def _setup(spec: dict):
    import torch

    from talkfreq.device import resolve_device

    device = resolve_device(spec["device"])
    accel = resolve_accel(AccelConfig(**spec["accel"]), device)
    if accel.threads is not None:
        torch.set_num_threads(accel.threads)
    return torch, device, accel


def _stages_child(spec: dict) -> dict:
    """Per-model cost in one process (peak RSS reset before each model): the header, then a row per model."""
    torch, device, accel = _setup(spec)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    if cuda:
        peak = gpu_peak(name, accel.dtype_name, tf32=torch.backends.cudnn.allow_tf32)
    else:
        _say(progress="CPU matmul peak")
        flops = cpu_matmul_peak(accel.dtype, seconds=spec["peak_seconds"])
        peak = (f"{accel.dtype_name} 1024x1024 matmul, measured", flops)
    header = {"device": name, "dtype": accel.dtype_name, "channels_last": accel.channels_last,
              "compile": accel.compile, "torch": torch.__version__, "python": platform.python_version(),
              "cpu": cpu_model(), "threads": torch.get_num_threads(), "peak_label": peak[0] if peak else None,
              "peak_flops": peak[1] if peak else None}
    rows, configs = {}, {}
    for model_name in spec["names"]:
        _reset_peak_rss()
        _say(progress=f"{model_name}: build, count FLOPs")
        torch.manual_seed(0)
        bench = build(model_name, tiny=spec["tiny"])
        row = {"size": bench.size, "params": sum(p.numel() for p in bench.model.parameters()),
               "gflops_per_frame": count_flops(bench) / 1e9}
        prepare_models(bench.model, accel=accel)
        speed = sweep(bench, device=str(device), batches=spec["batches"], quick=spec["quick"],
                      max_iters=spec["max_iters"], max_seconds=spec["max_seconds"],
                      max_iter_seconds=spec["max_iter_seconds"], accel=accel,
                      progress=lambda d: _say(progress=d))
        rows[model_name] = row | {"speed": {str(b): r for b, r in speed.items()}, "peak_rss_mb": _peak_rss_mb()}
        configs[model_name] = config_to_dict(bench.model.config)
        del bench
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return {"header": header, "models": rows, "configs": configs}


def _e2e_child(spec: dict) -> dict:
    """One end-to-end ``infer`` run (a warm-up run first when compiling); its process's peak RSS and GPU memory."""
    torch, device, accel = _setup(spec)
    from talkfreq.pipeline.infer import InferConfig, infer

    torch.manual_seed(0)
    configs = spec.get("configs", {})
    stage1, refiner = (build(n, tiny=spec["tiny"], config=configs.get(n)).model
                       for n in (spec["stage1"], spec["refiner"]))
    cfg = InferConfig(device=spec["device"], batch_size=spec["batch"], accel=AccelConfig(**spec["accel"]))
    runs = 2 if accel.compile else 1
    for _ in range(runs):
        res = infer(spec["video"], audio=spec["video"], stage1=stage1, refiner=refiner, out=spec["out"], cfg=cfg)
    cuda = device.type == "cuda"
    return {"frames": res.frames, "seconds": res.seconds, "fps": res.frames_per_second, "timings": res.timings,
            "warmup_runs": runs - 1, "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads(),
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def _run_child(spec: dict, progress: Callable[[str], None]) -> dict:
    """Run ``spec`` in a fresh interpreter; its result, or {"error": the last line of its stderr}."""
    cmd = [sys.executable, "-m", "talkfreq.bench", json.dumps(spec)]
    result = None
    with tempfile.TemporaryFile("w+") as err:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True) as proc:
            for line in proc.stdout:
                if line.startswith(_MSG):
                    msg = json.loads(line[len(_MSG):])
                    if "progress" in msg:
                        progress(msg["progress"])
                    result = msg.get("result", result)
        if proc.returncode != 0 or result is None:
            err.seek(0)
            tail = [ln for ln in err.read().splitlines() if ln.strip()]
            return {"error": tail[-1].strip() if tail else f"exit status {proc.returncode}"}
    return result


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class BenchResult:
    """What ``talkfreq bench`` measured (:meth:`to_dict` is the ``--json`` file)."""

    header: dict[str, Any]
    models: dict[str, dict]  # model name -> size, params, gflops_per_frame, speed {batch: ...}, peak_rss_mb
    pipelines: list[dict]  # name, stage1, refiner, best_batch, e2e {batch: infer row or {"error"}}
    targets: list[dict]  # target, value, need ("<= 1"), text, passed (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combined_fps(s1: dict, ref: dict, batch: int) -> Optional[float]:
    """Frames/s of stage 1 then the refiner at ``batch`` (1 / summed seconds per frame), None if either is missing."""
    f1, f2 = (m["speed"].get(str(batch), {}).get("fps") for m in (s1, ref))
    return 1.0 / (1.0 / f1 + 1.0 / f2) if f1 and f2 else None


def best_batch(s1: dict, ref: dict) -> int:
    """The sweep's batch with the best :func:`combined_fps` (the smaller one on a tie)."""
    measured = [(combined_fps(s1, ref, int(b)), -int(b)) for b in s1["speed"]]
    _, neg = max((m for m in measured if m[0] is not None), default=(None, -1))
    return -neg


def _best_fps(runs: dict) -> Optional[float]:
    return max((r["fps"] for r in runs.values() if r.get("fps")), default=None)


def evaluate_targets(models: dict[str, dict], pipelines: list[dict], *, cuda: bool) -> list[dict]:
    """The speed and cost targets on this run's numbers (see the module docstring)."""
    out = []
    for p in pipelines:
        g1, g2 = models[p["stage1"]]["gflops_per_frame"], models[p["refiner"]]["gflops_per_frame"]
        out.append({"target": f"{p['refiner']} GFLOPs/frame <= {p['stage1']}'s", "value": g2 / g1, "need": "<= 1",
                    "text": f"{g2:.2f} / {g1:.2f} = {g2 / g1:.2f}", "passed": g2 <= g1})
    by = {p["name"]: p for p in pipelines}
    pipe, alone_name, need = CPU_TARGET
    if not cuda and pipe in by and alone_name in models:
        e2e, alone = _best_fps(by[pipe]["e2e"]), _best_fps(models[alone_name]["speed"])
        ratio = e2e / alone if e2e and alone else None
        out.append({"target": f"CPU: end-to-end {pipe} + SOVQAE / {alone_name} generator alone (best batches, "
                              f"same run)", "value": ratio, "need": f">= {need:g}",
                    "passed": None if ratio is None else ratio >= need,
                    "text": f"{e2e or 0:.2f} / {alone or 0:.2f} fps = {ratio or 0:.2f}"})
    for name, need in GPU_TARGETS.items():
        if cuda and name in by:
            fps = _best_fps(by[name]["e2e"])
            out.append({"target": f"GPU: end-to-end {name} + SOVQAE frames/s", "value": fps, "need": f">= {need:g}",
                        "passed": None if fps is None else fps >= need, "text": f"{fps or 0:.1f} fps"})
    return out


def model_names(chosen: list[str], *, cuda: bool) -> list[str]:
    """The models a run measures: each pipeline's two, and on the CPU the CPU target's yardstick (on a GPU it would
    only cost compile time: the GPU targets do not use it)."""
    known = pipelines()
    names = list(dict.fromkeys(n for p in chosen for n in known[p]))
    if not cuda and CPU_TARGET[0] in chosen and CPU_TARGET[1] not in names:
        names.append(CPU_TARGET[1])
    return names


def run_bench(cfg: BenchConfig, *, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure every pipeline of ``cfg`` (see the module docstring); ``progress(text)`` hears what runs now."""
    from talkfreq.device import resolve_device

    say = progress or (lambda text: None)
    if not cfg.video:
        raise ConfigError("bench: give the end-to-end input clip with --video FILE (a talking-head video with audio)")
    video = require_file(cfg.video, "video")
    device = resolve_device(cfg.device)
    resolve_accel(cfg.accel, device)  # an impossible dtype is a one-line error before any work
    # a child process sees the kinds registered beyond the built-in ones by importing their modules
    common = {"device": cfg.device, "accel": asdict(cfg.accel), "tiny": cfg.tiny,
              "plugins": registry.plugin_modules()}
    names = model_names(cfg.pipelines, cuda=device.type == "cuda")
    with tempfile.TemporaryDirectory(prefix="talkfreq-bench-") as tmp:
        say(f"cut the first {cfg.seconds:g} s of {video.name}")
        clip = clip_head(video, cfg.seconds, Path(tmp) / "clip.mp4")
        staged = _run_child(common | {
            "task": "stages", "names": names, "batches": cfg.batches or DEFAULT_BATCHES[device.type],
            "quick": cfg.quick, "max_iters": cfg.max_iters, "max_seconds": cfg.max_seconds,
            "max_iter_seconds": cfg.max_iter_seconds, "peak_seconds": cfg.peak_seconds}, say)
        if "error" in staged:
            raise TalkfreqError(f"bench: measuring the models failed: {staged['error']}")
        measured, runs, known = staged["models"], [], pipelines()
        for name in cfg.pipelines:
            s1, ref = known[name]
            best = best_batch(measured[s1], measured[ref])
            e2e = {}
            for b in dict.fromkeys(best if b == "best" else int(b) for b in cfg.e2e_batches):
                say(f"end to end: {name} + {ref}, batch {b}")
                e2e[str(b)] = _run_child(common | {"task": "e2e", "stage1": s1, "refiner": ref, "batch": b,
                                                   "configs": {n: staged["configs"][n] for n in (s1, ref)},
                                                   "video": str(clip), "out": str(Path(tmp) / "out.mp4")}, say)
            runs.append({"name": name, "stage1": s1, "refiner": ref, "best_batch": best, "e2e": e2e})
    header = staged["header"] | {"video": str(video), "seconds": cfg.seconds, "tiny": cfg.tiny, "quick": cfg.quick}
    return BenchResult(header=header, models=measured, pipelines=runs,
                       targets=evaluate_targets(measured, runs, cuda=device.type == "cuda"))


def write_json(result: BenchResult, path: Path) -> None:
    """``result`` as JSON at ``path``, atomically (a temp file renamed into place)."""
    from talkfreq.io.files import write_json as write_file

    write_file(path, result.to_dict())


def _num(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report(result: BenchResult, console) -> None:
    """Header, one table (per stage at the smallest and the best batch, then end to end) and the targets."""
    from rich import box
    from rich.table import Table

    h, peak = result.header, result.header["peak_flops"]
    console.print(f"device {h['device']}, dtype {h['dtype']}" + (", channels-last" if h["channels_last"] else "")
                  + (", torch.compile" if h["compile"] else "") + f"; torch {h['torch']}, python {h['python']}; "
                  f"CPU {h['cpu']}, {h['threads']} torch threads", soft_wrap=True)
    console.print(f"peak: {h['peak_label']}, {peak / 1e9:,.0f} GFLOP/s" if peak else "peak: not known for this device",
                  soft_wrap=True)
    console.print(f"models: random weights, {'tiny test' if h['tiny'] else 'default'} configs; end to end: the "
                  f"first {h['seconds']:g} s of {Path(h['video']).name} dubbed with its own audio"
                  + (" (quick)" if h["quick"] else ""), soft_wrap=True)
    table = Table("pipeline / stage", "GFLOPs", "batch", "frames/s", "ms/frame", "latency ms", "% peak", "RSS MB",
                  "GPU MB", box=box.SIMPLE_HEAD, title="talkfreq bench")
    notes = []

    def add(label: str, gflops: float, batch: str, r: dict) -> None:
        fps = r.get("fps")
        if fps is None:
            notes.append(f"{label.strip()} batch {batch}: {r.get('error') or r.get('skipped') or 'not measured'}")
        table.add_row(label, f"{gflops:.2f}", batch, _num(fps, ".2f") if fps else ("failed" if "error" in r else
                                                                                    "skipped"),
                      _num(1000 / fps if fps else None, ".1f"), _num(r.get("latency_ms"), ".1f"),
                      _num(100 * gflops * 1e9 * fps / peak if fps and peak else None, ".2f"),
                      _num(r.get("peak_rss_mb"), ".0f"), _num(r.get("gpu_peak_mb"), ".0f"))

    def stage_rows(label: str, name: str, best: str) -> None:
        m = result.models[name]
        for b in dict.fromkeys((min(m["speed"], key=int), best)):
            r = m["speed"].get(b) or {"skipped": "not in the sweep"}
            add(f"  {label} {name}", m["gflops_per_frame"], b, r | {"peak_rss_mb": m["peak_rss_mb"]})

    shown = set()
    for p in result.pipelines:
        table.add_row(f"[bold]{p['stage1']} + {p['refiner']}[/bold]")
        for label, name in (("stage 1", p["stage1"]), ("refiner", p["refiner"])):
            stage_rows(label, name, str(p["best_batch"]))
            shown.add(name)
        gflops = sum(result.models[n]["gflops_per_frame"] for n in (p["stage1"], p["refiner"]))
        for b, r in p["e2e"].items():
            add("  end to end", gflops, b, r)
    for name, m in result.models.items():  # the CPU target's yardstick when its pipeline was not asked for
        if name not in shown:
            table.add_row(f"[bold]{name}[/bold]")
            stage_rows("alone", name, max(m["speed"], key=lambda b: m["speed"][b].get("fps") or 0))
    console.print(table)
    console.print("GFLOPs: FlopCounterMode, 2 x MACs, matmul/conv/attention only (FFTs not counted: lower bounds); "
                  "latency: wall time of one batch through the stage; RSS: peak of the process while that model ran "
                  "(imports included), end to end: of the whole infer process", soft_wrap=True)
    for t in result.targets:
        verdict = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "not measured"}[t["passed"]]
        console.print(f"target {t['target']}: {t['text']} (need {t['need']}) {verdict}", soft_wrap=True)
    for n in notes:
        console.print(f"[yellow]note:[/yellow] {n}", soft_wrap=True)


def _child_main(arg: str) -> None:
    spec = json.loads(arg)
    for module in spec.get("plugins", ()):
        importlib.import_module(module)
    _say(result=(_stages_child if spec["task"] == "stages" else _e2e_child)(spec))
    sys.stderr.flush()
    os._exit(0)  # the result is out; tearing down torch + lightning takes seconds and measures nothing


if __name__ == "__main__":
    _child_main(sys.argv[1])
