"""The refiner's sync-preservation term (talkfreq.losses.sync): the loss, its stage-1 windows, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talkfreq.data.degradations import Degradation
from talkfreq.data.refiner_data import RefinerDataConfig, RefinerDataModule, resize_uint8, uint8_to_tensor
from talkfreq.errors import ConfigError
from talkfreq.losses.sync import sync_preservation_loss
from talkfreq.models.freak import FREAK, FREAKConfig
from talkfreq.models.syncnet import SyncNet, SyncNetConfig, stack_lower_halves
from talkfreq.pipeline.stage1_pairs import write_stage1_outputs

REPO = Path(__file__).resolve().parents[1]
TINY_FREAK = dict(image_size=32, base_channels=4, channel_mult=[1, 1], num_scales=2, audio_hidden=8,
                  audio_embed_dim=8, avfm_decoder_scales=1, dub_mask="lower", compose=True)


@pytest.fixture(scope="module")
def expert(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("expert") / "model"
    model = SyncNet(config=SyncNetConfig(image_size=48, width=32))
    with torch.no_grad():  # BatchNorm statistics of real-ish inputs: a fresh net embeds everything alike in eval
        for _ in range(20):
            model(torch.rand(8, 15, 24, 48) * 2 - 1, torch.randn(8, 1, 80, 16))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def outputs(prepared_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sp_pairs")
    torch.manual_seed(0)
    FREAK(config=FREAKConfig(**TINY_FREAK)).save_pretrained(root / "model")
    return write_stage1_outputs(root / "model", data=prepared_dir, out=root / "outputs")


def test_video_embedding_is_the_forward_video_branch(expert):
    model = SyncNet.frozen(str(expert))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    frames = torch.rand(2, 5, 3, 64, 64) * 2 - 1
    faces = model.face_input(frames)  # resized 64 -> 48, lower halves stacked
    assert faces.shape == (2, 15, 24, 48)
    same = model.face_input(torch.nn.functional.interpolate(frames.flatten(0, 1), size=48, mode="bilinear",
                                                            antialias=True).unflatten(0, (2, 5)))
    assert torch.allclose(faces, same, atol=1e-6)
    assert torch.equal(model.face_input(frames[..., :48, :48]), stack_lower_halves(frames[..., :48, :48]))
    out = model(faces, torch.randn(2, 1, 80, 16))
    assert torch.allclose(model.video_embedding(faces), out.video_emb)


def test_loss_is_zero_on_stage1_itself_and_trains_the_refined_side_only(expert):
    model = SyncNet.frozen(str(expert))
    torch.manual_seed(1)
    stage1 = torch.rand(3, 5, 3, 48, 48) * 2 - 1
    assert float(sync_preservation_loss(model, stage1.clone(), stage1)) == pytest.approx(0.0, abs=1e-6)
    # a refined window whose mouth moves differently (frames reversed in time) embeds elsewhere
    refined = stage1.flip(1).clone().requires_grad_(True)
    loss = sync_preservation_loss(model, refined, stage1.requires_grad_(True))
    assert float(loss.detach()) > 1e-3
    loss.backward()
    assert refined.grad is not None and refined.grad.abs().sum() > 0 and stage1.grad is None
    # the upper halves are not the expert's input: changing them costs nothing
    upper = stage1.detach().clone()
    upper[..., :24, :] = 0.0
    assert float(sync_preservation_loss(model, upper, stage1.detach())) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="shape"):
        sync_preservation_loss(model, stage1[:, :4], stage1)


def test_windows_are_five_consecutive_stage1_outputs(prepared_dir, outputs):
    deg = Degradation(kinds=["gaussian_blur"], gaussian_sigma=[2.0, 2.0])
    cfg = RefinerDataConfig(root=str(prepared_dir), stage1_outputs=str(outputs), stage1_prob=0.5)
    plain = RefinerDataModule(cfg, image_size=48, degradation=deg)
    dm = RefinerDataModule(cfg, image_size=48, degradation=deg, sync_windows=True)
    ds = dm.train_set
    assert "sync_window" not in plain.train_set[0] and "sync_window" not in dm.val_set[0]
    for i in (0, 5, 11):
        s, p = ds[i], plain.train_set[i]
        assert torch.equal(s["input"], p["input"]) and torch.equal(s["clean"], p["clean"])  # same other draws
        win = s["sync_window"]
        assert win.shape == (5, 3, 48, 48)
        # which window: find its first frame among the stage-1 outputs of the training split
        hits = [(cid, t) for cid in ds.clip_ids for t in range(len(np.load(outputs / f"{cid}.npy")) - 4)
                if torch.equal(uint8_to_tensor(resize_uint8(np.load(outputs / f"{cid}.npy")[t], 48)), win[0])]
        assert hits
        cid, t = hits[0]
        arr = np.load(outputs / f"{cid}.npy")
        want = uint8_to_tensor(np.stack([resize_uint8(f, 48) for f in arr[t:t + 5]]))
        assert torch.equal(win, want)
        assert any(cid == c and lo <= t and t + 5 <= hi for c, lo, hi in _train_segments(dm))
    with pytest.raises(ConfigError, match="stage1_outputs"):
        RefinerDataModule(RefinerDataConfig(root=str(prepared_dir)), image_size=48, degradation=deg,
                          sync_windows=True)


def _train_segments(dm):
    from talkfreq.data.refiner_data import split_frames

    return split_frames(dm.data, dm.cfg)[0]


def test_config_needs_an_expert_and_restoration():
    from talkfreq.training.refiner import Config, RefinerLossConfig

    with pytest.raises(ConfigError, match="sync_expert"):
        Config(loss=RefinerLossConfig(sync_preserve=1.0), denoise_finetune=True)
    with pytest.raises(ConfigError, match="denoise_finetune"):
        Config(loss=RefinerLossConfig(sync_preserve=1.0, sync_expert="x"))
    with pytest.raises(ConfigError, match="sync_windows"):
        Config(loss=RefinerLossConfig(sync_preserve=1.0, sync_expert="x", sync_windows=0), denoise_finetune=True)


@pytest.mark.heavy
def test_a_tiny_refiner_trains_with_the_term_and_keeps_the_expert_out_of_its_files(prepared_dir, outputs, expert,
                                                                                  tmp_path):
    from talkfreq.cli import main

    argv = ["train", "refiner", "-c", str(REPO / "configs/refiner/tiny.yaml"), "--data", str(prepared_dir),
            f"run.out_dir={tmp_path}", "run.name=sp", "logging.logger=csv", "logging.sample_every_n_steps=0",
            "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
            "denoise_finetune=true", "denoise.start_step=2", f"data.stage1_outputs={outputs}",
            "loss.sync_preserve=1.0", f"loss.sync_expert={expert}", "-q"]
    assert main(argv) == 0
    ckpt = torch.load(tmp_path / "sp" / "checkpoints" / "last.ckpt", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if "sync" in k or "face_encoder" in k]
    metrics = (tmp_path / "sp" / "csv").rglob("metrics.csv")
    header = next(open(next(metrics))).strip().split(",")
    assert "train/sync_preserve" in header  # logged in the restoring steps
    saved = json.loads((tmp_path / "sp" / "model" / "config.json").read_text())
    assert saved["model_class"] == "SOVQAE"
