"""The experiment and benchmark scripts: pure parts of experiments/refiner_denoise.py (nothing runs at import) and
a tiny, quick run of benchmarks/models.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(rel: str):
    """Import a script by path under a private name (scripts are not a package); its main() must not run."""
    path = REPO / rel
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rd():
    return load_script("experiments/refiner_denoise.py")


def crops(seed: int = 0, t: int = 3, s: int = 32) -> np.ndarray:
    """(T, S, S, 3) uint8 frames with fine detail (so blurring them lowers PSNR and the HF ratio)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(t, s, s, 3), dtype=np.uint8)


def test_import_runs_nothing(rd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_script("experiments/refiner_denoise.py")
    assert not any(tmp_path.iterdir())
    assert callable(rd.main) and rd.DEFAULT_CONFIG.is_file()


def test_experiment_config_file_loads_and_composes_the_runs(rd, tmp_path):
    from talkfreq.config import load_config

    cfg = load_config(rd.ExperimentConfig, rd.DEFAULT_CONFIG)
    assert cfg.degradations == {"gaussian_blur": 1.5, "downup": 4.0} and cfg.crop_size == 128
    on = rd.run_config(cfg, name="reg_on", root=tmp_path, train_stop=150, work=tmp_path)
    off = rd.run_config(cfg, name="reg_off", root=tmp_path, train_stop=150, work=tmp_path)
    assert on.data.frame_range == [0, 150] and on.loss.codebook_reg == cfg.refiner.loss.codebook_reg > 0
    assert off.loss.codebook_reg == 0.0
    # the ablation changes the regulariser and the run name only
    assert off.sovqae == on.sovqae and off.trainer == on.trainer and off.data == on.data


def test_frame_split_keeps_the_test_tail_unseen(rd):
    assert rd.frame_split(200, 25.0, train_seconds=6.0, test_seconds=2.0) == (150, 150)
    assert rd.frame_split(250, 25.0, train_seconds=6.0, test_seconds=2.0) == (150, 200)
    with pytest.raises(ValueError, match="overlap"):
        rd.frame_split(175, 25.0, train_seconds=6.0, test_seconds=2.0)


def test_quality_row_target_and_table(rd):
    from talkfreq.data.degradations import apply_kind

    clean = crops()
    blurred = np.stack([apply_kind(f, kind="gaussian_blur", strength=1.5) for f in clean])
    noise = np.random.default_rng(1).integers(-2, 3, size=clean.shape)
    close = np.clip(clean.astype(int) + noise, 0, 255).astype(np.uint8)  # nearly clean: the "good refiner"
    good = rd.quality_row(clean, blurred, close)
    assert good["psnr_refined"] > good["psnr_degraded"] and good["ssim_refined"] > good["ssim_degraded"]
    assert good["hf_degraded"] < good["hf_refined"] <= 1.0
    assert rd.target_met(good) == {"psnr_up": True, "hf_toward_clean": True}
    bad = rd.quality_row(clean, close, blurred)  # the roles swapped: the "refiner" made it worse
    assert rd.target_met(bad) == {"psnr_up": False, "hf_toward_clean": False}

    nroub = {"relative_margin_mean": 0.1, "relative_shift_mean": 0.2, "flip_rate": 0.3, "inside_bound_fraction": 0.4,
             "flips_inside_bound": 0}
    table = rd.format_table([{"run": "reg_on", "degradation": "gaussian_blur", "psnr_recon": 30.0, **good, **nroub},
                             {"run": "reg_off", "degradation": "downup", **bad, **nroub}])
    lines = table.splitlines()
    assert len(lines) == 4 and "PSNR up, HF toward clean" in lines[2] and "PSNR DOWN, HF AWAY" in lines[3]
    assert f"{good['psnr_refined']:.2f}" in lines[2] and "nan" in lines[3]  # no recon number given


def test_strip_image_layout(rd):
    clean = crops(t=5, s=16)
    img = rd.strip_image([("a", clean, clean, clean), ("b", clean, clean, clean)], frames=3)
    assert img.shape == (2 * 16, 3 * 3 * 16, 3) and img.dtype == np.uint8


def test_models_benchmark_quick_tiny(tmp_path, capsys):
    bench = load_script("benchmarks/models.py")
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--tiny", "--batches", "1,2", "--max-seconds", "0.05", "--no-cuda",
                       "--json", str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    names = [r["model"] for r in data["models"]]
    assert names == list(bench.MODELS)
    for r in data["models"]:
        assert r["params"] > 0 and r["gflops_per_frame"] > 0
        assert set(r["speed"]) == {"cpu_b1", "cpu_b2"} and all(s["fps"] > 0 for s in r["speed"].values())
    assert [p["pair"] for p in data["ratios"]] == ["FREAK-256 / Wav2Lip-96", "SOVQAE-256 / FREAK-256"]
    assert "FLOPs = 2 x MACs" in text and "cost per frame FREAK-256 / Wav2Lip-96" in text


def test_flop_count_convention_is_two_per_multiply_add():
    """The GFLOPs column relies on FlopCounterMode counting a multiply-add as 2 FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(4, 8, 3, padding=1, bias=False)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        conv(torch.zeros(1, 4, 10, 10))
    assert counter.get_total_flops() == 2 * (8 * 10 * 10) * (4 * 9)


def test_train_reuses_a_finished_run_and_resumes_to_more_steps(rd, prepared_dir, tmp_path, monkeypatch):
    import torch
    from rich.console import Console

    import talkfreq.training.refiner as refiner
    from talkfreq.training.registry import load_run_config

    cfg = load_run_config("refiner", REPO / "configs/refiner/tiny.yaml", [
        f"data.root={prepared_dir}", "data.frame_range=[0,30]", f"run.out_dir={tmp_path}", "run.name=r",
        "trainer.max_steps=2", "logging.logger=none", "logging.sample_every_n_steps=0"])
    console = Console(quiet=True)
    model_dir, _ = rd.train(cfg, console)
    calls = []
    real_fit = refiner.fit
    monkeypatch.setattr(refiner, "fit", lambda c: calls.append(c.run.resume) or real_fit(c))
    assert rd.train(cfg, console)[0] == model_dir and calls == []  # same config: reused, nothing trained
    more = replace(cfg, trainer=replace(cfg.trainer, max_steps=3))
    rd.train(more, console, resume=True)
    assert calls == ["last"]
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3


# ---------------------------------------------------------------- experiments/synthetic_sync.py (issue 3)


@pytest.fixture(scope="module")
def ss():
    return load_script("experiments/synthetic_sync.py")


def test_synthetic_sync_import_runs_nothing(ss, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the script's nested config dataclasses resolve through sys.modules: put the fixture's module back afterwards
    monkeypatch.setitem(sys.modules, ss.__name__, ss)
    load_script("experiments/synthetic_sync.py")
    assert not any(tmp_path.iterdir())


def test_synthetic_sync_config_composes_the_three_runs(ss, tmp_path):
    from talkfreq.config import load_config

    cfg = load_config(ss.ExperimentConfig, ss.DEFAULT_CONFIG)
    assert cfg.steps.syncnet > 0 and cfg.steps.freak > 0 and cfg.targets.syncnet_accuracy == 0.8

    def run(kind, spec, name, *extra):
        return ss.run_config(kind, spec, name=name, steps=7, root=tmp_path, val_clips=["a_c02", "b_c02"],
                             work=tmp_path, extra=extra)

    expert = run("syncnet", cfg.syncnet, "syncnet")
    audio = run("stage1", cfg.freak, "freak_audio")
    zeroed = run("stage1", cfg.freak, "freak_zeroed", "data.zero_audio=true")
    assert expert.trainer.max_steps == audio.trainer.max_steps == 7 and expert.data.val_clips == ["a_c02", "b_c02"]
    assert audio.data.audio == "mel" and 0 < audio.data.p_half < 1  # mixed half/full masks
    # the ablation changes the audio switch and the run name only
    assert not audio.data.zero_audio and zeroed.data == replace(audio.data, zero_audio=True)
    assert zeroed.freak == audio.freak and zeroed.trainer == audio.trainer and zeroed.loss == audio.loss
    quick = load_config(ss.ExperimentConfig, ss.DEFAULT_CONFIG, cfg.quick)
    assert quick.steps.freak < 10 and quick.synth.seconds < cfg.synth.seconds


def test_mouth_opening_measure_follows_truth_on_real_synth_crops(ss, prepared_dir):
    """The measure the experiment trusts to judge generated mouths, checked on the real prepared crops (resized to
    FREAK's tiny 64 px as in training) against the synth ground truth; and its helpers."""
    from talkfreq.config import load_config
    from talkfreq.data.datasets import frames_to_tensor
    from talkfreq.data.prepared import PreparedDataset
    from talkfreq.training.callbacks import to_uint8

    cfg = load_config(ss.ExperimentConfig, ss.DEFAULT_CONFIG)
    data = PreparedDataset(prepared_dir)
    for meta in data.metas:
        clip = data.clip(meta.clip_id)
        truth = ss.truth_of(meta.source)
        frames = to_uint8(frames_to_tensor(clip.frames[:], size=64))
        centres = ss.to_crop(truth["mouth_center"], clip.boxes, size=64)
        assert np.all((centres > 16) & (centres < 48))  # the mouth sits mid-crop, below the centre line
        r = ss.pearson(ss.mouth_opening(frames, centres, cfg=cfg.measure), truth["openness"])
        assert r >= cfg.targets.measure_r, (meta.clip_id, r)
    assert ss.pearson(np.ones(5), np.arange(5)) == 0.0  # a mouth that never moves follows nothing
    assert ss.held_out_clips(data.metas) == []  # one clip per identity: none can be held out
    boxes = np.array([[10.0, 20.0, 60.0, 70.0]])
    assert np.allclose(ss.to_crop(np.array([[35.0, 45.0]]), boxes, size=100), [[50.0, 50.0]])


def test_synthetic_sync_table_marks_each_target(ss):
    from talkfreq.config import load_config

    t = load_config(ss.ExperimentConfig, ss.DEFAULT_CONFIG).targets
    lse = {k: {"lse_d": 8.0, "lse_c": 1.0} for k in ("real", "audio", "zeroed")}
    res = {"syncnet": {"accuracy": 0.85, "accuracy_init": 0.5, "tpr": 0.9, "tnr": 0.8, "windows": 10},
           "freak": {"l1_init": 0.5, "l1": 0.3, "l1_drop": 0.4, "l1_half": 0.2, "l1_full": 0.4, "l1_zeroed": 0.31},
           "mouth": {"r_real": 0.9, "r_audio": 0.5, "r_zeroed": 0.1}, "lse": lse}
    assert ss.verdicts(res, t) == {"syncnet_accuracy": True, "l1_drop": False, "measure_valid": True,
                                   "audio_beats_zeroed": True}
    lines = ss.format_table(res, t).splitlines()
    assert sum("PASS" in x for x in lines) == 3 and sum("FAIL" in x for x in lines) == 1
    assert any("0.500 -> 0.850" in x for x in lines) and any("40.0%" in x for x in lines)
