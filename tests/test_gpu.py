"""The GPU path where there is CUDA (``benchmarks/gpu_check.sh`` runs these with ``-m gpu``; without CUDA they skip):
bf16 and fp16 against fp32 within test_accel's tolerance, ``torch.compile`` against eager, overlap on/off
bit-identical, a few bf16-mixed training steps of every trainable kind on one GPU, and DDP on two when there are two.

``TALKFREQ_GPU_TESTS_ON_CPU=1`` runs them on the CPU instead (fp16 and DDP still skip): a check of the tests
themselves, so that a short GPU loan is not spent on a broken test.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import run_metrics
from talkfreq.cli import main
from talkfreq.models.syncnet import SyncNet, SyncNetConfig
from talkfreq.pipeline.accel import AccelConfig

# pytest finds fixtures by name in the module, so importing test_accel's shares its clip, models and frame capture
from test_accel import absdiff, assert_frames_close, check_fast_path, clip, crops, models, run_infer, written  # noqa: F401

CUDA = torch.cuda.is_available()
ON_CPU = os.environ.get("TALKFREQ_GPU_TESTS_ON_CPU") == "1"
DEVICE = "cuda" if CUDA else "cpu"
REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (CUDA or ON_CPU), reason="needs CUDA")]
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")


@pytest.mark.parametrize("dtype", ["bf16", pytest.param("fp16", marks=needs_cuda)])
def test_half_precision_matches_cpu_fp32_within_tolerance(dtype, clip, models, crops, tmp_path, written):
    check_fast_path(clip, models, crops, tmp_path, written,
                    AccelConfig(dtype=dtype, channels_last=True, compile=False), device=DEVICE)


def test_compile_matches_eager_and_does_not_fall_back(clip, models, tmp_path, written):
    eager, compiled = (AccelConfig(dtype="bf16", channels_last=True, compile=c) for c in (False, True))
    run = {"device": DEVICE, "batch_size": 5}  # 50 frames in batches of one shape: one compilation per network
    run_infer(clip, models, tmp_path / "eager.mp4", eager, **run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_infer(clip, models, tmp_path / "compiled.mp4", compiled, **run)
    fallbacks = [str(w.message) for w in caught if "torch.compile of" in str(w.message)]
    assert not fallbacks, fallbacks  # a silent eager fallback would make every compiled number an eager one
    assert_frames_close(written, "eager", "compiled")


def test_overlap_on_and_off_are_bit_identical(clip, models, tmp_path, written):
    runs = [run_infer(clip, models, tmp_path / f"{name}.mp4", AccelConfig(dtype="bf16", compile=False, overlap=on),
                      device=DEVICE) for name, on in (("on", True), ("off", False))]
    assert runs[0].frames == runs[1].frames == 50
    for suffix in (".mp4", "_s1.mp4"):
        assert absdiff(written["on" + suffix], written["off" + suffix]).max() == 0


# ------------------------------------------------------------------------------------------------- training

FIT_STEPS = 3
# name -> kind, config, overrides: every trainable kind, and both manual-optimisation (GAN) paths
FITS: dict[str, tuple[str, str, list[str]]] = {
    "syncnet": ("syncnet", "configs/stage1/tiny_syncnet.yaml", []),
    "freak": ("stage1", "configs/stage1/tiny_freak.yaml", []),
    "freak+gan+sync": ("stage1", "configs/stage1/tiny_freak.yaml",
                       ["loss.gan=0.1", "loss.sync=0.03", "disc.base_channels=8", "disc.num_layers=2"]),
    "wav2lip": ("stage1", "configs/stage1/tiny_wav2lip.yaml", ["trainer.limit_val_batches=1"]),
    "refiner": ("refiner", "configs/refiner/tiny.yaml", []),
    "refiner+gan": ("refiner", "configs/refiner/tiny.yaml", ["loss.gan=0.1", "loss.gan_start_step=1"]),
}


def fit_args(name: str, data: Path, out: Path) -> list[str]:
    kind, config, overrides = FITS[name]
    return ["train", kind, "-c", str(REPO / config), "--data", str(data), f"run.out_dir={out}", "run.name=fit",
            f"trainer.max_steps={FIT_STEPS}", f"trainer.val_check_interval={FIT_STEPS}",
            "trainer.accelerator=gpu" if CUDA else "trainer.accelerator=cpu", "trainer.precision=bf16-mixed",
            "trainer.log_every_n_steps=1", "logging.logger=csv", *overrides]


@pytest.mark.parametrize("name", FITS)
def test_bf16_mixed_fit_on_one_device(name, prepared_dir, tmp_path):
    extra = []
    if "sync" in name.split("+"):
        expert = SyncNet(config=SyncNetConfig(image_size=48)).save_pretrained(tmp_path / "expert")
        extra = [f"loss.syncnet={expert}"]
    assert main([*fit_args(name, prepared_dir, tmp_path), "trainer.devices=1", *extra]) == 0
    run = tmp_path / "fit"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == FIT_STEPS
    logged = {k: float(v) for row in run_metrics(run) for k, v in row.items() if k.startswith("train/") and v}
    assert logged and all(math.isfinite(v) for v in logged.values()), logged


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_two_gpus(prepared_dir, tmp_path):
    cmd = [sys.executable, "-m", "talkfreq.cli", *fit_args("freak", prepared_dir, tmp_path), "trainer.devices=2",
           "trainer.strategy=ddp"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distributed_backend=nccl" in proc.stderr
    ckpt = torch.load(tmp_path / "fit" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == FIT_STEPS
