"""Stage-1 training: datasets, the SyncNet expert, FREAK / Wav2Lip runs through the CLI, exact resume, the GAN path,
the perceptual term, HuBERT-style audio, start-up errors, DDP on two CPU processes, wandb (offline) / TensorBoard.

All runs use the tiny configs on the session's prepared synth data (2 clips × 50 frames, 96-px crops) with one
torch thread (set in conftest).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import EXPERT_STEPS, run_metrics
from talkfreq.cli import main
from talkfreq.data.datasets import (
    DataConfig,
    Stage1DataModule,
    SyncNetDataModule,
    TrainStream,
    mel_tensor,
    split_segments,
)
from talkfreq.errors import ConfigError
from talkfreq.models.freak import FREAK
from talkfreq.models.masks import apply_mask
from talkfreq.models.syncnet import SyncNet, SyncNetConfig, expert_loss, sync_probability
from talkfreq.models.wav2lip import Wav2Lip

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "configs" / "stage1"


def train(kind: str, config: str, data: Path, out: Path, *overrides: str) -> int:
    return main(["train", kind, "-c", str(CFG / config), "--data", str(data), f"run.out_dir={out}", *overrides])


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


# ---------------------------------------------------------------- datasets


def test_stage1_samples_shapes_reference_gap_and_holdout(prepared_dir):
    cfg = DataConfig(root=str(prepared_dir), batch_size=2, num_workers=0, ref_min_gap=7)
    dm = Stage1DataModule(cfg, image_size=64, sync=True)
    # Both synth clips hash into "train": the hold-out fallback keeps the last 5 frames of each clip for val.
    train_segs, val_segs, fell_back = split_segments(dm.data, holdout_fraction=0.1)
    assert fell_back and all(hi - lo == 5 for _, lo, hi in val_segs) and all(hi == 45 for _, _, hi in train_segs)
    assert len(dm.val_set) == 2 and len(dm.train_set) == 2 * (45 - 4)
    s = dm.train_set[3]
    assert s["target"].shape == s["reference"].shape == s["masked"].shape == (3, 64, 64)
    assert s["mask"].shape == (1, 64, 64) and s["audio"].shape == (1, 80, 16)
    assert s["sync_frames"].shape == (5, 3, 64, 64) and s["sync_audio"].shape == (5, 1, 80, 16)
    assert -1.0 <= float(s["target"].min()) and float(s["target"].max()) <= 1.0
    assert torch.equal(s["sync_frames"][0], s["target"])
    assert torch.equal(s["masked"], apply_mask(s["target"], s["mask"]))
    # The reference is a real frame at least ref_min_gap away from the whole 5-frame window.
    clip = dm.train_set._clip(dm.train_set.clip_ids[dm.train_set.clip_of[3]])
    t = int(dm.train_set.starts[3])
    for i in range(20):
        r = dm.train_set.reference_index(clip.path.name, t, rng=np.random.default_rng(i))
        assert r <= t - 7 or r >= t + 4 + 7
    # p_half: 1 -> always the lower half, 0 -> always the full frame.
    for p, hidden in ((1.0, 0.5), (0.0, 1.0)):
        ds = Stage1DataModule(DataConfig(root=str(prepared_dir), p_half=p), image_size=64).train_set
        assert all(float(ds[i]["mask"].mean()) == hidden for i in range(5))


def test_val_clips_hold_out_whole_clips_and_zero_audio_blanks_only_the_generator_audio(prepared_dir):
    data = Stage1DataModule(DataConfig(root=str(prepared_dir)), image_size=32).data
    first, second = sorted(m.clip_id for m in data.metas)
    train_segs, val_segs, fell_back = split_segments(data, holdout_fraction=0.1, val_clips=[second])
    assert not fell_back and train_segs == [(first, 0, 50)] and val_segs == [(second, 0, 50)]
    for bad in (["nope"], [first, second]):
        with pytest.raises(ConfigError, match="data.val_clips"):
            split_segments(data, holdout_fraction=0.1, val_clips=bad)

    def sample(zero: bool) -> dict:
        cfg = DataConfig(root=str(prepared_dir), val_clips=[second], zero_audio=zero)
        return Stage1DataModule(cfg, image_size=32, sync=True).val_set[7]

    real, zeroed = sample(False), sample(True)
    assert float(real["audio"].abs().sum()) > 0 and not zeroed["audio"].any() and not zeroed["sync_audio"].any()
    # Same picture, reference and mask; the sync expert's mel stays real (it judges the generated mouth).
    for key in ("target", "reference", "mask", "sync_mel"):
        assert torch.equal(real[key], zeroed[key])


def test_train_stream_is_the_same_for_any_worker_count(prepared_dir):
    def first_batches(workers: int) -> list[torch.Tensor]:
        dm = Stage1DataModule(DataConfig(root=str(prepared_dir), batch_size=3, num_workers=workers), image_size=32)
        return [b["target"] for b in itertools.islice(iter(dm.train_dataloader()), 4)]

    for a, b in zip(first_batches(0), first_batches(2)):
        assert torch.equal(a, b)


def test_train_stream_shards_batches_across_ranks(prepared_dir):
    ds = Stage1DataModule(DataConfig(root=str(prepared_dir)), image_size=32).train_set

    def batches(rank: int, world: int, start: int = 0) -> list[torch.Tensor]:
        stream = TrainStream(ds, batch_size=2, seed=0, start_batch=start, rank=rank, world_size=world)
        samples = list(itertools.islice(iter(stream), 4))
        return [torch.stack([s["target"] for s in samples[i:i + 2]]) for i in (0, 2)]

    one = batches(0, 1) + batches(0, 1, start=2)  # per-rank batches 0..3 of a single process
    r0, r1 = batches(0, 2), batches(1, 2)  # each rank's batches 0, 1 of a two-process run
    for got, want in zip((r0[0], r1[0], r0[1], r1[1]), one):
        assert torch.equal(got, want)


def test_syncnet_windows_positives_and_shifted_negatives(prepared_dir):
    dm = SyncNetDataModule(DataConfig(root=str(prepared_dir), neg_min_shift=6), image_size=48)
    ds = dm.train_set
    labels = []
    for i in range(len(ds)):
        s = ds[i]
        assert s["faces"].shape == (15, 24, 48) and s["mel"].shape == (1, 80, 16)
        clip = ds._clip(ds.clip_ids[ds.clip_of[i]])
        t = int(ds.starts[i])
        if s["label"] == 1:
            assert torch.equal(s["mel"], mel_tensor(clip, t))
        else:
            shifts = [d for d in range(-t, len(clip) - t) if torch.equal(s["mel"], mel_tensor(clip, t + d))]
            assert shifts and all(abs(d) >= 6 for d in shifts)
        labels.append(float(s["label"]))
    assert 0.3 < np.mean(labels) < 0.7


# ---------------------------------------------------------------- SyncNet expert


@pytest.mark.heavy
def test_tiny_syncnet_loss_drops(syncnet_expert, prepared_dir):
    """The session's expert (``talkfreq train syncnet`` of tiny_syncnet.yaml, conftest.EXPERT, shared with the LSE
    tests): its run folder, and its loss on the training windows against the same seeded initial weights."""
    steps, run = EXPERT_STEPS, syncnet_expert
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    trained = SyncNet.from_pretrained(run / "model").eval()
    assert trained.config.image_size == 32 and trained.config.width == 128
    torch.manual_seed(0)  # fit() seeds with trainer.seed=0 before building the model: the same initial weights
    initial = SyncNet(config=SyncNetConfig(image_size=32, width=128)).eval()
    # Measured on every training window with its fixed label/shift, in eval mode, before vs after training.
    ds = SyncNetDataModule(DataConfig(root=str(prepared_dir)), image_size=32).train_set
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])

    def scores(model: SyncNet) -> tuple[float, float]:
        with torch.no_grad():
            a, v = model(batch["faces"], batch["mel"])
            acc = ((sync_probability(a, v) > 0.5).float() == batch["label"]).float().mean()
            return float(expert_loss(a, v, batch["label"])), float(acc)

    (before, acc0), (after, acc1) = scores(initial), scores(trained)
    print(f"SyncNet on {len(ds)} train windows: BCE {before:.3f} -> {after:.3f}, accuracy {acc0:.2f} -> {acc1:.2f} "
          f"after {steps} steps")
    # Below ln 2 = 0.693, the BCE of the best constant guess: the expert has started to use the mouth and the audio.
    assert after < before - 0.05 and after < 0.68
    assert len(column(run_metrics(run), "train/loss")) == steps


# ---------------------------------------------------------------- generators through the CLI


def test_tiny_freak_trains_checkpoints_and_saves_model(prepared_dir, tmp_path):
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "trainer.max_steps=3",
                 "trainer.val_check_interval=3", "logging.sample_every_n_steps=2") == 0
    run = tmp_path / "tiny_freak"
    ckpts = run / "checkpoints"
    assert (ckpts / "last.ckpt").is_file() and (ckpts / "best.ckpt").is_file()
    model = FREAK.from_pretrained(run / "model")
    assert model.config.image_size == 64 and model.config.audio_len == 16
    ckpt = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    assert torch.equal(ckpt["state_dict"]["generator.out_conv.weight"], model.out_conv.weight)
    assert (run / "config.yaml").is_file()
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "spectrum_step0000002.png", "spectrum_step0000003.png", "step0000002.png", "step0000003.png"]
    rows = run_metrics(run)
    assert column(rows, "val/loss") and column(rows, "samples/spectrum_gap")


@pytest.mark.heavy
def test_tiny_wav2lip_trains_and_saves_model(prepared_dir, tmp_path):
    assert train("stage1", "tiny_wav2lip.yaml", prepared_dir, tmp_path, "trainer.max_steps=2",
                 "trainer.val_check_interval=2", "trainer.limit_val_batches=1") == 0
    run = tmp_path / "tiny_wav2lip"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert Wav2Lip.from_pretrained(run / "model").config.image_size == 96


@pytest.mark.heavy
def test_exact_resume(prepared_dir, tmp_path):
    common = ("trainer.val_check_interval=1000", "run.checkpoint_every_n_steps=2", "data.num_workers=0")
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "run.name=straight", "trainer.max_steps=4",
                 *common) == 0
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "run.name=split", "trainer.max_steps=2",
                 *common) == 0
    half = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert half["global_step"] == 2
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "run.name=split", "trainer.max_steps=4",
                 "run.resume=last", *common) == 0
    a = FREAK.from_pretrained(tmp_path / "straight" / "model").state_dict()
    b = FREAK.from_pretrained(tmp_path / "split" / "model").state_dict()
    assert not torch.equal(a["out_conv.weight"], half["state_dict"]["generator.out_conv.weight"])  # it trained on
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


@pytest.mark.heavy
def test_gan_path_with_sync_expert_runs_manual_optimisation(prepared_dir, tmp_path):
    expert = SyncNet(config=SyncNetConfig(image_size=48)).save_pretrained(tmp_path / "expert")
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "trainer.max_steps=2",
                 "trainer.val_check_interval=2", "trainer.log_every_n_steps=1", "trainer.gradient_clip_val=1.0",
                 "loss.gan=0.1", "loss.sync=0.03", f"loss.syncnet={expert}", "disc.base_channels=8",
                 "disc.num_layers=2", "optim.schedule=cosine", "optim.warmup_steps=1") == 0
    run = tmp_path / "tiny_freak"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # One batch = one step (the discriminator's optimiser step is not counted), and two optimiser states.
    assert ckpt["global_step"] == 2 and len(ckpt["optimizer_states"]) == 2
    assert not any(k.startswith("sync_expert.") for k in ckpt["state_dict"])  # frozen nets stay out of the .ckpt
    assert any(k.startswith("disc.") for k in ckpt["state_dict"])
    rows = run_metrics(run)
    for key in ("train/d_loss", "train/adv", "train/sync", "val/sync"):
        assert len(column(rows, key)) >= 1, key
    FREAK.from_pretrained(run / "model")


def test_a_mouth_discriminator_sees_only_the_mouth_box(prepared_dir, tmp_path, monkeypatch):
    from talkfreq.losses.region import mouth_crop
    from talkfreq.models.discriminator import PatchDiscriminator

    seen = []
    forward = PatchDiscriminator.forward
    monkeypatch.setattr(PatchDiscriminator, "forward", lambda self, x: seen.append(x.shape[-2:]) or forward(self, x))
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "trainer.max_steps=2",
                 "trainer.val_check_interval=2", "trainer.log_every_n_steps=1", "loss.gan=0.1",
                 "loss.gan_region=mouth", "disc.base_channels=8", "disc.num_layers=1") == 0
    size = FREAK.from_pretrained(tmp_path / "tiny_freak" / "model").config.image_size
    assert seen and set(seen) == {mouth_crop(torch.zeros(1, 3, size, size)).shape[-2:]}
    assert column(run_metrics(tmp_path / "tiny_freak"), "train/adv")
    from talkfreq.config import load_config
    from talkfreq.training.stage1 import Config, check_config

    with pytest.raises(ConfigError, match="loss.gan_region"):
        check_config(load_config(Config, None, ["loss.gan_region=lips"]))


def test_hubert_audio_sets_freak_input_from_the_data(prepared_dir, tmp_path):
    # Stand-in speech features (random, D = 24) so the hubert path runs without a speech model.
    data = tmp_path / "data"
    shutil.copytree(prepared_dir, data)
    index = json.loads((data / "index.json").read_text())
    rng = np.random.default_rng(0)
    for row in index:
        row["speech_dim"] = 24
        row["speech_model"], row["speech_layer"] = "/models/tiny-hubert", 5  # as prepare records it
        feats = rng.normal(size=(row["n_frames"], 24)).astype(np.float16)
        np.save(data / "clips" / row["clip_id"] / "speech.npy", feats)
    (data / "index.json").write_text(json.dumps(index))
    assert train("stage1", "tiny_freak.yaml", data, tmp_path, "data.audio=hubert", "data.context=3",
                 "trainer.max_steps=1", "trainer.val_check_interval=1") == 0
    model = FREAK.from_pretrained(tmp_path / "tiny_freak" / "model")
    assert (model.config.audio_len, model.config.audio_dim) == (7, 24)
    # The encoder that made the features travels with the model, so infer needs no --speech-model.
    from talkfreq.audio.features import SpeechFeatureConfig
    from talkfreq.pipeline.inputs import resolve_speech

    speech = resolve_speech(tmp_path / "tiny_freak" / "model", SpeechFeatureConfig(model=""))
    assert (speech.model, speech.layer) == ("/models/tiny-hubert", 5)
    given = resolve_speech(tmp_path / "tiny_freak" / "model", SpeechFeatureConfig(model="mine", layer=2))
    assert (given.model, given.layer) == ("mine", 2)  # the user's choice wins
    # Clips from two different encoders cannot train one model: a start-up error.
    index[0]["speech_model"] = "/models/other"
    (data / "index.json").write_text(json.dumps(index))
    assert train("stage1", "tiny_freak.yaml", data, tmp_path, "data.audio=hubert", "run.name=mixed",
                 "trainer.max_steps=1") == 2


@pytest.mark.heavy
def test_perceptual_term_with_user_vgg16_file(prepared_dir, tmp_path):
    # Random weights in torchvision's VGG16 format stand in for vgg16-397923af.pth (not available here).
    from talkfreq.models.lpips import VGG16Features

    vgg = tmp_path / "vgg16.pth"
    torch.save(VGG16Features().state_dict(), vgg)
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "--vgg16", str(vgg), "loss.percep=1.0",
                 "trainer.max_steps=1", "trainer.val_check_interval=1", "trainer.limit_val_batches=1",
                 "trainer.log_every_n_steps=1") == 0
    run = tmp_path / "tiny_freak"
    assert column(run_metrics(run), "train/percep")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("percep.") for k in ckpt["state_dict"])  # 58 MB of frozen VGG16 stay out


# ---------------------------------------------------------------- start-up errors


@pytest.mark.parametrize("overrides, message", [
    (("loss.percep=0.1",), "VGG16 weights not found"),
    (("loss.sync=0.03",), "needs a trained SyncNet expert"),
    (("data.audio=hubert",), "has no speech features"),
    (("loss.sync=0.03", "loss.syncnet=/nonexistent/expert"), "model folder not found"),
])
def test_startup_errors_are_one_line_before_training(prepared_dir, tmp_path, capsys, monkeypatch, overrides,
                                                      message):
    monkeypatch.delenv("TALKFREQ_VGG16", raising=False)
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, *overrides) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert err.startswith("talkfreq: error:")
    assert not (tmp_path / "tiny_freak").exists()  # nothing was started: no run folder, no logger, no checkpoint


# ---------------------------------------------------------------- DDP and wandb


@pytest.mark.heavy
def test_ddp_two_cpu_processes(prepared_dir, tmp_path):
    cmd = [sys.executable, "-m", "talkfreq.cli", "train", "stage1", "-c", str(CFG / "tiny_freak.yaml"),
           "--data", str(prepared_dir), f"run.out_dir={tmp_path}", "trainer.max_steps=2",
           "trainer.val_check_interval=2", "trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr and "distributed_backend=gloo" in proc.stderr
    run = tmp_path / "tiny_freak"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    FREAK.from_pretrained(run / "model")


@pytest.mark.heavy
@pytest.mark.parametrize("logger", ["wandb", "tensorboard"])
def test_image_loggers_wandb_offline_and_tensorboard(prepared_dir, tmp_path, monkeypatch, logger):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, f"logging.logger={logger}",
                 "trainer.max_steps=2", "trainer.val_check_interval=2", "logging.sample_every_n_steps=2") == 0
    run = tmp_path / "tiny_freak"
    if logger == "wandb":
        runs = list((run / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
        media = sorted(p.name for p in (runs[0] / "files" / "media" / "images").rglob("*.png"))
        assert any(n.startswith("grid") for n in media) and any(n.startswith("spectra") for n in media), media
        import wandb

        assert wandb.run is None  # fit() finished its run: the next fit in this process gets a new one
    else:
        assert any((run / "tb").glob("version_*/events.out.tfevents.*"))


@pytest.mark.heavy
@pytest.mark.parametrize(("start", "on"), [(100.0, True), (1e-6, False)])
def test_sync_term_switches_on_below_sync_start(prepared_dir, tmp_path, start, on):
    # Wav2Lip's warm-up: the sync term joins the loss after a validation whose sync loss is below loss.sync_start.
    expert = SyncNet(config=SyncNetConfig(image_size=48)).save_pretrained(tmp_path / "expert")
    assert train("stage1", "tiny_freak.yaml", prepared_dir, tmp_path, "trainer.max_steps=3",
                 "trainer.val_check_interval=1", "trainer.log_every_n_steps=1", "trainer.limit_val_batches=1",
                 "loss.sync=0.03", f"loss.syncnet={expert}", f"loss.sync_start={start}") == 0
    run = tmp_path / "tiny_freak"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert bool(ckpt["state_dict"]["sync_on"]) is on  # saved, so a resumed run keeps the switch
    rows = run_metrics(run)
    assert len(column(rows, "val/sync")) >= 1  # validation measures it either way
    assert (len(column(rows, "train/sync")) >= 1) is on  # training pays for the expert only once it is on


def test_sync_loss_takes_bf16_frames_under_cpu_autocast():
    """bf16-mixed training on the CPU: the resize to the expert's size has no bf16 CPU kernel, so it runs in fp32."""
    from types import SimpleNamespace

    from talkfreq.training.stage1 import Stage1Module

    torch.manual_seed(0)
    expert = SyncNet(config=SyncNetConfig(image_size=32)).eval()
    fake = (torch.rand(2 * 5, 3, 48, 48) * 2 - 1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = Stage1Module.sync_loss(SimpleNamespace(sync_expert=expert), fake, torch.randn(2, 1, 80, 16))
    assert torch.isfinite(loss)
