"""Stage-1 models: FREAK, Wav2Lip, SyncNet (+ the original syncnet_v2 port) and the patch discriminator.

Tiny configs on CPU; the big default models are only built on the meta device (shapes and parameter counts without
allocating or computing anything).
"""

from __future__ import annotations

import json

import pytest
import torch

from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.models._io import peek_model_class
from talkfreq.models.discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from talkfreq.models.freak import FREAK, FREAKConfig
from talkfreq.models.freak_blocks import AVFM, VEFM, band_weights
from talkfreq.models.masks import apply_mask, make_mask
from talkfreq.models.syncnet import SyncNet, SyncNetConfig, expert_loss, stack_lower_halves, sync_probability
from talkfreq.models.syncnet_v2 import SyncNetV2, to_syncnet_v2_video
from talkfreq.models.wav2lip import Wav2Lip, Wav2LipConfig, wav2lip_input

S = 64
B = 2


def tiny(**kw) -> FREAKConfig:
    base = dict(image_size=S, base_channels=8, channel_mult=[1, 2, 4, 4], num_scales=4,
                audio_hidden=32, audio_embed_dim=32)
    base.update(kw)
    return FREAKConfig(**base)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def inputs(kind: str = "half", *, audio_len: int = 16, audio_dim: int = 80, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    tgt = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    mask = make_mask(kind, batch=B, size=S)
    audio = torch.randn(B, audio_len, audio_dim, generator=g)
    return ref, apply_mask(tgt, mask), audio, mask


def zero_init_params(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The modulator heads that start at zero (VEFM filters, AVFM gain/FiLM heads)."""
    return {n: p for n, p in model.named_parameters() if ".filter." in n or ".to_gain." in n or ".to_film." in n}


def perturb(model: torch.nn.Module, *, only: str = "", std: float = 0.05) -> None:
    """Move the zero-initialised heads away from zero (as a few training steps would)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in zero_init_params(model).items():
            if only in n:
                p.copy_(torch.randn(p.shape, generator=g) * std)


# ---------------------------------------------------------------- FREAK


@pytest.mark.parametrize("kind", ["half", "full"])
@pytest.mark.parametrize("audio", ["mel", "hubert"])
def test_freak_shapes_and_range(kind, audio):
    t, f = (16, 80) if audio == "mel" else (5, 768)
    model = FREAK(config=tiny(audio_len=t, audio_dim=f))
    perturb(model)
    y = model(*inputs(kind, audio_len=t, audio_dim=f))
    assert y.shape == (B, 3, S, S)
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0


def test_freak_accepts_wav2lip_style_mel_and_checks_shapes():
    model = FREAK(config=tiny()).eval()
    ref, masked, audio, mask = inputs()
    with torch.no_grad():
        a = model(ref, masked, audio, mask)
        b = model(ref, masked, audio.transpose(1, 2).unsqueeze(1), mask)  # (B,1,80,16)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="audio"):
        model(ref, masked, torch.randn(B, 9, 80), mask)
    with pytest.raises(ValueError, match="mask"):
        model(ref, masked, audio)
    with pytest.raises(ValueError, match="reference"):
        model(ref[:, :, :32], masked, audio, mask)


def test_vefm_and_avfm_are_identity_at_init():
    x = torch.randn(B, 16, 12, 10)  # odd, non-square sizes on purpose: rFFT bookkeeping
    ref = torch.randn(B, 16, 12, 10)
    emb = torch.randn(B, 24)
    assert torch.equal(VEFM(channels=16)(ref, x), x)
    assert torch.equal(AVFM(channels=16, embed_dim=24, num_bands=8)(x, emb), x)
    assert torch.equal(AVFM(channels=16, embed_dim=24, num_bands=8, spectral=False)(x, emb), x)
    # Whole model: at init the audio cannot change anything, because every AVFM is the identity.
    model = FREAK(config=tiny()).eval()
    ref, masked, audio, mask = inputs()
    with torch.no_grad():
        assert torch.equal(model(ref, masked, audio, mask), model(ref, masked, -audio, mask))


def test_band_weights_partition_unity():
    w = band_weights(12, 10, 8)
    assert w.shape == (8, 12, 6)
    assert torch.allclose(w.sum(0), torch.ones(12, 6))
    assert w[0, 0, 0] == 1.0  # DC belongs to the lowest band


def test_freak_gradients_reach_every_parameter_after_one_step():
    torch.manual_seed(0)
    model = FREAK(config=tiny())
    ref, masked, audio, mask = inputs("half")
    target = torch.rand(B, 3, S, S) * 2 - 1
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    (model(ref, masked, audio, mask) - target).abs().mean().backward()
    # Step 0: the zero-initialised heads themselves get gradients, so training can leave the identity ...
    for name, p in zero_init_params(model).items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    opt.step()
    opt.zero_grad()

    # ... and after one step everything upstream of them (reference encoder, gated convs, audio encoder) does too.
    (model(ref, masked, audio, mask) - target).abs().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead
    groups = ["ref_encoder", "masked_encoder", "vefm", "mid_avfm", "dec_avfm", "audio_encoder"]
    for g in groups:
        assert any(n.startswith(g) for n, _ in model.named_parameters()), g


@pytest.mark.parametrize("use_vefm,use_avfm", [(False, True), (True, False), (False, False)])
def test_freak_ablations_run(use_vefm, use_avfm):
    model = FREAK(config=tiny(use_vefm=use_vefm, use_avfm=use_avfm))
    assert (model.vefm is not None) == use_vefm
    assert (model.mid_avfm.to_gain is not None) == use_avfm
    perturb(model)
    y = model(*inputs("full"))
    assert y.shape == (B, 3, S, S) and torch.isfinite(y).all()


@pytest.mark.parametrize("use_avfm", [True, False])
def test_audio_changes_the_output(use_avfm):
    model = FREAK(config=tiny(use_avfm=use_avfm)).eval()
    perturb(model)
    ref, masked, audio, mask = inputs()
    with torch.no_grad():
        diff = (model(ref, masked, audio, mask) - model(ref, masked, torch.randn_like(audio), mask)).abs().max()
    assert diff > 1e-4


def test_avfm_spectral_path_alone_carries_audio():
    model = FREAK(config=tiny()).eval()
    perturb(model, only=".to_gain.")  # FiLM heads stay at zero: only the spectral gains see the audio
    ref, masked, audio, mask = inputs()
    with torch.no_grad():
        diff = (model(ref, masked, audio, mask) - model(ref, masked, torch.randn_like(audio), mask)).abs().max()
    assert diff > 1e-5


def test_one_model_serves_dubbing_and_one_shot():
    model = FREAK(config=tiny()).eval()
    ref, _, audio, _ = inputs()
    tgt = torch.rand(B, 3, S, S) * 2 - 1
    outs = []
    with torch.no_grad():
        for kind in ("half", "full"):
            mask = make_mask(kind, batch=B, size=S)
            outs.append(model(ref, apply_mask(tgt, mask), audio, mask))
        mixed = torch.cat([make_mask("half", batch=1, size=S), make_mask("full", batch=1, size=S)])
        both = model(ref, apply_mask(tgt, mixed), audio, mixed)  # a batch mixing the two modes
    assert not torch.allclose(outs[0], outs[1])
    assert torch.allclose(both[0], outs[0][0], atol=1e-5) and torch.allclose(both[1], outs[1][1], atol=1e-5)


def test_freak_save_load_round_trip(tmp_path):
    model = FREAK(config=tiny(audio_len=5, audio_dim=768)).eval()
    perturb(model)
    model.save_pretrained(tmp_path / "freak")
    assert peek_model_class(tmp_path / "freak") == "FREAK"
    loaded = FREAK.from_pretrained(tmp_path / "freak").eval()
    assert loaded.config == model.config
    x = inputs(audio_len=5, audio_dim=768)
    with torch.no_grad():
        assert torch.equal(model(*x), loaded(*x))


def test_freak_load_errors(tmp_path):
    with pytest.raises(TalkfreqError, match="not found"):
        FREAK.from_pretrained(tmp_path / "nowhere")
    SyncNet(config=SyncNetConfig(image_size=64)).save_pretrained(tmp_path / "sync")
    with pytest.raises(TalkfreqError, match="holds a SyncNet model, not FREAK"):
        FREAK.from_pretrained(tmp_path / "sync")
    # Weights that do not fit the stored config: name the file and the first mismatching keys.
    FREAK(config=tiny()).save_pretrained(tmp_path / "f")
    meta = json.loads((tmp_path / "f" / "config.json").read_text())
    meta["config"]["base_channels"] = 16
    (tmp_path / "f" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(TalkfreqError, match=r"model\.pt: weights do not match FREAK: shape") as err:
        FREAK.from_pretrained(tmp_path / "f")
    assert "\n" not in str(err.value)
    meta["config"]["base_channels"] = "wide"
    (tmp_path / "f" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(TalkfreqError, match="invalid FREAKConfig"):
        FREAK.from_pretrained(tmp_path / "f")


def test_freak_config_errors_and_default_size():
    with pytest.raises(ConfigError, match="num_scales"):
        FREAK(config=tiny(num_scales=5))
    with pytest.raises(ConfigError, match="divisible"):
        FREAK(config=tiny(image_size=60))
    with torch.device("meta"):
        p256 = n_params(FREAK(config=FREAKConfig(image_size=256)))
        p512 = n_params(FREAK(config=FREAKConfig(image_size=512)))
        big = FREAK(config=FREAKConfig(image_size=256))
        y = big(torch.empty(1, 3, 256, 256), torch.empty(1, 3, 256, 256), torch.empty(1, 16, 80),
                torch.empty(1, 1, 256, 256))
    assert y.shape == (1, 3, 256, 256)
    assert p256 <= 30_000_000
    assert p512 == p256  # fully convolutional: the face size does not change the weights


# ---------------------------------------------------------------- Wav2Lip


def test_wav2lip_96_forward_and_param_count():
    model = Wav2Lip()
    # Reference: Rudrabha/Wav2Lip models/wav2lip.py (first public commit) has 36,298,035 parameters; our 96-px
    # model has the same module tree, so the count is exact (the ±10% the spec allows is not needed).
    assert n_params(model) == 36_298_035
    faces = wav2lip_input(torch.rand(B, 3, 96, 96) * 2 - 1, torch.rand(B, 3, 96, 96) * 2 - 1)
    y = model(faces, torch.randn(B, 1, 80, 16))
    assert y.shape == (B, 3, 96, 96) and y.min() >= -1 and y.max() <= 1
    with pytest.raises(ValueError, match="mel"):
        model(faces, torch.randn(B, 1, 80, 15))


@pytest.mark.parametrize("size", [128, 192, 256])
def test_wav2lip_larger_faces(size):
    with torch.device("meta"):
        model = Wav2Lip(config=Wav2LipConfig(image_size=size))
        y = model(torch.empty(B, 6, size, size), torch.empty(B, 1, 80, 16))
        seq = model(torch.empty(B, 6, 5, size, size), torch.empty(B, 5, 1, 80, 16))
    assert y.shape == (B, 3, size, size)
    assert seq.shape == (B, 3, 5, size, size)
    with pytest.raises(ConfigError, match="image_size"):
        Wav2Lip(config=Wav2LipConfig(image_size=100))


# ---------------------------------------------------------------- SyncNet


def test_syncnet_96_embeddings_loss_and_round_trip(tmp_path):
    model = SyncNet()
    # Reference: Rudrabha/Wav2Lip models/syncnet.py SyncNet_color has 16,435,072 parameters (same module tree).
    assert n_params(model) == 16_435_072
    frames = torch.rand(B, 5, 3, 96, 96) * 2 - 1
    faces = stack_lower_halves(frames)
    assert faces.shape == (B, 15, 48, 96)
    mel = torch.randn(B, 1, 80, 16)
    a, v = model(faces, mel)
    assert a.shape == v.shape == (B, 512)
    assert torch.allclose(a.norm(dim=1), torch.ones(B), atol=1e-5)
    assert torch.allclose(v.norm(dim=1), torch.ones(B), atol=1e-5)
    p = sync_probability(a, v)
    assert p.shape == (B,) and (p >= -1).all() and (p <= 1).all()
    loss = expert_loss(a, v, torch.tensor([1.0, 0.0]))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.face_encoder[0].conv_block[0].weight.grad.abs().sum() > 0
    assert model.audio_encoder[0].conv_block[0].weight.grad.abs().sum() > 0

    model.eval().save_pretrained(tmp_path / "sync")
    loaded = SyncNet.from_pretrained(tmp_path / "sync").eval()
    with torch.no_grad():
        assert all(torch.equal(x, y) for x, y in zip(model(faces, mel), loaded(faces, mel)))


@pytest.mark.parametrize("size", [128, 256])
def test_syncnet_larger_faces(size):
    with torch.device("meta"):
        a, v = SyncNet(config=SyncNetConfig(image_size=size))(torch.empty(B, 15, size // 2, size),
                                                               torch.empty(B, 1, 80, 16))
    assert a.shape == v.shape == (B, 512)


def test_syncnet_v2_port_shapes_and_original_weights(tmp_path):
    with torch.device("meta"):
        meta_model = SyncNetV2().eval()
        out = meta_model(torch.empty(B, 3, 5, 224, 224), torch.empty(B, 1, 13, 20))
    assert out.audio_emb.shape == out.video_emb.shape == (B, 1024)
    assert n_params(meta_model) == 13_631_616  # joonson/syncnet_python SyncNetModel.S(1024)

    # A file shaped like the published syncnet_v2.model: plain state dict, legacy serialisation, no
    # num_batches_tracked buffers (saved before PyTorch 0.4.1).
    src = SyncNetV2()
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "syncnet_v2.model", _use_new_zipfile_serialization=False)
    loaded = SyncNetV2.load_original(tmp_path / "syncnet_v2.model")
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(src.parameters(), loaded.parameters()))

    torch.save(SyncNet(config=SyncNetConfig(image_size=64)).state_dict(), tmp_path / "wrong.pth")
    with pytest.raises(TalkfreqError, match=r"wrong\.pth: holds a published lipsync_expert network, not syncnet_v2"):
        SyncNetV2.load_original(tmp_path / "wrong.pth")
    with pytest.raises(TalkfreqError, match="not found"):
        SyncNetV2.load_original(tmp_path / "absent.model")

    v = to_syncnet_v2_video(torch.ones(1, 5, 3, 224, 224) * torch.tensor([1.0, 0.0, -1.0]).view(1, 1, 3, 1, 1))
    assert v.shape == (1, 3, 5, 224, 224)
    assert v[0, :, 0, 0, 0].tolist() == [0.0, 127.5, 255.0]  # RGB [-1,1] -> BGR 0..255


# ---------------------------------------------------------------- discriminator


@pytest.mark.parametrize("norm,sn", [("batch", False), ("none", True), ("instance", False), ("group", True)])
def test_patch_discriminator(norm, sn, tmp_path):
    d = PatchDiscriminator(config=PatchDiscriminatorConfig(base_channels=8, norm=norm, spectral_norm=sn))
    x = torch.rand(B, 3, S, S) * 2 - 1
    logits = d(x)
    assert logits.shape == (B, 1, S // 8 - 2, S // 8 - 2)
    d.eval().save_pretrained(tmp_path / "d")
    d2 = PatchDiscriminator.from_pretrained(tmp_path / "d").eval()
    with torch.no_grad():
        assert torch.equal(d(x), d2(x))
    with pytest.raises(ConfigError, match="norm"):
        PatchDiscriminator(config=PatchDiscriminatorConfig(norm="layer"))
