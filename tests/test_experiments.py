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


def test_quality_row_target_and_table():
    from talkfreq.data.degradations import apply_kind
    from talkfreq.report import denoise_eval as rd

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


def test_strip_image_layout():
    from talkfreq.report import denoise_eval as rd

    clean = crops(t=5, s=16)
    img = rd.strip_image([("a", clean, clean, clean), ("b", clean, clean, clean)], frames=3)
    assert img.shape == (2 * 16, 3 * 3 * 16, 3) and img.dtype == np.uint8


@pytest.mark.heavy
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


# ---------------------------------------------------------------- experiments/e2e_vs_postprocessed.py (issue 6)


@pytest.fixture(scope="module")
def e2e():
    return load_script("experiments/e2e_vs_postprocessed.py")


def test_e2e_configs_compose_one_face_size_and_quick(e2e, tmp_path, monkeypatch):
    """Both configs load; the tiny one runs every network at one face size (so one refiner serves both
    generators); --quick shrinks it."""
    from talkfreq.config import load_config
    from talkfreq.demo import run_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, e2e.__name__, e2e)
    cfg = load_config(e2e.ExperimentConfig, e2e.DEFAULT_CONFIG)
    assert list(cfg.stage1) == ["Wav2Lip", "FREAK"] and cfg.crop_size == 96
    runs = {n: run_config("stage1", REPO / s.config, data=tmp_path, runs=tmp_path, name=e2e.run_name(n),
                          overrides=s.overrides) for n, s in cfg.stage1.items()}
    assert runs["Wav2Lip"].model == "wav2lip" and runs["FREAK"].model == "freak"
    assert runs["Wav2Lip"].wav2lip.image_size == runs["FREAK"].freak.image_size == 96
    assert runs["FREAK"].run.name == "freak" and runs["FREAK"].trainer.max_steps > 100
    full = load_config(e2e.ExperimentConfig, REPO / "configs/experiments/e2e_vs_postprocessed_full.yaml")
    assert set(full.stage1) == {"Wav2Lip", "FREAK"} and full.steps is None
    for n, s in full.stage1.items():
        assert (REPO / s.config).is_file(), n
    quick = load_config(e2e.ExperimentConfig, e2e.DEFAULT_CONFIG, cfg.quick)
    assert quick.steps is not None and quick.steps < 10 and quick.synth.seconds < cfg.synth.seconds
    assert not any(tmp_path.iterdir())  # loading the script and its configs wrote nothing


def test_e2e_refiner_effect_and_table(e2e):
    values = {"real": {"psnr": 100.0, "lse_d": 7.0, "hf_ratio": 0.10, "lpips": None, "lse_offset": 0.0},
              "FREAK": {"psnr": 25.0, "lse_d": 8.0, "hf_ratio": 0.05, "lpips": None, "lse_offset": 1.0},
              "FREAK+SOVQAE": {"psnr": 24.0, "lse_d": 7.5, "hf_ratio": 0.09, "lpips": None, "lse_offset": 1.0}}
    effect = e2e.refiner_effect(values, plain="FREAK")
    # PSNR went down (worse), LSE-D down (better), HF ratio closer to the real one's (better)
    assert effect["psnr"] is False and effect["lse_d"] is True and effect["hf_ratio"] is True
    assert effect["lpips"] is None and effect["lse_offset"] is None  # unavailable / no direction
    assert e2e.candidate_names(["Wav2Lip", "FREAK"]) == ["Wav2Lip", "Wav2Lip+SOVQAE", "FREAK", "FREAK+SOVQAE"]
    assert e2e.run_name("Wav2Lip+X 2") == "wav2lip_x_2"
    lines = e2e.format_table(values, stage1=["FREAK"], best={"psnr": ["FREAK"]}).splitlines()
    psnr = next(x for x in lines if x.startswith("PSNR"))
    assert "25.00*" in psnr and "-1.00-" in psnr and "100.00" in psnr
    assert any(x.startswith("LPIPS") and "unavailable" in x for x in lines)
    assert lines[-1] == "refiner over FREAK: better on 2 of 3 metrics"


@pytest.mark.slow
def test_e2e_quick_run_writes_report_table_and_results(e2e, tmp_path, capsys):
    out = tmp_path / "e2e"
    assert e2e.main(["--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "refiner over Wav2Lip" in text and "refiner over FREAK" in text
    res = first = json.loads((out / "results.json").read_text())
    assert list(res["values"]) == ["real", "Wav2Lip", "Wav2Lip+SOVQAE", "FREAK", "FREAK+SOVQAE"]
    assert res["face_sizes"] == {"Wav2Lip": 96, "FREAK": 96} and list(res["models"]) == [
        "syncnet", "Wav2Lip", "FREAK", "refiner_96"]  # one refiner serves both generators
    assert res["values"]["FREAK"]["lse_d"] is not None  # the trained expert scored lip sync
    # the new-audio check per generator: measured, or "not measured" where a 2-step generator's dub has no face
    assert set(res["new_audio"]) == {"Wav2Lip", "FREAK"} and "New-audio check (id00_c00.mp4" in text
    assert all(c["verdict"].startswith("New-audio check") for c in res["new_audio"].values())
    assert (out / "report" / "report.html").is_file() and (out / "report" / "compare.mp4").is_file()
    held = list((out / "heldout").glob("*.mp4"))
    assert len(held) == 1 and held[0].stem not in (out / "prepared" / "index.json").read_text()
    # one refiner per generator, each on its own generator's outputs (the generators are reused, not retrained)
    overrides = "refiner.overrides=[data.stage1_prob=0.5,logging.sample_every_n_steps=0]"
    assert e2e.main(["--quick", "--out", str(out), "refiner.per_generator=true", overrides]) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["models"]) == ["syncnet", "Wav2Lip", "FREAK", "refiner_wav2lip", "refiner_freak"]
    assert res["seconds"]["train"]["freak"] == pytest.approx(first["seconds"]["train"]["freak"])  # reused
    assert len(list((out / "stage1_outputs").iterdir())) == 2  # each generator's own outputs


# ---------------------------------------------------------------- experiments/ablations.py (issue 6)


@pytest.fixture(scope="module")
def abl():
    return load_script("experiments/ablations.py")


def test_ablation_configs_change_only_the_ablated_keys(abl, tmp_path):
    from talkfreq.config import load_config

    def runs(study):
        cfg = load_config(abl.AblationConfig, abl.CONFIGS / f"{study}.yaml")
        return cfg, abl.variant_configs(cfg, data=tmp_path, runs=tmp_path, identities=["id00"])

    cfg, v = runs("vefm_avfm")
    assert list(v) == ["both", "no_vefm", "no_avfm", "neither"]
    assert [(c.freak.use_vefm, c.freak.use_avfm) for c in v.values()] == [(True, True), (False, True),
                                                                          (True, False), (False, False)]
    assert all(c.trainer == v["both"].trainer and c.data == v["both"].data for c in v.values())
    assert abl.needs_speech(v) == []

    cfg, v = runs("hubert_context")
    assert abl.needs_speech(v) == [n for n in v if n != "mel"] and v["mel"].data.audio == "mel"
    assert sorted(c.data.context for n, c in v.items() if n != "mel") == [0, 2, 4, 8]
    assert all(c.freak == v["mel"].freak and c.trainer == v["mel"].trainer for c in v.values())

    cfg, v = runs("codebook_reg")
    assert v["reg_on"].loss.codebook_reg > 0 and v["reg_off"].loss.codebook_reg == 0.0
    assert v["reg_on"].sovqae == v["reg_off"].sovqae and v["reg_on"].trainer == v["reg_off"].trainer
    assert v["reg_on"].data.identities == ["id00"] and v["reg_on"].run.name == "reg_on"
    for study in abl.STUDIES:
        quick = load_config(abl.AblationConfig, abl.CONFIGS / f"{study}.yaml",
                            load_config(abl.AblationConfig, abl.CONFIGS / f"{study}.yaml").quick)
        assert quick.steps == 1 and quick.threads == 1, study


def test_ablation_stage1_table(abl):
    rows = [{"variant": "both", "val_l1": 0.1234, "psnr": 25.0, "mouth_psnr": 20.0, "lse_d": 7.0, "lse_c": 2.0,
             "spectrum_gap": 0.2, "mouth_spectrum_gap": 1.0, "train_seconds": 120.0},
            {"variant": "neither", "val_l1": 0.2, "psnr": 24.0, "mouth_psnr": 19.0, "lse_d": None, "lse_c": None,
             "spectrum_gap": 0.3, "mouth_spectrum_gap": 1.1, "train_seconds": None}]
    lines = abl.format_stage1_table(rows).splitlines()
    assert len(lines) == 4 and "mouth PSNR" in lines[0] and "LSE-C" in lines[0]
    assert lines[2].split()[:2] == ["both", "0.1234"] and lines[2].endswith("2.0")
    assert "unavailable" in lines[3] and lines[3].endswith("given")


def test_ablation_hubert_without_speech_model_is_one_line_error(abl, tmp_path, capsys):
    assert abl.main(["hubert_context", "--quick", "--out", str(tmp_path / "h")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("ablations.py: error: hubert_context:") and "--speech-model" in line
    assert not (tmp_path / "h" / "synth").exists()  # checked before anything is made


@pytest.mark.heavy
def test_ablation_codebook_reg_quick(abl, tmp_path, capsys):
    out = tmp_path / "cb"
    assert abl.main(["codebook_reg", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reg_on" in text and "reg_off" in text and "PSNR deg" in text
    res = json.loads((out / "results.json").read_text())
    assert {(r["run"], r["degradation"]) for r in res["rows"]} == {
        (v, d) for v in ("reg_on", "reg_off") for d in ("gaussian_blur", "downup")}
    assert all(r["flips_inside_bound"] == 0 for r in res["rows"])  # the NRoUB bound holds by construction
    assert (out / "strip.png").is_file()


@pytest.mark.heavy
def test_ablation_vefm_avfm_quick(abl, tmp_path, capsys):
    out = tmp_path / "va"
    assert abl.main(["vefm_avfm", "--quick", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in res["rows"]] == ["both", "no_vefm", "no_avfm", "neither"]
    for r in res["rows"]:
        assert 0 < r["val_l1"] < 2 and r["mouth_psnr"] > 0 and r["lse_d"] is not None and r["spectrum_gap"] > 0
    assert (out / "report" / "report.html").is_file()
    assert "val L1" in capsys.readouterr().out


@pytest.mark.slow
def test_ablation_hubert_context_quick_with_a_tiny_hubert(abl, tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                conv_dim=(8,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer")
    hubert = tmp_path / "hubert"
    transformers.HubertModel(transformers.HubertConfig(**tiny)).eval().save_pretrained(hubert)
    out = tmp_path / "hc"
    assert abl.main(["hubert_context", "--quick", "--out", str(out), "--speech-model", str(hubert)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in res["rows"]] == ["mel", "ctx0", "ctx2", "ctx4", "ctx8"]
    # FREAK's audio window follows the context: 2K+1 rows of the tiny HuBERT's 32-dim features
    for k in (0, 2, 4, 8):
        cfg = json.loads((out / "runs" / f"ctx{k}" / "model" / "config.json").read_text())
        assert (cfg["config"]["audio_len"], cfg["config"]["audio_dim"]) == (2 * k + 1, 32)


def test_refiner_restore_pastes_the_refined_lower_region_over_stage_1():
    import numpy as np

    rr = load_script("experiments/refiner_restore.py")
    refined, stage1 = np.full((2, 64, 64, 3), 200, np.uint8), np.full((2, 64, 64, 3), 10, np.uint8)
    pasted = rr.pasted_lower(refined, stage1)
    assert (pasted[:, :16] == 10).all()  # the upper face is stage 1's (the real frame's, where stage 1 composes)
    assert (pasted[:, 48, 32] == 200).all()  # the mouth is the refiner's


@pytest.mark.heavy
def test_refiner_restore_quick_run_on_a_real_clip(tmp_path):
    """experiments/refiner_restore.py end to end at smoke size: both training phases, the held-out evaluation, the
    table, results.json (the real numbers are in benchmarks/RESULTS.md); with a stage-1 model for the clip, its
    own held-out outputs are one more degradation and a variant trains on its outputs over the training frames."""
    import torch

    from conftest import media
    from talkfreq.models.freak import FREAK, FREAKConfig

    clip = media("video/real3dportrait_May_5s.mp4")
    torch.manual_seed(0)
    FREAK(config=FREAKConfig(image_size=32, base_channels=4, channel_mult=[1, 1], num_scales=2, audio_hidden=8,
                             audio_embed_dim=8, avfm_decoder_scales=1, dub_mask="lower", compose=True)
          ).save_pretrained(tmp_path / "freak")
    rr = load_script("experiments/refiner_restore.py")
    assert rr.main(["--quick", "--out", str(tmp_path), f"clips=[{clip}]", "degradations=[[gaussian_blur,2.0]]",
                    f"stage1={{real3dportrait_May_5s: {tmp_path / 'freak'}}}",
                    "variants={recipe: [sovqae.image_size=64], pairs: [sovqae.image_size=64, data.stage1_prob=0.5]}"]
                   ) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {(r["variant"], r["degradation"]): r for r in res["rows"]}
    assert set(rows) == {(v, d) for v in ("recipe", "pairs") for d in ("gaussian_blur 2", "stage1", "stage1 pasted")}
    # pasted: the same inputs, the refined lower region over them (the pipeline's view)
    assert rows["pairs", "stage1 pasted"]["psnr_deg"] == rows["pairs", "stage1"]["psnr_deg"]
    row = rows["recipe", "gaussian_blur 2"]
    assert set(row["target"]) == {"psnr", "ssim", "mouth_psnr", "mouth_ssim", "hf"}
    assert row["psnr_deg"] < 40 and 0 <= row["used_code_flips"] <= 1
    assert rows["recipe", "stage1"]["psnr_deg"] == rows["pairs", "stage1"]["psnr_deg"] < 40  # the same inputs
    config = (tmp_path / "runs" / "real3dportrait_May_5s" / "pairs" / "finished.json").read_text()
    assert "stage1_outputs" in config and "stage1_prob: 0.5" in config
    assert (tmp_path / "strip_real3dportrait_May_5s.png").is_file()


# ---------------------------------------------------------------- experiments/personal.py (issue 13)


def test_personal_targets_table_and_config(capsys):
    from talkfreq.config import load_config

    pe = load_script("experiments/personal.py")
    cfg = load_config(pe.ExperimentConfig, pe.DEFAULT_CONFIG)
    assert len(cfg.clips) == 3 and "recipe" in cfg.variants
    assert pe.meets("mouth_psnr", 27.5) and not pe.meets("mouth_psnr", 26.9)
    assert pe.meets("mouth_open_silent", 1.15) and not pe.meets("mouth_open_silent", 0.75)
    assert pe.meets("seam", 0.95) and not pe.meets("seam", 1.2) and pe.meets("psnr", 30.0) is None
    rows = [{"clip": "c", "variant": "recipe", "video": v, "minutes": m,
             "values": {"mouth_psnr": 27.5 if v != "real" else 100.0, "seam": 1.0, "lse_d": None,
                        "mouth_open_lag": "unavailable"}}
            for v, m in (("real", None), ("FREAK", 11.0), ("FREAK+SOVQAE", 19.0))]
    table = pe.format_table(rows).splitlines()
    assert len(table) == 5 and "27.500 ✓" in table[3] and "100.000 |" in table[2] and "| 19.0 |" in table[4]
    assert pe.main(["only=[nope]", "--out", "/nonexistent/never-written"]) == 2
    assert "personal.py: error: only: no variant 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- the scripts' command line (talkfreq.cli.experiment)

# every script, its positional arguments before the overrides, and options its --help must list
SCRIPTS = {
    "personal": ([], ["--config", "--out", "--video", "--steps", "--quick"]),
    "e2e_vs_postprocessed": ([], ["--config", "--out", "--video", "--steps", "--quick"]),
    "ablations": (["vefm_avfm"], ["study", "--config", "--out", "--video", "--steps", "--quick", "--speech-model"]),
    "refiner_restore": ([], ["--config", "--out", "--video", "--steps", "--quick", "--eval-only"]),
    "refiner_denoise": ([], ["--config", "--out", "--steps", "--resume"]),
    "synthetic_sync": ([], ["--config", "--out", "--steps-syncnet", "--steps-freak", "--minutes", "--quick"]),
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_script_help_and_a_bad_override(name, tmp_path, capsys, monkeypatch):
    """Each script's typer command: --help lists its options; a bad override (and a stray word) is one line on
    stderr and exit status 2, before anything is made."""
    monkeypatch.chdir(tmp_path)
    mod = load_script(f"experiments/{name}.py")
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    positional, options = SCRIPTS[name]
    assert mod.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(o in text for o in options), name
    out = tmp_path / "never"
    assert mod.main([*positional, "nope.key=1", "--out", str(out)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{name}.py: error: ") and "'nope'" in line, line
    assert mod.main([*positional, "stray", "--out", str(out)]) == 2
    assert "not of the form key.sub=value" in capsys.readouterr().err
    assert mod.main([*positional, "--out"]) == 2  # a usage error: the option lacks its value
    assert f"{name}.py: error:" in capsys.readouterr().err
    assert not out.exists() and not any(tmp_path.iterdir())
