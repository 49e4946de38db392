"""``talkfreq bench``: what the CLI end to end with the tiny configs on a real clip must write (checked on the run of
the GPU check's dry run), and its pieces (peak table, best batch, targets, config presets) without running
anything."""

from __future__ import annotations

import json

import pytest

from talkfreq import cli
from talkfreq.bench import QUICK, bench_config, best_batch, combined_fps, evaluate_targets, model_names
from talkfreq.errors import ConfigError
from talkfreq.model_cost import GPU_PEAK_TFLOPS, gpu_peak


def check_tiny_bench(data: dict, text: str) -> None:
    """What ``talkfreq bench --tiny --quick --pipelines FREAK-256 --batches 1 --seconds 0.2 --threads 1
    max_seconds=0.02`` on the CPU must write (``data``, its --json) and print (``text``). That run is the one of
    ``benchmarks/gpu_check.sh --dry-run`` (tests/test_gpu_check.py, heavy): the command end to end once, not twice."""
    h = data["header"]
    assert h["device"] == "cpu" and h["dtype"] == "fp32" and h["threads"] == 1 and h["peak_flops"] > 0
    assert set(data["models"]) == {"FREAK-256", "SOVQAE-256", "Wav2Lip-96"}  # + the CPU target's yardstick
    for m in data["models"].values():
        assert m["gflops_per_frame"] > 0 and m["peak_rss_mb"] > 0 and m["speed"]["1"]["fps"] > 0
    (p,) = data["pipelines"]
    assert p["best_batch"] == 1 and list(p["e2e"]) == ["1"]  # quick: end to end at the best batch only
    e2e = p["e2e"]["1"]
    assert e2e["frames"] == 5 and e2e["fps"] > 0 and e2e["peak_rss_mb"] > 0 and e2e["threads"] == 1
    cpu = [t for t in data["targets"] if t["target"].startswith("CPU")]
    assert len(cpu) == 1 and cpu[0]["value"] > 0 and cpu[0]["passed"] in (True, False)
    for line in ("talkfreq bench", "end to end", "target CPU: end-to-end FREAK-256", "peak: fp32"):
        assert line in text, line


def test_gpu_peak_table_lookup():
    assert gpu_peak("NVIDIA H100 80GB HBM3", "bf16", tf32=True) == ("H100 SXM bf16 (data sheet)", 989.4e12)
    assert gpu_peak("NVIDIA H100 PCIe", "fp32", tf32=False)[1] == GPU_PEAK_TFLOPS["H100 PCIe"]["fp32"] * 1e12
    assert gpu_peak("NVIDIA H200", "fp32", tf32=True)[0].startswith("H200 tf32")  # cuDNN convs run as TF32
    assert gpu_peak("NVIDIA A100-SXM4-80GB", "fp16", tf32=True)[1] == 312.0e12
    assert gpu_peak("NVIDIA H100 NVL", "bf16", tf32=True) is None and gpu_peak("Tesla T4", "fp32", tf32=True) is None


def _model(gflops: float, **fps):
    return {"gflops_per_frame": gflops, "peak_rss_mb": 1.0,
            "speed": {b: ({"fps": f} if f else {"fps": None, "skipped": "x"}) for b, f in fps.items()}}


def test_best_batch_and_targets():
    s1, ref = _model(5.0, **{"1": 10.0, "4": 20.0, "16": None}), _model(4.0, **{"1": 10.0, "4": 40.0, "16": 50.0})
    assert combined_fps(s1, ref, 1) == pytest.approx(5.0) and combined_fps(s1, ref, 16) is None
    assert best_batch(s1, ref) == 4
    models = {"FREAK-256": s1, "SOVQAE-256": ref, "Wav2Lip-96": _model(7.9, **{"1": 12.0, "4": 16.0})}
    pipes = [{"name": "FREAK-256", "stage1": "FREAK-256", "refiner": "SOVQAE-256", "best_batch": 4,
              "e2e": {"1": {"fps": 6.0}, "4": {"fps": 9.0}}}]
    flops, cpu = evaluate_targets(models, pipes, cuda=False)
    assert flops["passed"] is True and flops["value"] == pytest.approx(0.8)
    assert cpu["value"] == pytest.approx(9.0 / 16.0) and cpu["passed"] is True
    (flops, gpu) = evaluate_targets(models, pipes, cuda=True)
    assert gpu["need"] == ">= 60" and gpu["passed"] is False
    pipes[0]["e2e"] = {"4": {"error": "boom"}}
    assert evaluate_targets(models, pipes, cuda=False)[1]["passed"] is None  # not measured is not a fail


def test_model_names_add_the_cpu_yardstick_on_the_cpu_only():
    assert model_names(["FREAK-256"], cuda=False) == ["FREAK-256", "SOVQAE-256", "Wav2Lip-96"]
    assert model_names(["FREAK-256"], cuda=True) == ["FREAK-256", "SOVQAE-256"]
    assert model_names(["Wav2Lip-96", "FREAK-256"], cuda=False) == ["Wav2Lip-96", "SOVQAE-96", "FREAK-256",
                                                                     "SOVQAE-256"]


def test_config_quick_preset_and_errors(tmp_path):
    cfg = bench_config(None, [], quick=True, seconds=2.5)
    assert cfg.seconds == 2.5 and cfg.batches == QUICK["batches"] and cfg.e2e_batches == ["best"]
    assert bench_config(None, ["max_iters=3"]).max_iters == 3
    with pytest.raises(ConfigError, match="Wav2Lip-128"):
        bench_config(None, [], pipelines=["Wav2Lip-128"])
    assert cli.main(["bench", "--batches", "1,x"]) == 2
    assert cli.main(["bench", "--video", str(tmp_path / "none.mp4")]) == 2


def test_train_throughput_script_tiny(tmp_path):
    """benchmarks/train_throughput.py's measurement on the tiny configs: one warm-up and one timed step each."""
    from test_experiments import load_script

    tt = load_script("benchmarks/train_throughput.py")
    for name, (kind, file, over) in tt.TINY.items():
        r = tt.measure(name, kind, file, over, device="cpu", batch=2, steps=1, warmup=1, precision=None,
                       out_dir=tmp_path)
        assert r["batch"] == 2 and r["steps"] == 1 and r["images_per_second"] > 0
        assert r["gan"] == (kind == "refiner")


def test_default_configs_keep_the_cost_budget():
    """Issue 7's budget on the default configs: each refiner costs no more than its stage 1, and FREAK-256 less
    than Wav2Lip-96 (FlopCounterMode GFLOPs per frame, as `talkfreq bench` reports them)."""
    import torch

    from talkfreq.model_cost import build, count_flops

    def gflops(name: str) -> float:
        torch.manual_seed(0)
        return count_flops(build(name)) / 1e9

    freak256, freak512 = gflops("FREAK-256"), gflops("FREAK-512")
    assert gflops("SOVQAE-256") <= freak256 < gflops("Wav2Lip-96")
    assert gflops("SOVQAE-512") <= freak512


def test_build_from_a_resolved_config_equals_the_run_config_build():
    """bench's end-to-end processes build the networks from the configs its model process resolved (JSON), not from
    the run configs again: the same network."""
    from talkfreq.model_cost import build
    from talkfreq.models._io import config_to_dict

    for name in ("FREAK-256", "SOVQAE-256"):
        a = build(name, tiny=True)
        b = build(name, tiny=True, config=json.loads(json.dumps(config_to_dict(a.model.config))))
        assert b.model.config == a.model.config and b.size == a.size
        assert {k: v.shape for k, v in b.model.state_dict().items()} == {
            k: v.shape for k, v in a.model.state_dict().items()}
