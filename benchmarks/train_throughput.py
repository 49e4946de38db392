"""Training throughput (issue 7): images/s of one optimisation step - forward, losses, backward, optimiser step(s) -
for stage 1 (FREAK-256, Wav2Lip-96) and the SOVQAE-256 refiner, on the CPU and on CUDA when there is one.

Each row runs the real LightningModule (``Stage1Module`` / ``RefinerModule``, built from its training config) in the
real Trainer of ``talkfreq.training.common.build_trainer`` (the config's precision and gradient clipping; logging,
validation and checkpoints off) for ``--warmup + --steps`` steps, and times every training step with a callback
(``torch.cuda.synchronize`` around it on a GPU). The batches are random tensors of the shapes the DataModules make,
built once and reused, so data loading is not measured - that is the data pipeline's cost, not the model's.
images/s = batch size / mean seconds per step after the warm-up. Models are randomly initialised (speed does not
depend on training).

What differs from a real run, and why: the perceptual loss is off (it needs the user's VGG16 weights; it would add
a VGG16 forward/backward per image) and Wav2Lip's sync term is off (it needs a trained expert; with it each sample
carries 5 frames). ``SOVQAE-256 +GAN`` is the refiner after ``loss.gan_start_step`` (the discriminator steps too);
``SOVQAE-256`` is before it. ``--wide`` adds the previous, wide 256 px models (configs/*/..._256_wide.yaml).

    flock /tmp/talkfreq-heavy.lock .venv/bin/python benchmarks/train_throughput.py [--steps 5] [--batch N] [--wide]
        [--tiny] [--no-cpu] [--precision bf16-mixed]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# name -> (kind, config, overrides)
ROWS: dict[str, tuple[str, str, list[str]]] = {
    "FREAK-256": ("stage1", "configs/stage1/freak_256.yaml", ["loss.percep=0"]),
    "Wav2Lip-96": ("stage1", "configs/stage1/wav2lip_96.yaml", ["loss.sync=0"]),
    "SOVQAE-256": ("refiner", "configs/refiner/sovqae_256.yaml", []),
    "SOVQAE-256 +GAN": ("refiner", "configs/refiner/sovqae_256.yaml", ["loss.gan_start_step=0"]),
}
WIDE: dict[str, tuple[str, str, list[str]]] = {
    "FREAK-256-wide": ("stage1", "configs/stage1/freak_256_wide.yaml", ["loss.percep=0"]),
    "SOVQAE-256-wide": ("refiner", "configs/refiner/sovqae_256_wide.yaml", []),
}
TINY: dict[str, tuple[str, str, list[str]]] = {  # --tiny: the test configs, a smoke run of the script
    "FREAK-tiny": ("stage1", "configs/stage1/tiny_freak.yaml", ["loss.percep=0"]),
    "SOVQAE-tiny +GAN": ("refiner", "configs/refiner/tiny.yaml", ["loss.gan=0.1", "loss.gan_start_step=0"]),
}


def synthetic_batch(kind: str, cfg: Any, batch: int) -> dict:
    """Random tensors in [-1, 1] with the keys and shapes of the stage-1 / refiner DataModules' batches."""
    import torch

    from talkfreq.models.masks import apply_mask, make_mask
    from talkfreq.training.stage1 import image_size

    if kind == "refiner":
        s = cfg.sovqae.image_size
        return {"clean": torch.rand(batch, 3, s, s) * 2 - 1, "input": torch.rand(batch, 3, s, s) * 2 - 1}
    s = image_size(cfg)
    target = torch.rand(batch, 3, s, s) * 2 - 1
    mask = make_mask("half", batch=batch, size=s)  # the cost is the same for a full mask
    return {"target": target, "reference": torch.rand(batch, 3, s, s) * 2 - 1, "mask": mask,
            "masked": apply_mask(target, mask), "audio": torch.randn(batch, 1, 80, 16)}


def measure(name: str, kind: str, file: str, overrides: list[str], *, device: str, batch: int | None, steps: int,
            warmup: int, precision: str | None, out_dir: Path) -> dict[str, Any]:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ProgressBar
    from torch.utils.data import DataLoader

    from talkfreq.training.common import build_trainer
    from talkfreq.training.registry import load_run_config

    extra = [f"data.batch_size={batch}"] if batch else []
    cfg = load_run_config(kind, REPO / file, overrides + extra)
    L.seed_everything(0, verbose=False)
    if kind == "stage1":
        from talkfreq.training.stage1 import Stage1Module, check_config, resolve_audio

        check_config(cfg)
        cfg = resolve_audio(cfg, speech_dim=0)
        module = Stage1Module(cfg=cfg)
    else:
        from talkfreq.training.refiner import RefinerModule

        module = RefinerModule(cfg)
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            sync()
            self.t = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            sync()
            times.append(time.perf_counter() - self.t)

    n = warmup + steps
    # as fit() does: under manual optimisation (a GAN) the module clips itself and Lightning must not
    clip = cfg.trainer.gradient_clip_val if module.automatic_optimization else 0.0
    trainer_cfg = replace(cfg.trainer, max_steps=n, accelerator=device, devices="1", strategy="auto",
                          precision=precision or cfg.trainer.precision, limit_val_batches=0, val_check_interval=n,
                          gradient_clip_val=clip)
    trainer = build_trainer(trainer=trainer_cfg, logging=replace(cfg.logging, logger="none"),
                            run=replace(cfg.run, out_dir=str(out_dir), name=name.replace(" ", "_"),
                                        checkpoint_every_n_steps=10 * n), callbacks=[StepTimer()])
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ProgressBar)]  # keeps the table clean
    b = synthetic_batch(kind, cfg, cfg.data.batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and resumable loaders does not apply here
        trainer.fit(module, train_dataloaders=DataLoader([b] * n, batch_size=None))
    measured = times[warmup:] or times
    seconds = sum(measured) / len(measured)
    size = cfg.sovqae.image_size if kind == "refiner" else b["target"].shape[-1]
    return {"model": name, "device": device, "batch": cfg.data.batch_size, "size": int(size),
            "precision": trainer_cfg.precision, "steps": len(measured), "seconds_per_step": seconds,
            "images_per_second": cfg.data.batch_size / seconds, "gan": not module.automatic_optimization}


def main(argv: list[str] | None = None) -> int:
    import platform

    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per row (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None, help="batch size of every row (default: each config's)")
    ap.add_argument("--precision", default=None, help="Lightning precision of every row (default: each config's)")
    ap.add_argument("--rows", default=None, help="comma-separated subset of " + ", ".join([*ROWS, *WIDE, *TINY]))
    ap.add_argument("--wide", action="store_true", help="also the wide 256 px models of before issue 7")
    ap.add_argument("--tiny", action="store_true", help="only the tiny test configs (a smoke run)")
    ap.add_argument("--no-cuda", action="store_true")
    ap.add_argument("--no-cpu", action="store_true", help="CUDA rows only")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    every = ROWS | WIDE | TINY
    table = TINY if args.tiny else ROWS | (WIDE if args.wide else {})
    names = [n.strip() for n in args.rows.split(",")] if args.rows else list(table)
    unknown = [n for n in names if n not in every]
    if unknown:
        ap.error(f"unknown row {unknown[0]!r}")
    devices = ([] if args.no_cpu else ["cpu"]) + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    if not devices:
        ap.error("no device left: --no-cpu without CUDA")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" lines in the table
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for name in names:
                kind, file, over = every[name]
                print(f"... {name} on {device}", flush=True)
                rows.append(measure(name, kind, file, over, device=device, batch=args.batch, steps=args.steps,
                                    warmup=args.warmup, precision=args.precision, out_dir=Path(tmp)))
    print(f"train throughput: torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {platform.machine()}"
          + (f", CUDA {torch.cuda.get_device_name(0)}" if "cuda" in devices else ", no CUDA")
          + f"; {args.warmup} warm-up + {args.steps} timed steps per row, random batches")
    head = f"{'model':<16} {'device':<6} {'size':>4} {'batch':>5} {'precision':<10} {'s/step':>7} {'images/s':>9}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['model']:<16} {r['device']:<6} {r['size']:>4} {r['batch']:>5} {r['precision']:<10} "
              f"{r['seconds_per_step']:>7.2f} {r['images_per_second']:>9.2f}")
    print("one step = forward, losses, backward and optimiser step(s) of the real LightningModule (with a GAN: the "
          "discriminator's too); perceptual loss and Wav2Lip's sync term off")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
