"""Which ``accel`` default for the CPU: frames/s of the inference networks (stage 1 + refiner) in fp32, fp32 +
channels-last, bf16 autocast and bf16 + channels-last, on this machine's CPU.

What is timed is exactly the network step of one ``talkfreq infer`` batch (:func:`talkfreq.pipeline.infer.generate`:
uint8 face crops -> FREAK with the half mask and a mel window -> 8-bit faces -> SOVQAE refiner with its fp32
nearest-code search -> uint8 on the host), per stage with the pipeline's own StageTimer. Model sets, both at 256 px
with random weights (speed does not depend on training; the refiner's codebook is k-means-initialised once, before
the variants are copied, so every variant runs the same network):

- ``tiny``: configs/stage1/tiny_freak.yaml + configs/refiner/tiny.yaml, image_size 256;
- ``default``: configs/stage1/freak_256.yaml + configs/refiner/sovqae_256.yaml (what a 256 px run trains).

Each variant: fresh copies through ``prepare_models``, one warm-up batch (oneDNN builds its bf16 kernels there), then
batches until ``--seconds`` have passed (at least ``--min-iters``). The ``s1 diff`` columns are the agreement of the
variant's stage-1 faces with fp32 on the same input (mean / max |diff| in uint8 levels; random weights, smooth
random input), so speed and accuracy are read together.

    flock /tmp/talkfreq-heavy.lock .venv/bin/python benchmarks/accel_cpu.py [--sets tiny,default] [--threads 1,2]
        [--batch 4] [--seconds 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETS = {"tiny": ("configs/stage1/tiny_freak.yaml", "configs/refiner/tiny.yaml"),
        "default": ("configs/stage1/freak_256.yaml", "configs/refiner/sovqae_256.yaml")}
VARIANTS = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16": ("bf16", False), "bf16+cl": ("bf16", True)}
SIZE = 256


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
                return f"{line.split(':', 1)[1].strip()} ({', '.join(isa) or 'no avx512'})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(name: str):
    """(FREAK, SOVQAE) of model set ``name`` at 256 px, random weights, the refiner's codebook initialised."""
    import torch
    from omegaconf import OmegaConf

    from talkfreq.config import load_yaml
    from talkfreq.data.refiner_data import uint8_to_tensor
    from talkfreq.models import FREAK, SOVQAE, SOVQAEConfig

    s1_yaml, ref_yaml = (REPO / p for p in SETS[name])
    torch.manual_seed(0)
    freak = FREAK(config={**OmegaConf.to_container(load_yaml(s1_yaml).freak), "image_size": SIZE})
    refiner = SOVQAE(config=SOVQAEConfig(**{**OmegaConf.to_container(load_yaml(ref_yaml).sovqae),
                                            "image_size": SIZE}))
    refiner.train()
    with torch.no_grad():
        refiner(uint8_to_tensor(faces(4, seed=1)))  # k-means init, once for every variant
    return freak.eval(), refiner.eval()


def faces(n: int, *, seed: int = 0):
    """(n, 256, 256, 3) uint8 smooth random images (a stand-in for face crops: speed does not see content)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    out = [cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
           for _ in range(n)]
    return np.stack(out)


def measure(models, variant: str, *, batch: int, seconds: float, min_iters: int):
    """(stage-1 seconds per frame, refiner seconds per frame, stage-1 uint8 faces of the first batch)."""
    import numpy as np
    import torch

    from talkfreq.pipeline.accel import AccelConfig, prepare_models, resolve_accel
    from talkfreq.pipeline.common import StageTimer
    from talkfreq.pipeline.infer import generate

    dtype, channels_last = VARIANTS[variant]
    accel = resolve_accel(AccelConfig(dtype=dtype, channels_last=channels_last, compile=False), torch.device("cpu"))
    stage1, refiner = prepare_models(*(copy.deepcopy(m) for m in models), accel=accel)
    targets = faces(batch)
    audio = np.random.default_rng(0).normal(0, 1, (batch, 1, 80, 16)).astype(np.float32)

    def step(timer=None):
        return generate(stage1, refiner, accel=accel, targets=targets, audio=audio, mask="half", keep_stage1=True,
                        timer=timer)

    _, first = step()  # warm-up
    timer, iters, t0 = StageTimer(("stage1", "refiner")), 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - t0 < seconds:
        step(timer)
        iters += 1
    frames = iters * batch
    return timer.seconds["stage1"] / frames, timer.seconds["refiner"] / frames, first


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="tiny,default", help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--threads", default=str(torch.get_num_threads()), help="comma-separated torch thread counts")
    ap.add_argument("--batch", type=int, default=4, help="frames per forward (infer's default batch is 8)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement (after a warm-up)")
    ap.add_argument("--min-iters", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here (atomically)")
    args = ap.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if any(s not in SETS for s in sets):
        ap.error(f"--sets: choose from {', '.join(SETS)}")
    threads = [int(t) for t in args.threads.split(",")]

    print(f"accel on the CPU: {cpu_name()}; torch {torch.__version__}; batch {args.batch}; "
          f"{SIZE} px; stage 1 = FREAK, refiner = SOVQAE; frames/s of the network step of infer")
    head = (f"{'set':8} {'thr':>3} {'variant':8} {'stage1 f/s':>10} {'refiner f/s':>11} {'both f/s':>9} "
            f"{'vs fp32':>7} {'s1 diff mean/max':>17}")
    print(head)
    print("-" * len(head))
    rows = []
    for name in sets:
        models = build(name)
        for n in threads:
            torch.set_num_threads(n)
            base = ref = None
            for variant in VARIANTS:
                s1, rf, first = measure(models, variant, batch=args.batch, seconds=args.seconds,
                                        min_iters=args.min_iters)
                ref = first if ref is None else ref
                diff = np.abs(first.astype(int) - ref.astype(int))
                both = 1.0 / (s1 + rf)
                base = base or both
                rows.append({"set": name, "threads": n, "variant": variant, "stage1_fps": 1 / s1,
                             "refiner_fps": 1 / rf, "fps": both, "speedup": both / base,
                             "stage1_diff_mean": float(diff.mean()), "stage1_diff_max": int(diff.max())})
                print(f"{name:8} {n:>3} {variant:8} {1 / s1:>10.2f} {1 / rf:>11.2f} {both:>9.2f} "
                      f"{both / base:>6.2f}x {diff.mean():>10.2f} / {diff.max():<4d}", flush=True)
    if args.json:
        tmp = args.json.with_name(f".{args.json.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"cpu": cpu_name(), "torch": torch.__version__, "batch": args.batch,
                                   "rows": rows}, indent=2))
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
