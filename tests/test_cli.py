"""The `talkfreq` command: help on each sub-command, overrides, one-line errors and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from talkfreq.cli import main
from talkfreq.data.prepared import PreparedDataset


@pytest.mark.parametrize("cmd", [[], ["prepare"], ["synth"], ["demo"]])
def test_help(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and "--help" in out


def test_import_parses_nothing():
    # importing the CLI module must not parse sys.argv or start anything
    code = "import sys; sys.argv=['x','--bogus']; import talkfreq.cli; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


def test_synth_then_prepare_with_overrides(tmp_path, capsys):
    data = tmp_path / "synth"
    assert main(["synth", "--out", str(data), "--identities", "1", "--clips", "1", "--seconds", "1", "--size", "96",
                 "-q"]) == 0
    out = tmp_path / "prep"
    rc = main(["prepare", str(data), "--out", str(out), "--size", "64", "face.smooth_window=3", "val_fraction=0.0",
               "-q"])
    assert rc == 0
    ds = PreparedDataset(out)
    assert len(ds) == 1 and ds.metas[0].size == 64 and ds.metas[0].split == "train"
    assert "face found" in capsys.readouterr().out


def test_config_file_and_bad_key(tmp_path, capsys):
    conf = tmp_path / "c.yaml"
    conf.write_text("face:\n  crop_size: 96\n  nonsense: 1\n")
    rc = main(["prepare", str(tmp_path), "--out", str(tmp_path / "o"), "-c", str(conf)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("talkfreq: error:") and "nonsense" in err and len(err.splitlines()) == 1
    rc = main(["prepare", str(tmp_path), "--out", str(tmp_path / "o"), "face.crop_size=big"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "crop_size" in err and len(err.splitlines()) == 1


def test_missing_input_one_line(tmp_path, capsys):
    rc = main(["prepare", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"talkfreq: error: {tmp_path / 'missing.mp4'}: input not found"
    assert not (tmp_path / "o").exists()


def test_console_script_installed():
    import shutil

    exe = shutil.which("talkfreq") or str(__import__("pathlib").Path(sys.executable).parent / "talkfreq")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "prepare" in proc.stdout


def test_options_name_config_fields():
    # each explicit option names the field it sets: a renamed field fails here, not as a refused option of a user's
    from talkfreq.cli._common import load_options, option_keys
    from talkfreq.pipeline.infer import InferConfig

    assert option_keys(InferConfig, ["box", "face__face_index", "accel__threads"]) == {
        "box": "box", "face__face_index": "face.face_index", "accel__threads": "accel.threads"}
    with pytest.raises(TypeError, match="face.nope"):
        option_keys(InferConfig, ["face__nope"])
    with pytest.raises(TypeError, match="box.x"):  # a leaf is not a section
        option_keys(InferConfig, ["box__x"])
    cfg = load_options(InferConfig, None, ["batch_size=2", "face.face_index=3"], batch_size=None, face__face_index=1)
    assert cfg.batch_size == 2 and cfg.face.face_index == 1  # None: not given; an option wins over an override
