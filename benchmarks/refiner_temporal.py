"""What temporal latent smoothing (`talkfreq refine --temporal-smoothing ALPHA`) does to code flips and flicker.

Trains the tiny refiner (configs/refiner/tiny.yaml) on a synth talking face for ``--steps`` steps (CPU minutes),
then refines the clip's consecutive face crops with alpha = 0 (off) and a few values, and prints per alpha:

- the temporal code-flip rate (fraction of latent positions whose code changes between consecutive frames);
- pixel flicker (:func:`talkfreq.metrics.temporal.temporal_flicker`, mean squared second temporal difference) of the
  refined crops, and its ratio to the clean input crops' flicker (1 = as steady as the input);
- PSNR of the refined crops against the clean input (what smoothing costs in fidelity: lag in fast mouth motion).

    .venv/bin/python benchmarks/refiner_temporal.py [--steps 300] [--alphas 0,0.3,0.5,0.7] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--alphas", default="0,0.3,0.5,0.7")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))

    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset
    from talkfreq.data.prepared import PreparedDataset
    from talkfreq.data.refiner_data import resize_uint8
    from talkfreq.data.synth import SynthConfig, synthesize
    from talkfreq.metrics.robustness import temporal_flip_rate
    from talkfreq.metrics.temporal import temporal_flicker
    from talkfreq.models.loading import load_refiner
    from talkfreq.pipeline.refine import refine_sequence
    from talkfreq.training.refiner import fit
    from talkfreq.training.registry import load_run_config

    work = args.out or Path(tempfile.mkdtemp(prefix="refiner_temporal_"))
    synth, data = work / "synth", work / "prepared"
    if not (data / "index.json").is_file():
        synthesize(cfg=SynthConfig(identities=1, clips_per_identity=1, seconds=args.seconds, frame_size=128),
                   out=synth)
        prepare_dataset([synth], out=data, cfg=load_config(PrepareConfig, None, ["face.crop_size=64"]),
                        show_progress=False)
    cfg = load_run_config("refiner", REPO / "configs/refiner/tiny.yaml", [
        f"data.root={data}", f"trainer.max_steps={args.steps}", f"run.out_dir={work / 'runs'}", "run.name=tiny",
        "logging.logger=none", "logging.sample_every_n_steps=0"])
    model = load_refiner(fit(cfg) / "model").eval()
    size = model.config.image_size

    ds = PreparedDataset(data)
    clip = ds.clip(ds.ids()[0])
    crops = np.stack([resize_uint8(np.asarray(f), size) for f in clip.frames])
    clean_flicker = temporal_flicker(crops)
    print(f"\n{len(crops)} consecutive {size} px crops; tiny refiner after {args.steps} steps; "
          f"input flicker {clean_flicker:.6f}")
    print(f"{'alpha':>6} {'code flips':>11} {'flicker':>10} {'vs input':>9} {'PSNR dB':>8}")
    ref = crops.astype(np.float64)
    for alpha in (float(a) for a in args.alphas.split(",")):
        out, idx = refine_sequence(model, crops, alpha=alpha, batch_size=16)
        mse = np.mean((out.astype(np.float64) - ref) ** 2, axis=(1, 2, 3))
        psnr = float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))
        fl = temporal_flicker(out)
        print(f"{alpha:6.2f} {temporal_flip_rate(idx):11.3f} {fl:10.6f} {fl / clean_flicker:9.2f} {psnr:8.2f}")


if __name__ == "__main__":
    main()
