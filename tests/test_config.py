"""Config loading: defaults from the dataclass, YAML, dotted overrides, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from talkfreq.config import load_config, split_overrides
from talkfreq.errors import ConfigError


@dataclass
class Trainer:
    max_steps: int = 10
    lr: float = 1e-4


@dataclass
class Cfg:
    name: str = "x"
    trainer: Trainer = field(default_factory=Trainer)


def test_defaults_yaml_overrides_and_options(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: fromfile\ntrainer:\n  lr: 0.5\n")
    cfg = load_config(Cfg, f, ["trainer.max_steps=100"], extra={"name": "opt", "trainer.lr": None})
    assert cfg == Cfg(name="opt", trainer=Trainer(max_steps=100, lr=0.5))


def test_unknown_key_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, None, ["trainer.max_stepz=3"])
    assert "max_stepz" in str(e.value) and "\n" not in str(e.value)
    f = tmp_path / "c.yaml"
    f.write_text("bogus: 1\n")
    with pytest.raises(ConfigError, match="c.yaml.*bogus"):
        load_config(Cfg, f)


def test_wrong_type_is_one_line():
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, None, ["trainer.max_steps=many"])
    assert "max_steps" in str(e.value) and "\n" not in str(e.value)


def test_bad_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not a valid YAML"):
        load_config(Cfg, bad)
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(Cfg, None, ["=3"])


def test_split_overrides(tmp_path):
    existing = tmp_path / "a=b.mp4"
    existing.write_text("")
    args, over = split_overrides(["video.mp4", "face.padding=0.3", str(existing), "dir/"])
    assert args == ["video.mp4", str(existing), "dir/"] and over == ["face.padding=0.3"]
