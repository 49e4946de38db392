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


# -- base: a config file that starts from another -----------------------------------------------------------------


def test_base_values_child_overrides_and_a_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\ntrainer:\n  max_steps: 1\n  lr: 0.1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\ntrainer:\n  lr: 0.2\n")
    (tmp_path / "sub" / "c.yaml").write_text(f"base: {tmp_path / 'sub' / 'b.yaml'}\nname: c\n")  # absolute
    assert load_config(Cfg, tmp_path / "sub" / "b.yaml") == Cfg(name="a", trainer=Trainer(max_steps=1, lr=0.2))
    assert load_config(Cfg, tmp_path / "sub" / "c.yaml", ["trainer.max_steps=5"]) == Cfg(
        name="c", trainer=Trainer(max_steps=5, lr=0.2))


def test_base_is_relative_to_the_file_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cfg" / "x").mkdir(parents=True)
    (tmp_path / "cfg" / "a.yaml").write_text("name: a\n")
    (tmp_path / "cfg" / "x" / "b.yaml").write_text("base: ../a.yaml\n")
    monkeypatch.chdir(tmp_path / "cfg" / "x")
    assert load_config(Cfg, "b.yaml").name == "a"
    monkeypatch.chdir(tmp_path)
    assert load_config(Cfg, "cfg/x/b.yaml").name == "a"


@pytest.mark.parametrize("files, names", [
    ({"c.yaml": "base: missing.yaml\n"}, ["c.yaml", "missing.yaml"]),
    ({"c.yaml": "base: c.yaml\n"}, ["c.yaml", "cycle"]),
    ({"c.yaml": "base: d.yaml\n", "d.yaml": "base: e.yaml\n", "e.yaml": "base: c.yaml\n"}, ["e.yaml", "cycle"]),
    ({"c.yaml": "base: [a.yaml]\n"}, ["c.yaml", "base must be"]),
])
def test_base_errors_are_one_line_naming_the_file(tmp_path, files, names):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, tmp_path / "c.yaml")
    assert all(n in str(e.value) for n in names) and "\n" not in str(e.value), str(e.value)


def test_demo_syncnet_is_the_1m_recipe_with_fewer_steps():
    from pathlib import Path

    from talkfreq.training.registry import load_run_config

    configs = Path(__file__).resolve().parents[1] / "configs"
    demo = load_run_config("syncnet", configs / "demo" / "syncnet.yaml")
    recipe = load_run_config("syncnet", configs / "stage1" / "tiny_syncnet_1m.yaml")
    assert (demo.model.image_size, demo.model.width, demo.data.batch_size, demo.data.num_workers) == (48, 128, 32, 0)
    assert (demo.optim.lr, demo.optim.schedule, demo.optim.warmup_steps) == (1e-3, "cosine", 20)
    assert (demo.trainer.max_steps, demo.trainer.val_check_interval, demo.trainer.limit_val_batches,
            demo.trainer.log_every_n_steps) == (300, 150, 4, 10)
    assert (demo.logging.logger, demo.run.name, demo.run.checkpoint_every_n_steps) == ("csv", "syncnet", 150)
    assert demo.model == recipe.model and demo.data == recipe.data and demo.logging == recipe.logging


def test_packaged_configs_are_found_from_any_folder(tmp_path, monkeypatch):
    from pathlib import Path

    from talkfreq.config import packaged_config, resolve_config_path
    from talkfreq.training.registry import load_run_config

    checkout = Path(__file__).resolve().parents[1] / "configs"
    assert sorted(p.name for p in packaged_config("demo").glob("*.yaml")) == ["freak.yaml", "guide.yaml",
                                                                               "refiner.yaml", "syncnet.yaml"]
    assert packaged_config().resolve() == checkout.resolve()  # the checkout's configs/ is the package's
    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged ones answer, base: chains included
    assert resolve_config_path("configs/personal_gpu") == packaged_config("personal_gpu")  # a folder (demo configs=)
    for name in ("configs/stage1/freak_512.yaml", "stage1/freak_512.yaml"):
        assert resolve_config_path(name) == packaged_config("stage1", "freak_512.yaml")
        assert load_run_config("stage1", name).freak.image_size == 512
    (tmp_path / "configs" / "stage1").mkdir(parents=True)
    (tmp_path / "configs" / "stage1" / "freak_512.yaml").write_text("freak: {image_size: 128}\n")
    assert load_run_config("stage1", "configs/stage1/freak_512.yaml").freak.image_size == 128  # a local file wins
    with pytest.raises(ConfigError, match="nothing.yaml: config file not found"):
        load_config(Cfg, "configs/nothing.yaml")


@dataclass
class _Inner:
    m: dict[str, list[str]] = field(default_factory=lambda: {"a": ["1"]})
    x: int = 1


@dataclass
class _Mapped:
    variants: dict[str, list[str]] = field(default_factory=lambda: {"recipe": []})
    inner: _Inner = field(default_factory=_Inner)


def test_a_mapping_given_whole_replaces_the_default_and_a_dotted_key_edits_one_entry(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("variants:\n  pairs: [x=1]\ninner:\n  m: {b: ['2']}\n")
    cfg = load_config(_Mapped, f)  # the file's mappings replace the defaults (no "recipe", no "a")
    assert cfg.variants == {"pairs": ["x=1"]} and cfg.inner.m == {"b": ["2"]}
    cfg = load_config(_Mapped, f, ["variants={only: [y]}", "inner.m.c=[3]", "inner={x: 5}"])
    assert cfg.variants == {"only": ["y"]} and cfg.inner.m == {"b": ["2"], "c": ["3"]} and cfg.inner.x == 5
    assert load_config(_Mapped, None, ["variants.more=[z]"]).variants == {"recipe": [], "more": ["z"]}
