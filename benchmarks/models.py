"""Cost of the talkfreq networks per frame: parameters, GFLOPs and forward frames/s (issues 3 and 4).

Models are built from the training configs, so the benchmark measures exactly what those configs train: the models
of :func:`talkfreq.model_cost.models` - FREAK-256 / FREAK-512 (configs/stage1/freak_*.yaml), Wav2Lip-96
(wav2lip_96.yaml), SyncNet-96 (syncnet.yaml) and the SOVQAE refiners at 256, 512 and 96 px (configs/refiner/
sovqae_*.yaml); ``--tiny`` uses the tiny test configs instead (a smoke run). Building, FLOP counting and timing are
:mod:`talkfreq.model_cost`'s, shared with ``talkfreq bench`` (which adds end-to-end runs and the targets).

- **FLOPs** are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 call, in its convention:
  one multiply-add = 2 FLOPs (FLOPs = 2 x MACs). It counts matmuls, convolutions and attention only; element-wise
  ops, norms and FFTs (FREAK's VEFM/AVFM) are not counted, so those numbers are lower bounds.
- **frames/s**: ``batch x iterations / seconds`` of the call the pipeline makes (stage 1 on a half mask, the
  refiner's ``refine_tensor``; SyncNet's forward) under ``torch.inference_mode`` in eval mode, after a warm-up, at
  each batch size, on the CPU (with ``torch.get_num_threads()`` threads) and on CUDA when available.
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
from pathlib import Path
from typing import Any

from talkfreq.model_cost import build, count_flops, models, sweep

RATIOS = (("FREAK-256", "Wav2Lip-96"), ("SOVQAE-256", "FREAK-256"))

MODELS = list(models())  # every configuration of the registry's bench entries


def measure(bench, *, devices: list[str], batches: list[int], quick: bool, max_seconds: float,
            max_iter_seconds: float, progress=None) -> dict[str, Any]:
    """Parameters, GFLOPs/frame and frames/s per (device, batch) of one model."""
    params = sum(p.numel() for p in bench.model.parameters())
    row: dict[str, Any] = {"model": bench.name, "size": bench.size, "params": params,
                           "gflops_per_frame": count_flops(bench) / 1e9, "speed": {}}
    for device in devices:
        bench.model.to(device)
        speed = sweep(bench, device=device, batches=batches, quick=quick, max_iters=5 if quick else 50,
                      max_seconds=max_seconds, max_iter_seconds=max_iter_seconds,
                      progress=None if progress is None else (lambda d, dev=device: progress(f"{d} {dev}")))
        row["speed"] |= {f"{device.split(':')[0]}_b{b}": r for b, r in speed.items()}
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
