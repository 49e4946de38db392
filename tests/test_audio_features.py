"""Speech-encoder features, on tiny randomly initialised HuBERT / wav2vec2 models saved to a temp folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkfreq.audio.features import (
    SpeechFeatureConfig,
    feature_window,
    load_speech_model,
    speech_features,
)
from talkfreq.config import load_config
from talkfreq.errors import TalkfreqError

transformers = pytest.importorskip("transformers")

SR = 16000
# Same conv front end as the real models (stride 320, receptive field 400), everything else tiny.
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(8,) * 7,
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    # Per-frame layer norm as in hubert-large (the default model); "group" norm would normalise over each chunk.
    feat_extract_norm="layer",
)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_hubert")
    transformers.HubertModel(transformers.HubertConfig(**TINY)).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hubert(hubert_dir):
    return load_speech_model(str(hubert_dir))


def _feats(hubert, wav, **kw):
    model, fe = hubert
    kw.setdefault("n_frames", int(len(wav) / SR * 25))
    kw.setdefault("fps", 25.0)
    return speech_features(wav, model=model, feature_extractor=fe, **kw)


def test_shape_and_dtype(hubert):
    model, fe = hubert
    assert fe is None and not model.training
    out = _feats(hubert, _noise(3.0))
    assert out.shape == (75, 32) and out.dtype == np.float32 and np.isfinite(out).all()


def test_timeline_matches_direct_forward(hubert):
    """At 50 fps, row i sits at encoder position i - 0.5: the mean of encoder frames i-1 and i."""
    model, _ = hubert
    wav = _noise(2.0, seed=3)
    x = torch.from_numpy(wav).double()
    x = ((x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)).float()
    with torch.inference_mode():
        enc = model(x[None]).last_hidden_state[0].numpy()  # (99, 32)
    out = _feats(hubert, wav, n_frames=100, fps=50.0)
    np.testing.assert_allclose(out[0], enc[0], atol=1e-5)  # clamped before the first centre
    np.testing.assert_allclose(out[1:99], 0.5 * (enc[:-1] + enc[1:]), atol=1e-5)


def test_layer_selects_hidden_state(hubert):
    wav = _noise(3.0, seed=1)
    by_layer = {layer: _feats(hubert, wav, layer=layer) for layer in (0, 1, 2, -1, -3)}
    assert not np.allclose(by_layer[0], by_layer[1])
    assert not np.allclose(by_layer[1], by_layer[2])
    np.testing.assert_array_equal(by_layer[-1], by_layer[2])
    np.testing.assert_array_equal(by_layer[-3], by_layer[0])
    with pytest.raises(TalkfreqError, match="speech.layer=3"):
        _feats(hubert, wav, layer=3)


def test_chunked_matches_unchunked(hubert):
    wav = _noise(12.0, seed=2)
    # Layer 0 (conv front end + 16-tap positional conv) only sees +-8 frames, inside the 50-frame context, and
    # chunk starts are multiples of the stride: identical up to float rounding.
    np.testing.assert_allclose(
        _feats(hubert, wav, layer=0, chunk_seconds=4.0), _feats(hubert, wav, layer=0, chunk_seconds=60.0), atol=1e-5
    )
    # Transformer layers attend globally, so a chunk that sees 6 s instead of 12 s cannot be exact anywhere.
    # Measured max |diff| ~1e-3 against a mean |feature| ~0.6; a 2% bound catches misaligned or dropped chunks
    # (which give O(1) errors) while allowing the attention-context difference.
    full = _feats(hubert, wav, chunk_seconds=60.0)
    chunked = _feats(hubert, wav, chunk_seconds=4.0)
    assert full.shape == chunked.shape == (300, 32)
    assert np.abs(full - chunked).max() < 0.02 * np.abs(full).mean()


def test_normalisation_follows_preprocessor(hubert_dir, tmp_path):
    wav = _noise(2.0, seed=4)
    model, fe = load_speech_model(str(hubert_dir))
    # No preprocessor saved: zero-mean-unit-variance, so the input level does not matter.
    np.testing.assert_allclose(_feats((model, fe), wav), _feats((model, fe), 5.0 * wav), atol=1e-4)
    plain = tmp_path / "no_norm"
    model.save_pretrained(plain)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(plain)
    model2, fe2 = load_speech_model(str(plain))
    assert fe2 is not None and fe2.do_normalize is False
    assert not np.allclose(_feats((model2, fe2), wav), _feats((model2, fe2), 5.0 * wav), atol=1e-3)


def test_short_and_empty_audio(hubert):
    out = _feats(hubert, _noise(0.01), n_frames=3, fps=25.0)  # 160 samples < 400-sample receptive field
    assert out.shape == (3, 32) and np.isfinite(out).all()
    with pytest.raises(TalkfreqError, match="empty"):
        _feats(hubert, np.zeros(0, dtype=np.float32), n_frames=1)
    with pytest.raises(TalkfreqError, match="16000 Hz"):
        _feats(hubert, _noise(1.0), sample_rate=22050)


def test_wav2vec2_loads_through_same_function(tmp_path):
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY)).save_pretrained(tmp_path)
    model, fe = load_speech_model(str(tmp_path))
    assert model.config.model_type == "wav2vec2"
    out = speech_features(_noise(1.0), model=model, feature_extractor=fe, n_frames=25, fps=25.0)
    assert out.shape == (25, 32)


def test_missing_model_errors(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(TalkfreqError) as err:
        load_speech_model(str(missing))
    msg = str(err.value)
    assert str(missing) in msg and "HF_HOME=" in msg and "speech.model=" in msg and "\n" not in msg

    with pytest.raises(TalkfreqError, match="nobody/not-a-cached-model") as err:
        load_speech_model("nobody/not-a-cached-model")
    assert "HF_HOME=" in str(err.value) and "huggingface-cli download nobody/not-a-cached-model" in str(err.value)

    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    with pytest.raises(TalkfreqError, match="is a file"):
        load_speech_model(str(a_file))

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TalkfreqError, match="no config.json") as err:
        load_speech_model(str(empty))
    assert str(empty) in str(err.value)


def test_corrupt_model_dir(hubert_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((hubert_dir / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TalkfreqError) as err:
        load_speech_model(str(bad))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_feature_window():
    feats = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    win = feature_window(feats, 0, context=2)
    assert win.shape == (5, 4)
    np.testing.assert_array_equal(win[:, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(feature_window(feats, 9, context=2)[:, 0], [7, 8, 9, 9, 9])
    np.testing.assert_array_equal(feature_window(feats, 5, context=0)[:, 0], [5])


def test_config_defaults_and_overrides():
    cfg = load_config(SpeechFeatureConfig, overrides=["layer=-2", "model=/models/hubert"])
    assert cfg.layer == -2 and cfg.model == "/models/hubert" and cfg.chunk_seconds == 20.0 and not cfg.enabled
