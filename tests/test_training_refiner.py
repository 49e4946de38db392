"""`talkfreq train refiner` (tiny config on synth crops) and `talkfreq diagnose-refiner`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_metrics
from talkfreq.cli import main
from talkfreq.models.loading import load_refiner
from talkfreq.models.sovqae import SOVQAE

torch.set_num_threads(1)

TINY = "configs/refiner/tiny.yaml"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def refiner_data(synth_dir, tmp_path_factory) -> Path:
    """The synth set prepared at 64 px (2 clips x 50 frames); the tiny refiner trains at 32 px."""
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("refiner_prepared")
    prepare_dataset([synth_dir], out=out, cfg=load_config(PrepareConfig, None, ["face.crop_size=64"]),
                    show_progress=False)
    return out


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "refiner", "-c", str(REPO / TINY), "--data", str(data), f"run.out_dir={out}",
                 "trainer.val_check_interval=2", "logging.sample_every_n_steps=2", *extra])


@pytest.fixture(scope="module")
def trained(refiner_data, tmp_path_factory) -> Path:
    """A 3-step tiny run (shared by the checks below)."""
    out = tmp_path_factory.mktemp("refiner_runs")
    assert train(refiner_data, out, "trainer.max_steps=3", "run.name=base") == 0
    return out / "base"


def test_tiny_run_writes_checkpoints_model_and_samples(trained):
    ckpts = trained / "checkpoints"
    assert (ckpts / "last.ckpt").is_file() and (ckpts / "best.ckpt").is_file()
    assert (trained / "model" / "config.json").is_file() and (trained / "model" / "model.pt").is_file()
    assert json.loads((trained / "model" / "inference.json").read_text()) == {"latent_smoothing": 0.0}
    assert list((trained / "samples").glob("step*.png")) and (trained / "config.yaml").is_file()
    model = SOVQAE.from_pretrained(trained / "model")
    assert model.config.image_size == 32
    # last.ckpt is the final state, so it holds exactly the saved model
    from_ckpt = load_refiner(ckpts / "last.ckpt").state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, from_ckpt[k]), k
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 3
    assert any(row.get("val/loss") for row in run_metrics(trained))


@pytest.mark.heavy
def test_exact_resume_two_plus_two_equals_four(refiner_data, tmp_path):
    common = ("logging.logger=none", "logging.sample_every_n_steps=0")
    assert train(refiner_data, tmp_path, "trainer.max_steps=4", "run.name=straight", *common) == 0
    assert train(refiner_data, tmp_path, "trainer.max_steps=2", "run.name=resumed", *common) == 0
    assert train(refiner_data, tmp_path, "trainer.max_steps=4", "run.name=resumed", "run.resume=last", *common) == 0
    a = SOVQAE.from_pretrained(tmp_path / "straight" / "model").state_dict()
    b = SOVQAE.from_pretrained(tmp_path / "resumed" / "model").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ckpt = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4


@pytest.mark.parametrize("region", ["face", "mouth"])
def test_gan_path_counts_one_step_per_batch(refiner_data, tmp_path, region, monkeypatch):
    from talkfreq.losses.region import mouth_crop
    from talkfreq.models.discriminator import PatchDiscriminator

    seen = []
    forward = PatchDiscriminator.forward
    monkeypatch.setattr(PatchDiscriminator, "forward", lambda self, x: seen.append(x.shape[-2:]) or forward(self, x))
    assert train(refiner_data, tmp_path, "trainer.max_steps=2", "run.name=gan", "loss.gan=0.1",
                 "loss.gan_start_step=1", "trainer.log_every_n_steps=1", "trainer.gradient_clip_val=1.0",
                 "optim.schedule=cosine", f"loss.gan_region={region}", "disc.num_layers=1") == 0
    size = SOVQAE.from_pretrained(tmp_path / "gan" / "model").config.image_size
    whole = torch.zeros(1, 3, size, size)
    assert seen and set(seen) == {(whole if region == "face" else mouth_crop(whole)).shape[-2:]}
    ckpt = torch.load(tmp_path / "gan" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 2  # the module steps the G scheduler under manual optimisation
    assert len(ckpt["optimizer_states"]) == 2 and ckpt["optimizer_states"][1]["state"]  # D took a step
    rows = run_metrics(tmp_path / "gan")
    assert any(r.get("train/d_loss") for r in rows) and any(r.get("train/g_adv") for r in rows)


def test_a_conditional_discriminator_judges_output_and_input_pairs(refiner_data, tmp_path, monkeypatch):
    from talkfreq.models.discriminator import PatchDiscriminator

    seen = []
    forward = PatchDiscriminator.forward
    monkeypatch.setattr(PatchDiscriminator, "forward", lambda self, x: seen.append(x.shape[1]) or forward(self, x))
    assert train(refiner_data, tmp_path, "trainer.max_steps=2", "run.name=cgan", "loss.gan=0.1",
                 "loss.gan_start_step=0", "loss.gan_conditional=true", "disc.num_layers=1", "denoise_finetune=true",
                 "denoise.start_step=1", "trainer.log_every_n_steps=1") == 0
    assert seen and set(seen) == {6}  # (output or clean, the refiner's input), 3 channels each


def test_denoise_finetune_path_runs_from_a_trained_refiner(refiner_data, trained, tmp_path):
    assert train(refiner_data, tmp_path, "trainer.max_steps=2", "run.name=dn", "denoise_finetune=true",
                 f"init_from={trained / 'model'}", "trainer.log_every_n_steps=1") == 0
    rows = run_metrics(tmp_path / "dn")
    assert any(r.get("train/code_ce") for r in rows) and any(r.get("train/code_match") for r in rows)
    before, after = SOVQAE.from_pretrained(trained / "model"), SOVQAE.from_pretrained(tmp_path / "dn" / "model")
    sb, sa = before.state_dict(), after.state_dict()
    # the codebook (targets are indices into it) and, by default, the decoder stay frozen; the encoder learns
    assert all(torch.equal(sb[k], sa[k]) for k in sb if k.startswith(("quantizer.", "decoder.")))
    assert any(not torch.equal(sb[k], sa[k]) for k in sb if k.startswith("encoder."))


def test_perceptual_weight_without_vgg_weights_fails_at_start_up(refiner_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TALKFREQ_VGG16", raising=False)
    assert train(refiner_data, tmp_path, "trainer.max_steps=2", "run.name=p", "loss.percep=1.0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "VGG16" in err
    assert not (tmp_path / "p").exists()  # nothing was started


@pytest.mark.heavy
def test_diagnose_refiner_prints_table_and_writes_consistent_numbers(trained, refiner_data, tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose-refiner", str(trained / "model"), "--data", str(refiner_data), "--out", str(out),
                 "--frames", "12"]) == 0
    text = capsys.readouterr().out
    assert "NRoUB" in text and "gaussian_blur" in text and "downup" in text
    assert (out / "nroub_histograms.png").stat().st_size > 1000
    result = json.loads((out / "nroub.json").read_text())
    assert result["frames"] == 12 and 0.0 <= result["temporal_flip_rate"] <= 1.0
    assert set(result["degradations"]) == {"gaussian_blur", "motion_blur", "downup", "jpeg", "noise"}
    for kind, r in result["degradations"].items():
        assert r["flips_inside_bound"] == 0, kind  # no code flips where the shift is smaller than the margin
        assert 0.0 <= r["flip_rate"] <= 1.0 and 0.0 <= r["inside_bound_fraction"] <= 1.0
        assert r["positions"] == 12 * 8 * 8  # 12 frames of 8 x 8 latents
    # a Lightning checkpoint works as well as the model folder
    assert main(["diagnose-refiner", str(trained / "checkpoints" / "best.ckpt"), "--data", str(refiner_data),
                 "--out", str(tmp_path / "diag2"), "--frames", "4"]) == 0


RESTORE = ("denoise_finetune=true", "denoise.start_step=2", "sovqae.code_predictor_layers=1",
           "sovqae.code_predictor_dim=16", "sovqae.fusion=true", "sovqae.split_sigma=1.0", "loss.mouth_weight=2.0",
           "logging.logger=none", "logging.sample_every_n_steps=0")


@pytest.mark.heavy
def test_restoring_run_switches_phase_and_resumes_exactly_across_the_switch(refiner_data, tmp_path):
    """Clean autoencoder steps, then restoration (teacher = the model at the switch, codebook frozen from then on);
    a run stopped before the switch and resumed after it ends where a straight one does."""
    assert train(refiner_data, tmp_path, "trainer.max_steps=4", "run.name=straight", *RESTORE) == 0
    assert train(refiner_data, tmp_path, "trainer.max_steps=1", "run.name=resumed", *RESTORE) == 0
    assert train(refiner_data, tmp_path, "trainer.max_steps=4", "run.name=resumed", "run.resume=last", *RESTORE) == 0
    a = SOVQAE.from_pretrained(tmp_path / "straight" / "model").state_dict()
    b = SOVQAE.from_pretrained(tmp_path / "resumed" / "model").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ckpt = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    assert bool(state["restore_started"])
    # the teacher is the model as it was at the switch: same codebook (frozen since), other encoder (trained since)
    cb = "quantizer._codebook.embed"
    assert torch.equal(state[f"teacher.{cb}"], state[f"model.{cb}"])
    assert any(not torch.equal(state[f"teacher.{k}"], state[f"model.{k}"]) for k in a if k.startswith("encoder."))
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in a.items() if k.startswith("fusion."))
    assert float(a["latent_scale"]) != 1.0  # the predictor's prior scale was learnt from the clean latents


@pytest.mark.heavy
def test_code_predictor_beats_nearest_code_snapping_on_degraded_crops(refiner_data, tmp_path):
    """The restoration phase's point: on degraded crops, the predicted codes match the clean crops' codes (the
    teacher's) more often than the clean autoencoder's own nearest-code snapping does."""
    from talkfreq.data.degradations import Degradation, degrade
    from talkfreq.data.prepared import PreparedDataset
    from talkfreq.data.refiner_data import resize_uint8, uint8_to_tensor

    assert train(refiner_data, tmp_path, "trainer.max_steps=60", "run.name=pred", *RESTORE[:2], "denoise.start_step=30",
                 "sovqae.code_predictor_layers=1", "sovqae.code_predictor_dim=32",
                 "optim.lr=2e-3", *RESTORE[-2:]) == 0
    run = tmp_path / "pred"
    student = SOVQAE.from_pretrained(run / "model").eval()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    teacher = SOVQAE(config=student.config)
    teacher.load_state_dict({k[len("teacher."):]: v for k, v in state.items() if k.startswith("teacher.")})
    teacher.eval()
    ds = PreparedDataset(refiner_data)
    frames = [resize_uint8(f, 32) for m in ds.metas for f in ds.clip(m.clip_id).frames[-10:]]
    rng = __import__("numpy").random.default_rng(0)
    deg = Degradation(kinds=["gaussian_blur", "downup", "noise"], prob=1.0, gaussian_sigma=[2.0, 3.0],
                      downup_factor=[3.0, 4.0], noise_sigma=[8.0, 12.0])
    clean = uint8_to_tensor(__import__("numpy").stack(frames))
    noisy = uint8_to_tensor(__import__("numpy").stack([degrade(f, cfg=deg, rng=rng) for f in frames]))
    with torch.no_grad():
        target = teacher(clean).indices
        snapped = teacher(noisy).indices
        predicted = student(noisy, restore=True).indices
    acc_snap = (snapped == target).float().mean().item()
    acc_pred = (predicted == target).float().mean().item()
    print(f"code accuracy on degraded crops: predicted {acc_pred:.3f}, nearest-code snapping {acc_snap:.3f}")
    assert acc_snap < 0.9 and acc_pred > acc_snap + 0.05, (acc_pred, acc_snap)
