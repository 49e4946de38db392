"""Stage 1's own outputs as the refiner's degraded inputs (talkfreq.pipeline.stage1_pairs, data.stage1_outputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from talkfreq.data.datasets import mel_tensor
from talkfreq.data.degradations import Degradation
from talkfreq.data.prepared import PreparedDataset
from talkfreq.data.refiner_data import RefinerDataConfig, RefinerDataModule, resize_uint8, uint8_to_tensor
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.models.freak import FREAK, FREAKConfig
from talkfreq.pipeline import inputs as mi
from talkfreq.pipeline.stage1_pairs import META_FILE, model_digest, write_stage1_outputs

TINY = dict(image_size=32, base_channels=4, channel_mult=[1, 1], num_scales=2, audio_hidden=8, audio_embed_dim=8,
            avfm_decoder_scales=1, dub_mask="lower", compose=True)


@pytest.fixture(scope="module")
def pairs(prepared_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    torch.manual_seed(0)
    FREAK(config=FREAKConfig(**TINY)).save_pretrained(root / "model")
    return root, write_stage1_outputs(root / "model", data=prepared_dir, out=root / "outputs")


def test_outputs_are_the_dubbing_forward_of_each_frame(pairs, prepared_dir):
    root, out = pairs
    data = PreparedDataset(prepared_dir)
    meta = json.loads((out / META_FILE).read_text())
    assert meta["mask"] == "lower" and meta["digest"] == model_digest(root / "model")
    assert sorted(meta["clips"]) == sorted(m.clip_id for m in data.metas)
    assert not list(out.parent.glob(".outputs.partial-*"))
    model = FREAK.from_pretrained(root / "model").eval()
    clip = data.clip(data.metas[0].clip_id)
    arr = np.load(out / f"{data.metas[0].clip_id}.npy")
    assert arr.shape == clip.frames.shape and arr.dtype == np.uint8
    k = 7
    with torch.no_grad():
        gen = mi.stage1_batch(model, targets=clip.frames[k : k + 1], references=clip.frames[k : k + 1],
                              audio=mel_tensor(clip, k).numpy()[None], mask="lower")
    direct = resize_uint8(((gen[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy(), 96)
    assert np.abs(direct.astype(int) - arr[k].astype(int)).max() <= 1
    # compose keeps the visible (upper) pixels: the output there is the frame up to the 96 -> 32 -> 96 resize; the
    # untrained generator's lower face is not
    err = np.abs(arr[k].astype(int) - clip.frames[k].astype(int)).mean(axis=(1, 2))
    assert err[:20].mean() < 6 and err[65:90].mean() > 2 * err[:20].mean()


def test_refiner_inputs_come_from_stage1_with_its_probability(pairs, prepared_dir):
    _, out = pairs
    base = dict(root=str(prepared_dir), frame_range=None)
    deg = Degradation(kinds=["gaussian_blur"], gaussian_sigma=[2.0, 2.0])
    dm = RefinerDataModule(RefinerDataConfig(**base, stage1_outputs=str(out), stage1_prob=1.0), image_size=48,
                           degradation=deg)
    ds = dm.train_set
    cid = ds.clip_ids[ds.clip_of[3]]
    t = int(ds.starts[3])
    want = uint8_to_tensor(resize_uint8(np.load(out / f"{cid}.npy")[t], 48))
    assert torch.equal(ds[3]["input"], want)
    # prob 0: the old behaviour, the same random degradation as without any stage-1 folder
    plain = RefinerDataModule(RefinerDataConfig(**base), image_size=48, degradation=deg).train_set
    zero = RefinerDataModule(RefinerDataConfig(**base, stage1_outputs=str(out)), image_size=48,
                             degradation=deg).train_set
    assert torch.equal(plain[3]["input"], zero[3]["input"])
    assert not torch.equal(plain[3]["input"], want)
    # clean phase (no degradation): the input is the clean crop whatever the probability
    clean = RefinerDataModule(RefinerDataConfig(**base, stage1_outputs=str(out), stage1_prob=1.0),
                              image_size=48).train_set
    assert torch.equal(clean[3]["input"], clean[3]["clean"])
    mixed = RefinerDataModule(RefinerDataConfig(**base, stage1_outputs=str(out), stage1_prob=0.5), image_size=48,
                              degradation=deg).train_set
    from_stage1 = [torch.equal(mixed[i]["input"], uint8_to_tensor(resize_uint8(
        np.load(out / f"{mixed.clip_ids[mixed.clip_of[i]]}.npy")[int(mixed.starts[i])], 48))) for i in range(40)]
    assert 8 <= sum(from_stage1) <= 32


def test_stage1_output_config_errors(pairs, prepared_dir, tmp_path):
    _, out = pairs
    with pytest.raises(ConfigError, match="stage1_outputs"):
        RefinerDataModule(RefinerDataConfig(root=str(prepared_dir), stage1_prob=0.5), image_size=48,
                          degradation=Degradation())
    with pytest.raises(ConfigError, match="stage1_prob"):
        RefinerDataModule(RefinerDataConfig(root=str(prepared_dir), stage1_outputs=str(out), stage1_prob=1.5),
                          image_size=48, degradation=Degradation())
    with pytest.raises(TalkfreqError, match="no stage-1 outputs"):
        RefinerDataModule(RefinerDataConfig(root=str(prepared_dir), stage1_outputs=str(tmp_path), stage1_prob=0.5),
                          image_size=48, degradation=Degradation())


def test_demo_writes_pairs_once_per_generator(pairs, prepared_dir, tmp_path):
    from talkfreq.demo import stage1_pairs
    from talkfreq.training.refiner import Config

    root, _ = pairs
    cfg = Config()
    assert stage1_pairs(cfg, stage1=root / "model", data=prepared_dir, out=tmp_path) == []
    cfg.data.stage1_prob = 0.5
    (override,) = stage1_pairs(cfg, stage1=root / "model", data=prepared_dir, out=tmp_path, quiet=True)
    folder = tmp_path / "stage1_outputs" / model_digest(root / "model")
    assert override == f"data.stage1_outputs={folder}" and (folder / META_FILE).is_file()
    stamp = (folder / META_FILE).stat().st_mtime_ns
    assert stage1_pairs(cfg, stage1=root / "model", data=prepared_dir, out=tmp_path, quiet=True) == [override]
    assert (folder / META_FILE).stat().st_mtime_ns == stamp  # reused, not rewritten
    other = tmp_path / "other"
    torch.manual_seed(1)
    FREAK(config=FREAKConfig(**TINY)).save_pretrained(other)
    assert model_digest(other) != model_digest(root / "model")
