"""The per-identity recipe's parts: the ``lower`` dubbing mask, the mouth-weighted L1, the seam measure, the
``personalize`` command."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from talkfreq.cli import main
from talkfreq.config import load_yaml
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.face.config import MOUTH_REGION, REGIONS, fraction_box
from talkfreq.losses.region import mouth_mask, mouth_weighted_l1
from talkfreq.metrics.seam import boundary_band, seam_gradient
from talkfreq.models.freak import FREAK, FREAKConfig
from talkfreq.models.masks import apply_mask, make_mask
from talkfreq.pipeline import inputs as mi
from talkfreq.pipeline.paste import feather_mask
from talkfreq.pipeline.stage1_pairs import model_digest


@pytest.mark.parametrize("size", [64, 128, 256])
def test_lower_mask_hides_the_whole_mouth_box_and_nothing_above_the_nose(size):
    m = make_mask("lower", batch=2, size=size)
    assert m.shape == (2, 1, size, size) and torch.equal(m[0], m[1])
    x0, y0, x1, y1 = fraction_box(MOUTH_REGION, size)
    assert bool((m[0, 0, y0:y1, x0:x1] == 1).all())  # no pixel of the scored mouth leaks into the input
    cx, cy, ax, ay = REGIONS["lower"]
    assert float(m[0, 0, : int((cy - ay) * size) - 1].sum()) == 0.0  # eyes, nose bridge: visible
    assert math.isclose(float(m.mean()), math.pi * ax * ay, rel_tol=0.03)  # the ellipse's area


def test_lower_mask_is_where_the_dubbing_paste_blends():
    size = 128
    hidden = make_mask("lower", batch=1, size=size)[0, 0].numpy() > 0
    alpha = feather_mask(size, region="lower")
    # the paste takes the generator's pixels (alpha > 0.5) only where the generator had to draw them
    assert (alpha[~hidden] <= 0.5 + 1e-6).all() and (alpha[hidden] > 0.3).mean() > 0.95


def test_freak_config_dub_mask_and_the_pipeline_uses_it():
    tiny = dict(image_size=32, base_channels=4, channel_mult=[1, 1], num_scales=2, audio_hidden=8, audio_embed_dim=8,
                avfm_decoder_scales=1)
    with pytest.raises(ConfigError, match="dub_mask"):
        FREAK(config=FREAKConfig(**tiny, dub_mask="mouth"))
    assert mi.dub_mask(FREAK(config=FREAKConfig(**tiny))) == "half"
    model = FREAK(config=FREAKConfig(**tiny, dub_mask="lower")).eval()
    assert mi.dub_mask(model) == "lower"
    target = torch.rand(1, 3, 32, 32) * 2 - 1
    audio = torch.randn(1, 16, 80)
    with torch.no_grad():
        out = mi.stage1_forward(model, target=target, reference=target, audio=audio, mask="lower")
        mask = make_mask("lower", batch=1, size=32)
        assert torch.allclose(out, model(target, apply_mask(target, mask), audio, mask))


def test_dataset_draws_the_generators_dub_mask(prepared_dir):
    from talkfreq.data.datasets import DataConfig, Stage1DataModule

    dm = Stage1DataModule(DataConfig(root=str(prepared_dir), p_half=1.0), image_size=32, dub_mask="lower")
    sample = dm.train_set[0]
    assert torch.equal(sample["mask"], make_mask("lower", batch=1, size=32)[0])


def test_mouth_weighted_l1():
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert torch.allclose(mouth_weighted_l1(a, b, mouth_weight=0.0), F.l1_loss(a, b))
    assert torch.allclose(mouth_weighted_l1(a, a + 0.25, mouth_weight=4.0), torch.tensor(0.25))  # uniform error
    only_mouth = a + 0.5 * mouth_mask(a)
    assert mouth_weighted_l1(a, only_mouth, mouth_weight=4.0) > 2 * F.l1_loss(a, only_mouth)


def test_seam_gradient_sees_a_box_and_a_blur():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    base = (127 + 40 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 10, (128, 128))).clip(0, 255)
    real = np.repeat(base[None, :, :, None], 3, axis=3).astype(np.uint8)
    band = boundary_band(128)
    assert band.any() and not band[:20].any()
    cx, cy, ax, ay = (v * 128 for v in REGIONS["lower"])
    inside = ((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2 <= 1
    boxed = real.copy()
    boxed[0][inside] = np.clip(boxed[0][inside].astype(int) + 40, 0, 255)
    blurred = real.copy()
    blurred[0][inside] = cv2.GaussianBlur(real[0], (0, 0), 4)[inside]
    g_real, g_box, g_blur = (float(seam_gradient(x)[0]) for x in (real, boxed, blurred))
    assert g_box > 1.1 * g_real and g_blur < 0.9 * g_real
    with pytest.raises(ValueError):
        seam_gradient(real[0])


def test_personalize_help_and_missing_clip(tmp_path, capsys):
    assert main(["personalize", "--help"]) == 0
    assert "per-identity" in capsys.readouterr().out.lower()
    assert main(["personalize", str(tmp_path / "nope.mp4")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.mp4" in err[0]


def test_demo_video_runs_the_personal_recipe(tmp_path, monkeypatch):
    """`demo --video CLIP` is `personalize CLIP`: the 64 px demo networks draw no mouth on a real face, so a user's
    clip gets the per-identity configs, 256 px crops and the 20 min budget; synth keeps the demo's own."""
    import talkfreq.demo
    from talkfreq.cli.recipes import PERSONAL_MINUTES

    clip = tmp_path / "me.mp4"
    clip.write_bytes(b"not read: run_demo is replaced")
    seen = []
    monkeypatch.setattr(talkfreq.demo, "run_demo", lambda *, out, cfg, video, quiet: seen.append((out, cfg, video)))
    assert main(["demo", "--video", str(clip), "-q"]) == 0
    assert main(["personalize", str(clip), "-q"]) == 0
    assert main(["demo", "--video", str(clip), "--quick", "-q", "crop_size=128"]) == 0
    assert main(["demo", "--quick", "-q"]) == 0
    (_, as_demo, v1), (out2, as_personal, v2), (_, quick, _), (_, synth, v4) = seen
    assert v1 == v2 == clip and v4 is None and out2 == Path("outputs/personal/me")
    assert as_demo == as_personal
    assert as_demo.configs == str(talkfreq.demo.PERSONAL_CONFIGS) and as_demo.crop_size == 256
    assert as_demo.minutes == PERSONAL_MINUTES and as_demo.steps is None
    assert (quick.steps, quick.minutes, quick.crop_size) == (4, None, 128)  # a smoke run has no budget; overrides win
    assert synth.configs == str(talkfreq.demo.REPO_CONFIGS) and synth.minutes is None
    assert as_demo.scorers == talkfreq.demo.PERSONAL_SCORERS > 1 and synth.scorers == 1  # the report's experts


def test_demo_config_scorers_and_given_scorer_names(tmp_path):
    from talkfreq.demo import DemoConfig, run_demo

    with pytest.raises(ConfigError, match="scorers must be >= 1"):
        DemoConfig(scorers=0)
    # a later scorer's model may be given (its run name); its overrides are syncnet's, and there is no syncnet_s0
    for given, why in (({"models": {"syncnet_s2": "x"}}, "missing.mp4"),
                       ({"overrides": {"syncnet_s1": []}}, "unknown network 'syncnet_s1'"),
                       ({"models": {"syncnet_s0": "x"}}, "unknown network 'syncnet_s0'")):
        with pytest.raises(TalkfreqError, match=why):  # checked before anything is read
            run_demo(out=tmp_path / "d", cfg=DemoConfig(**given, steps=1), video=tmp_path / "missing.mp4")


# ---------------------------------------------------------------- audio-matched references


def test_mel_keys_and_bank_round_trip(tmp_path, prepared_dir):
    from talkfreq.data.prepared import PreparedClip, PreparedDataset
    from talkfreq.data.retrieval import KEY_POOL, ReferenceBank, mel_keys

    data = PreparedDataset(prepared_dir)
    clip = PreparedClip(data.root / "clips" / data.metas[0].clip_id)
    keys = mel_keys(clip.mel, range(len(clip)), fps=clip.meta.fps)
    assert keys.shape == (len(clip), 80 * KEY_POOL) and np.isfinite(keys).all()
    crops = np.asarray(clip.frames[: len(clip)])
    bank = ReferenceBank(crops=crops, keys=keys)
    own = bank.nearest(keys)
    assert (keys[own] == keys).all()  # each key's nearest is itself (or an identical twin)
    back = ReferenceBank.load(bank.save(tmp_path).parent)
    assert np.array_equal(back.crops, crops) and np.array_equal(back.keys, keys)
    assert ReferenceBank.load(tmp_path / "none") is None
    with pytest.raises(Exception, match="do not match"):
        ReferenceBank(crops=crops[:3], keys=keys)


def test_audio_references_are_far_from_the_target_and_audio_near(prepared_dir):
    from talkfreq.data.datasets import DataConfig, Stage1DataModule
    from talkfreq.data.retrieval import distances

    cfg = DataConfig(root=str(prepared_dir), reference="audio", ref_topk=2, ref_min_gap=5)
    ds = Stage1DataModule(cfg, image_size=32).train_set
    rand = Stage1DataModule(DataConfig(root=str(prepared_dir)), image_size=32).train_set
    gaps, d_audio, d_rand = [], [], []
    for i in range(0, len(ds), 3):
        cid, t = ds.clip_ids[ds.clip_of[i]], int(ds.starts[i])
        frames, keys = ds.valid_frames[cid], ds.audio_keys(cid)
        rng = np.random.default_rng(i)
        r, q = ds.reference_index(cid, t, rng=rng), rand.reference_index(cid, t, rng=np.random.default_rng(i))
        gaps.append(abs(r - t))
        at = lambda f: keys[np.searchsorted(frames, f)][None]  # noqa: E731
        d_audio.append(distances(at(t), at(r))[0, 0])
        d_rand.append(distances(at(t), at(q))[0, 0])
    assert min(gaps) >= 5
    assert np.mean(d_audio) < 0.8 * np.mean(d_rand)


def test_infer_retrieves_references_from_the_models_bank(tmp_path, prepared_dir, synth_dir):
    from talkfreq.data.datasets import DataConfig, Stage1DataModule
    from talkfreq.io import VideoReader
    from talkfreq.pipeline.infer import InferConfig, infer

    tiny = dict(image_size=32, base_channels=8, channel_mult=[1, 2, 2], num_scales=3, audio_hidden=16,
                audio_embed_dim=16, avfm_decoder_scales=1, dub_mask="lower")
    model = tmp_path / "model"
    FREAK(config=FREAKConfig(**tiny)).save_pretrained(model)
    bank = Stage1DataModule(DataConfig(root=str(prepared_dir), reference="audio"), image_size=32).reference_bank(
        max_frames=20)
    assert len(bank.crops) <= 20 and bank.crops.shape[1:] == (32, 32, 3) and bank.crops.dtype == np.uint8
    clip = synth_dir / "id00" / "id00_c00.mp4"
    with pytest.raises(Exception, match="no reference_bank.npz"):
        infer(clip, audio=clip, stage1=model, out=tmp_path / "x.mp4", cfg=InferConfig(reference="bank"))
    assert not (tmp_path / "x.mp4").exists()
    bank.save(model)
    outs = {}
    for ref in ("auto", "same"):
        outs[ref] = infer(clip, audio=clip, stage1=model, out=tmp_path / f"{ref}.mp4", cfg=InferConfig(reference=ref))
        assert outs[ref].frames == 50 and outs[ref].generated == 50
    a, b = (np.stack(list(VideoReader(outs[k].out, fps=None))) for k in ("auto", "same"))
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0  # the bank's references change what is drawn


def test_jitter_moves_training_samples_only(prepared_dir):
    from talkfreq.data.datasets import DataConfig, Stage1DataModule, jitter

    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(jitter(x, rng=np.random.default_rng(0), amount=1e-9), x, atol=1e-5)
    moved = jitter(x, rng=np.random.default_rng(0), amount=0.1)
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    plain = Stage1DataModule(DataConfig(root=str(prepared_dir)), image_size=32)
    jit = Stage1DataModule(DataConfig(root=str(prepared_dir), jitter=0.08), image_size=32)
    a = plain.train_set.sample(3, rng=np.random.default_rng(1))
    b = jit.train_set.sample(3, rng=np.random.default_rng(1))
    assert torch.equal(a["audio"], b["audio"]) and not torch.allclose(a["target"], b["target"])
    assert torch.equal(b["masked"], apply_mask(b["target"], b["mask"]))  # the input is the moved target, masked
    assert torch.equal(plain.val_set[0]["target"], jit.val_set[0]["target"])  # validation is never moved


def test_stage1_init_from_a_trained_generator_and_audio_references_save_a_bank(prepared_dir, tmp_path):
    from pathlib import Path

    from talkfreq.data.retrieval import BANK_FILE, ReferenceBank
    from talkfreq.training.stage1 import Config, Stage1Module

    cfg_file = Path(__file__).resolve().parents[1] / "configs" / "stage1" / "tiny_freak.yaml"
    common = ["--data", str(prepared_dir), f"run.out_dir={tmp_path}", "trainer.max_steps=2",
              "trainer.val_check_interval=2", "logging.logger=none", "freak.dub_mask=lower", "data.p_half=1.0"]
    assert main(["train", "stage1", "-c", str(cfg_file), *common, "run.name=a", "data.reference=audio",
                 "data.jitter=0.05", "data.flip=true"]) == 0
    bank = ReferenceBank.load(tmp_path / "a" / "model")
    assert bank is not None and bank.crops.shape[1:] == (64, 64, 3)
    src = FREAK.from_pretrained(tmp_path / "a" / "model")
    assert src.config.dub_mask == "lower"
    from talkfreq.config import load_config

    cfg = load_config(Config, cfg_file, ["freak.dub_mask=lower", "freak.audio_len=16", "freak.audio_dim=80"])
    module = Stage1Module(cfg=cfg)
    assert not torch.equal(module.generator.out_conv.weight, src.out_conv.weight)
    module.load_initial(tmp_path / "a" / "model")
    assert all(torch.equal(a, b) for a, b in zip(module.generator.state_dict().values(), src.state_dict().values()))
    other = Stage1Module(cfg=load_config(Config, cfg_file, ["freak.base_channels=4"]))
    with pytest.raises(Exception, match="other shapes"):
        other.load_initial(tmp_path / "a" / "model")
    assert not (tmp_path / "b").exists() and (tmp_path / "a" / "model" / BANK_FILE).is_file()


def test_compose_keeps_the_visible_pixels_exactly_and_gradients_reach_the_hidden_ones():
    tiny = dict(image_size=32, base_channels=4, channel_mult=[1, 1], num_scales=2, audio_hidden=8, audio_embed_dim=8,
                avfm_decoder_scales=1, dub_mask="lower", compose=True)
    model = FREAK(config=FREAKConfig(**tiny))
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = make_mask("lower", batch=2, size=32)
    out = model(target, apply_mask(target, mask), torch.randn(2, 16, 80), mask)
    visible = mask.expand_as(out) == 0
    assert torch.equal(out[visible], target[visible])
    (out - target).abs().mean().backward()
    assert model.out_conv.weight.grad.abs().sum() > 0


@pytest.mark.heavy
def test_personalize_smoke_on_a_real_clip(tmp_path, monkeypatch):
    """The whole recipe at 2 steps per network on the 5 s May clip: model folders, the bank, the 256 px report;
    then with the scorer and FREAK given (the evaluation, checked by the first run, is only recorded there)."""
    import json

    import talkfreq.demo
    from conftest import media

    clip = media("video/real3dportrait_May_5s.mp4")
    out = tmp_path / "may"
    assert main(["personalize", str(clip), "--out", str(out), "--steps", "2", "-q",
                 "overrides={freak: [freak.image_size=64, freak.base_channels=4, data.batch_size=2], "
                 "refiner: [sovqae.image_size=64, data.batch_size=2]}", "new_audio_windows=2"]) == 0
    model = FREAK.from_pretrained(out / "runs" / "freak" / "model")
    assert model.config.dub_mask == "lower" and model.config.compose
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert [r["name"] for r in metrics["rows"]] == ["real", "FREAK", "FREAK+SOVQAE"]
    # the recipe's report is scored by an ensemble of its expert's seeds (talkfreq.demo.PERSONAL_SCORERS)
    seeds = [load_yaml(out / "runs" / run / "config.yaml").trainer.seed for run in ("syncnet", "syncnet_s1",
                                                                                     "syncnet_s2")]
    assert seeds == [seeds[0], seeds[0] + 1, seeds[0] + 2]
    assert metrics["config"]["syncnet_ensemble"] == [str(out / "runs" / f"syncnet_s{i}" / "model") for i in (1, 2)]
    assert any(n.startswith("LSE from the mean distances of") and "of 3 SyncNet experts" in n for n in metrics["notes"])
    assert metrics["config"]["face"]["crop_size"] == 256
    assert all(r["metrics"]["seam"] is not None for r in metrics["rows"])
    # the refiner trained on FREAK's own outputs (the recipe's data.stage1_prob), named by FREAK's weights
    (pairs,) = (out / "stage1_outputs").iterdir()
    assert pairs.name == model_digest(out / "runs" / "freak" / "model")
    assert len(np.load(pairs / "real3dportrait_May_5s_train.npy", mmap_mode="r")) > 90
    # the new-audio check: the held-out face dubbed with the training part's speech, as long as the held-out part
    check = json.loads((out / "new_audio" / "freak.json").read_text())
    assert check["audio"] == "real3dportrait_May_5s_train.mp4 0.0-1.0 s, 1.0-2.0 s"  # two stretches asked for
    assert set(check["original"]) == {"stage1", "refined"} and len(check["windows"]) == 2
    # given models are used as they are: only the refiner trains again, and the given scorer scores
    freak_stamp = (out / "runs" / "freak" / "finished.json").stat().st_mtime_ns
    evaluated = []
    monkeypatch.setattr(talkfreq.demo, "evaluate_dubs", lambda target, cands, **kw: evaluated.append((cands, kw)))
    given = {net: out / "runs" / net / "model" for net in ("syncnet", "freak")}
    assert main(["personalize", str(clip), "--out", str(out), "--steps", "2", "-q",
                 f"models={{syncnet: {given['syncnet']}, freak: {given['freak']}}}",
                 "overrides={refiner: [sovqae.image_size=64, data.batch_size=2, data.stage1_prob=1.0]}",
                 "new_audio=false"]) == 0
    assert (out / "runs" / "freak" / "finished.json").stat().st_mtime_ns == freak_stamp
    [(cands, kw)] = evaluated
    assert list(cands) == ["FREAK", "FREAK+SOVQAE"] and all(p.is_file() for p in cands.values())
    assert [p.resolve() for p in kw["syncnet"]] == [given["syncnet"].resolve()]  # a given scorer scores alone
    assert kw["refiner"].resolve() == (out / "runs" / "refiner" / "model").resolve()
    assert "stage1_prob: 1.0" in (out / "runs" / "refiner" / "finished.json").read_text()
