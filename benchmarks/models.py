"""Cost of the talkfreq networks per frame: parameters, GFLOPs and forward frames/s (issues 3 and 4).

Models are built from the training configs, so the benchmark measures exactly what those configs train:
FREAK-256 / FREAK-512 (configs/stage1/freak_*.yaml), Wav2Lip-96 (wav2lip_96.yaml), SyncNet-96 (syncnet.yaml) and the
SOVQAE-256 refiner (configs/refiner/sovqae_256.yaml); ``--tiny`` uses the tiny test configs instead (a smoke run).

- **FLOPs** are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 forward, in its convention:
  one multiply-add = 2 FLOPs (FLOPs = 2 x MACs). It counts matmuls, convolutions and attention only; element-wise
  ops, norms and FFTs (FREAK's VEFM/AVFM) are not counted, so those numbers are lower bounds.
- **frames/s**: ``batch x iterations / seconds`` of ``forward`` under ``torch.inference_mode`` in eval mode, after
  a warm-up, at each batch size, on the CPU (with ``torch.get_num_threads()`` threads) and on CUDA when available.
  A measurement stops after ``--max-iters`` iterations or ``--max-seconds`` (at least one iteration), and a batch
  whose single iteration is predicted (from batch 1) to take longer than ``--max-iter-seconds`` is skipped; the
  table says which.
- One "frame" is one generated face for FREAK/Wav2Lip/SOVQAE; for SyncNet it is one forward of a 5-frame window
  with its mel window (LSE scoring slides one window per frame, so this is also its cost per video frame).

    flock /tmp/talkfreq-heavy.lock .venv/bin/python benchmarks/models.py [--quick] [--json PATH] [--batches 1,16]
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]

# name -> (kind, config file, tiny config file, tiny overrides): kind says how to build the model and its inputs
MODELS: dict[str, tuple[str, str, str, list[str]]] = {
    "FREAK-256": ("freak", "configs/stage1/freak_256.yaml", "configs/stage1/tiny_freak.yaml", []),
    "FREAK-512": ("freak", "configs/stage1/freak_512.yaml", "configs/stage1/tiny_freak.yaml",
                  ["freak.image_size=128"]),
    "Wav2Lip-96": ("wav2lip", "configs/stage1/wav2lip_96.yaml", "configs/stage1/tiny_wav2lip.yaml", []),
    "SyncNet-96": ("syncnet", "configs/stage1/syncnet.yaml", "configs/stage1/tiny_syncnet.yaml", []),
    "SOVQAE-256": ("sovqae", "configs/refiner/sovqae_256.yaml", "configs/refiner/tiny.yaml", []),
}
RATIOS = (("FREAK-256", "Wav2Lip-96"), ("SOVQAE-256", "FREAK-256"))


@dataclass
class Bench:
    """A model in eval mode and a function making its forward inputs for a batch size on a device."""

    name: str
    size: int
    model: Any
    inputs: Callable[[int, Any], tuple]


def build(name: str, *, tiny: bool = False) -> Bench:
    """The model ``name`` of :data:`MODELS`, built from its training config (random weights: cost only)."""
    import torch

    from talkfreq.training.registry import load_run_config

    kind, file, tiny_file, tiny_over = MODELS[name]
    path = REPO / (tiny_file if tiny else file)
    over = tiny_over if tiny else []

    def rand(*shape):
        return lambda b, dev: torch.rand(b, *shape, device=dev) * 2 - 1

    if kind in ("freak", "wav2lip"):
        from talkfreq.models import FREAK, Wav2Lip
        from talkfreq.training.stage1 import resolve_audio

        cfg = resolve_audio(load_run_config("stage1", path, over), speech_dim=0)  # mel audio, as trained
        if kind == "freak":
            f = cfg.freak
            s, img, audio = f.image_size, rand(3, f.image_size, f.image_size), rand(f.audio_len, f.audio_dim)
            mask = lambda b, dev: torch.ones(b, 1, s, s, device=dev)  # noqa: E731 - one-shot; the cost is the same
            return Bench(name, s, FREAK(config=f).eval(),
                         lambda b, dev: (img(b, dev), img(b, dev), audio(b, dev), mask(b, dev)))
        s = cfg.wav2lip.image_size
        return Bench(name, s, Wav2Lip(config=cfg.wav2lip).eval(),
                     lambda b, dev: (rand(6, s, s)(b, dev), rand(1, 80, 16)(b, dev)))
    if kind == "syncnet":
        from talkfreq.models import SyncNet

        cfg = load_run_config("syncnet", path, over).model
        s = cfg.image_size
        return Bench(name, s, SyncNet(config=cfg).eval(),
                     lambda b, dev: (rand(15, s // 2, s)(b, dev), rand(1, 80, 16)(b, dev)))
    from talkfreq.models import SOVQAE

    cfg = load_run_config("refiner", path, over).sovqae
    s = cfg.image_size
    return Bench(name, s, SOVQAE(config=cfg).eval(), lambda b, dev: (rand(3, s, s)(b, dev),))


def count_flops(bench: Bench) -> int:
    """FLOPs (2 x MACs) of one batch-1 forward on the CPU, as counted by FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = bench.inputs(1, "cpu")
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        bench.model(*x)
    return int(counter.get_total_flops())


def frames_per_second(bench: Bench, *, batch: int, device: str, warmup: int, max_iters: int,
                      max_seconds: float) -> dict[str, Any]:
    """Forward throughput at ``batch`` on ``device``: {fps, iters, seconds, capped (stopped by the time cap)}."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    x = bench.inputs(batch, device)
    with torch.inference_mode():
        for _ in range(warmup):
            bench.model(*x)
        sync()
        t0, iters = time.perf_counter(), 0
        while iters < max_iters:
            bench.model(*x)
            sync()
            iters += 1
            if time.perf_counter() - t0 >= max_seconds:
                break
        seconds = time.perf_counter() - t0
    return {"fps": batch * iters / seconds, "iters": iters, "seconds": seconds,
            "capped": iters < max_iters}


def measure(bench: Bench, *, devices: list[str], batches: list[int], quick: bool, max_seconds: float,
            max_iter_seconds: float, progress=None) -> dict[str, Any]:
    """Parameters, GFLOPs/frame and frames/s per (device, batch) of one model."""
    params = sum(p.numel() for p in bench.model.parameters())
    flops = count_flops(bench)
    row: dict[str, Any] = {"model": bench.name, "size": bench.size, "params": params,
                           "gflops_per_frame": flops / 1e9, "speed": {}}
    for device in devices:
        model = bench.model.to(device)
        b1_seconds: Optional[float] = None
        for batch in sorted(batches):
            key = f"{device.split(':')[0]}_b{batch}"
            if progress is not None:
                progress(f"{bench.name} {key}")
            predicted = None if b1_seconds is None else b1_seconds * batch
            if predicted is not None and predicted > max_iter_seconds:
                row["speed"][key] = {"fps": None, "skipped": f"one iteration predicted at ~{predicted:.0f} s"}
                continue
            # a slow model gets one warm-up iteration; fast ones a few (first calls pay allocation and kernel setup)
            warmup = 1 if quick or (predicted or 0) > 1.0 else 3
            r = frames_per_second(bench, batch=batch, device=device, warmup=warmup,
                                  max_iters=5 if quick else 50, max_seconds=max_seconds)
            row["speed"][key] = r
            if b1_seconds is None:
                b1_seconds = r["seconds"] / r["iters"] / batch  # per-frame seconds of the smallest batch
        bench.model.to("cpu")
    return row


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cost per frame of each pair in :data:`RATIOS`: GFLOPs ratio and time ratio (inverse fps) per speed key."""
    by = {r["model"]: r for r in rows}
    out = []
    for a, b in RATIOS:
        if a not in by or b not in by:
            continue
        ra, rb = by[a], by[b]
        times = {}
        for key in ra["speed"]:
            fa, fb = ra["speed"][key].get("fps"), rb["speed"].get(key, {}).get("fps")
            times[key] = fb / fa if fa and fb else None  # time per frame a / b = fps b / fps a
        out.append({"pair": f"{a} / {b}", "gflops": ra["gflops_per_frame"] / rb["gflops_per_frame"],
                    "time": times})
    return out


def format_report(rows: list[dict[str, Any]], pair_ratios: list[dict[str, Any]]) -> str:
    """Plain-text tables (pastes into RESULTS.md)."""
    keys = list(dict.fromkeys(k for r in rows for k in r["speed"]))
    head = f"{'model':12} {'size':>4} {'params M':>9} {'GFLOPs/frame':>12} " + " ".join(
        f"{'fps ' + k:>13}" for k in keys)
    lines = [head, "-" * len(head)]
    notes = []
    for r in rows:
        cells = []
        for k in keys:
            s = r["speed"].get(k)
            if s is None or s.get("fps") is None:
                cells.append(f"{'skipped':>13}")
                if s is not None:
                    notes.append(f"{r['model']} {k}: skipped, {s['skipped']}")
                continue
            mark = "*" if s["capped"] else " "
            cells.append(f"{s['fps']:12.2f}{mark}")
            if s["capped"]:
                notes.append(f"{r['model']} {k}: time cap hit, {s['iters']} iteration(s) in {s['seconds']:.1f} s")
        lines.append(f"{r['model']:12} {r['size']:4d} {r['params'] / 1e6:9.2f} {r['gflops_per_frame']:12.2f} "
                     + " ".join(cells))
    lines.append("")
    lines.append("FLOPs = 2 x MACs (FlopCounterMode; matmul/conv/attention only, FFTs and element-wise ops excluded)")
    for p in pair_ratios:
        t = ", ".join(f"{k} {v:.2f}x" if v else f"{k} n/a" for k, v in p["time"].items())
        lines.append(f"cost per frame {p['pair']}: GFLOPs {p['gflops']:.2f}x; time {t}")
    lines += [f"* {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    import torch
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 warm-up, at most 5 iterations / 3 s per measurement")
    ap.add_argument("--tiny", action="store_true", help="the tiny test configs instead of the real ones (smoke)")
    ap.add_argument("--json", type=Path, default=None, help="also save the numbers here")
    ap.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    ap.add_argument("--max-seconds", type=float, default=None, help="time cap per measurement (default 10, quick 3)")
    ap.add_argument("--max-iter-seconds", type=float, default=120.0,
                    help="skip a batch whose one iteration is predicted to take longer than this")
    ap.add_argument("--no-cuda", action="store_true")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    batches = [int(b) for b in args.batches.split(",")]
    max_seconds = args.max_seconds if args.max_seconds is not None else (3.0 if args.quick else 10.0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    console = Console(stderr=True)

    rows = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("build", total=None)
        for name in names:
            progress.update(task, description=f"{name}: build + count FLOPs")
            torch.manual_seed(0)
            bench = build(name, tiny=args.tiny)
            rows.append(measure(bench, devices=devices, batches=batches, quick=args.quick, max_seconds=max_seconds,
                                max_iter_seconds=args.max_iter_seconds,
                                progress=lambda d: progress.update(task, description=d)))
            del bench
    pair_ratios = ratios(rows)
    setup = (f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {platform.machine()}"
             + (f", CUDA {torch.cuda.get_device_name(0)}" if "cuda" in devices else ", no CUDA")
             + (", tiny configs" if args.tiny else "") + (", quick" if args.quick else "")
             + f"; cap {max_seconds:g} s or {5 if args.quick else 50} iterations per measurement")
    print(setup)
    print(format_report(rows, pair_ratios))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"setup": setup, "models": rows, "ratios": pair_ratios}, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
