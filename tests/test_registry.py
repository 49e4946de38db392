"""The model registry: a generator talkfreq does not ship (tests/dummy_generator.py, one module that registers
itself) runs through ``infer`` and ``bench``; every built-in kind resolves to its class and adapters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from talkfreq.cli import main
from talkfreq.errors import TalkfreqError
from talkfreq.io import VideoReader
from talkfreq.models import registry

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def dummy(monkeypatch):
    """The dummy generator registered (and importable by bench's child processes), unregistered afterwards."""
    import dummy_generator

    registry.register(dummy_generator.KIND)  # again: an earlier test may have unregistered it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    yield dummy_generator
    registry.unregister("dummy")


def test_a_registered_generator_runs_through_infer(dummy, synth_dir, tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "dummy_model"
    dummy.DummyGenerator(config={"image_size": 32}).save_pretrained(model)
    clip = synth_dir / "id00" / "id00_c00.mp4"
    out = tmp_path / "dubbed.mp4"
    assert main(["infer", "--face", str(clip), "--audio", str(clip), "--stage1", str(model), "--out", str(out),
                 "--batch", "4"]) == 0
    frames = list(VideoReader(out, fps=None))
    assert len(frames) == len(list(VideoReader(clip, fps=None)))
    assert main(["infer", "--face", str(clip), "--audio", str(clip), "--stage1", str(model), "--out",
                 str(tmp_path / "x.mp4"), "--mode", "one-shot"]) == 2  # not a one_shot kind: refused in one line


@pytest.mark.heavy
def test_a_registered_generator_runs_through_bench(dummy, synth_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--tiny", "--quick", "--pipelines", "Dummy-96", "--batches", "1", "--seconds", "0.2",
               "--threads", "1", "--video", str(synth_dir / "id00" / "id00_c00.mp4"), "max_seconds=0.02",
               "--json", str(out)])
    assert rc == 0, capsys.readouterr().out
    data = json.loads(out.read_text())
    assert set(data["models"]) == {"Dummy-96", "SOVQAE-96"}
    assert data["models"]["Dummy-96"]["size"] == 96 and data["models"]["Dummy-96"]["gflops_per_frame"] > 0
    (p,) = data["pipelines"]
    assert p["stage1"] == "Dummy-96" and p["e2e"]["1"]["frames"] == 5


@pytest.mark.parametrize("name", registry.names())
def test_builtin_kinds_resolve(name):
    kind = registry.get(name)
    assert registry.by_class_name(kind.cls.__name__) is kind
    if kind.published:
        assert registry.by_published(kind.published) is kind
        kind.cls(config=dict(kind.published_config))  # the published file's input convention is a valid config
    if kind.role == "generator":
        model = kind.cls(config={"image_size": 32} if name == "freak" else None)
        s = model.config.image_size
        spec = kind.audio_spec(model.config)
        audio = torch.zeros(2, 1, 80, 16) if spec.kind == "mel" else torch.zeros(2, 2 * spec.context + 1, spec.dim)
        x, mask = torch.zeros(2, 3, s, s), torch.zeros(2, 1, s, s)
        with torch.no_grad():
            out = kind.generate(model, reference=x, masked=x, audio=audio, mask=mask)
        assert out.shape == (2, 3, s, s) and registry.kind_of(model) is kind
        assert kind.mask_for_dubbing(model.config) in ("half", "lower")


def test_unknown_kinds_are_one_line_errors():
    with pytest.raises(TalkfreqError, match="unknown generator kind 'sovqae'; choose one of freak, wav2lip"):
        registry.get("sovqae", role="generator")
    with pytest.raises(TalkfreqError, match="not a registered talkfreq model"):
        registry.kind_of(np.zeros(1))


# small settings per kind; the contract below holds for every registered kind
SMALL = {
    "freak": {"image_size": 32, "base_channels": 8, "channel_mult": [1, 2, 2], "num_scales": 3},
    "wav2lip": {"image_size": 96},
    "syncnet": {"image_size": 48, "width": 64},
    "syncnet_v2": {"embed_dim": 64},
    "sovqae": {"image_size": 32, "base_channels": 16, "latent_dim": 16, "codebook_size": 64},
}


@pytest.mark.parametrize("name", registry.names())
def test_model_contract(name, tmp_path):
    """config as a dict or the dataclass builds the same network; save/load is a strict round trip; a folder of
    another kind, or with a tensor of another shape, is a one-line error."""
    from talkfreq.models.loading import load_model

    kind = registry.get(name)
    cls = kind.cls
    torch.manual_seed(0)
    model = cls(config=SMALL[name])
    assert model.config == cls(config=model.config).config == cls.config_class(**SMALL[name])
    model.save_pretrained(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is cls and loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    other = next(k for k in registry.names() if k != name)
    with pytest.raises(TalkfreqError, match=f"holds a {cls.__name__} model, not"):
        registry.get(other).cls.from_pretrained(tmp_path / name)
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.dim() > 0 and v.is_floating_point())
    torch.save({**state, key: torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)},
               tmp_path / name / "model.pt")
    with pytest.raises(TalkfreqError, match=f"weights do not match {cls.__name__}: shape file vs model: {key}"):
        cls.from_pretrained(tmp_path / name)
