"""Faults on unseen media and hostile conditions: a full disk, SIGTERM and Ctrl-C, resuming with a changed config or
without a checkpoint, audio rates AAC cannot encode, no face at all, odd frame sizes, silence, the forward-backward
frame cache, command-line usage errors, damaged weights, quiet and logged training, long face-less gaps, and the
report's flag on an expert that fails on the real clip. Each ends in one line and nothing left behind, or works."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from conftest import write_wav
from talkfreq.cli import main
from talkfreq.errors import TalkfreqError
from talkfreq.io import VideoReader, VideoWriter, load_video_audio, probe
from talkfreq.models import FREAK, SOVQAE, SOVQAEConfig

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
TINY_FREAK = dict(image_size=SIZE, base_channels=8, channel_mult=[1, 2, 2], num_scales=3, audio_hidden=16,
                  audio_embed_dim=16, avfm_decoder_scales=1)
TINY_SOVQAE = dict(image_size=SIZE, base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attention=False,
                   latent_dim=16, codebook_size=64)


def console_script() -> str:
    return shutil.which("talkfreq") or str(Path(sys.executable).parent / "talkfreq")


def child_env() -> dict[str, str]:
    """The environment of a `talkfreq` child: this checkout's sources first, one torch thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("talkfreq: error:"), err
    return err


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("fault_models")
    FREAK(config=TINY_FREAK).save_pretrained(root / "stage1")
    SOVQAE(config=SOVQAEConfig(**TINY_SOVQAE)).save_pretrained(root / "refiner")
    return {p.name: p for p in root.iterdir()}


@pytest.fixture(scope="module")
def clip(synth_dir) -> Path:
    return synth_dir / "id00" / "id00_c00.mp4"  # 128 px, 2 s = 50 frames, speech audio


def write_av(path: Path, frames: np.ndarray, *, audio: np.ndarray | None = None, rate: int = 16000,
             audio_codec: str = "aac") -> Path:
    """A test video written with PyAV directly: an audio rate or a frame size the VideoWriter would not take (odd
    sizes go in lossless FFV1, which takes them)."""
    odd = frames.shape[1] % 2 or frames.shape[2] % 2
    with av.open(str(path), "w") as c:
        vs = c.add_stream("ffv1" if odd else "libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p" if odd else "yuv420p"
        a = c.add_stream(audio_codec, rate=rate, layout="mono") if audio is not None else None
        for f in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode(None):
            c.mux(pkt)
        if a is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            af.sample_rate, af.pts = rate, 0
            for pkt in a.encode(af):
                c.mux(pkt)
            for pkt in a.encode(None):
                c.mux(pkt)
    return path


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(VideoReader(path, fps=None)))


def speechy(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ 1. disk full


def test_disk_full_in_the_frame_cache_is_one_line_and_leaves_nothing(clip, models, tmp_path, capsys, monkeypatch):
    import talkfreq.pipeline.sources as sources

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sources.os, "pwrite", full)
    audio = write_wav(tmp_path / "long.wav", speechy(4.0, 16000))  # 4 s of audio on a 2 s video: ping-pong
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    rc = main(["infer", "--face", str(clip), "--audio", str(audio), "--stage1", str(models["stage1"]),
               "--out", str(out), "-q", f"cache_dir={tmp_path}"])
    err = one_line_error(capsys)
    assert rc == 2 and "no space left" in err and "frame cache" in err
    assert not out.exists() and not leftovers(out.parent) and not leftovers(tmp_path)


def test_disk_full_while_writing_the_mp4_is_one_line_and_leaves_nothing(clip, models, tmp_path, capsys,
                                                                          monkeypatch):
    import talkfreq.io.video as video

    real_open = av.open

    class FullDisk:
        """The output container of a device that fills up after a few packets."""

        def __init__(self, container):
            self._c, self._n = container, 0

        def __getattr__(self, name):
            return getattr(self._c, name)

        def mux(self, pkt):
            self._n += 1
            if self._n > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._c.mux(pkt)

    monkeypatch.setattr(video.av, "open", lambda *a, **k: FullDisk(real_open(*a, **k)) if k.get("mode") == "w"
                        else real_open(*a, **k))
    out = tmp_path / "o.mp4"
    rc = main(["infer", "--face", str(clip), "--audio", str(clip), "--stage1", str(models["stage1"]), "--out",
               str(out), "-q", "batch_size=4"])
    err = one_line_error(capsys)
    assert rc == 2 and "no space left on the device" in err and str(out) in err
    assert not out.exists() and not leftovers(tmp_path)


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    """A 300 kB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        noise = np.random.default_rng(0).integers(0, 256, (60, 128, 128, 3), np.uint8)
        with pytest.raises(TalkfreqError, match="no space left on the device") as exc:
            with VideoWriter(mnt / "o.mp4", fps=25, width=128, height=128, crf=0) as w:
                for f in noise:
                    w.write(f)
        assert len(str(exc.value).splitlines()) == 1
        assert not list(mnt.iterdir())
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# --------------------------------------------------------------------------------- 2. SIGTERM, Ctrl-C, stale files


def _start_long_infer(clip: Path, models: dict[str, Path], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    audio = write_wav(tmp_path / "long.wav", speechy(120.0, 16000))  # 3000 frames ping-ponged from 50
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [console_script(), "infer", "--face", str(clip), "--audio", str(audio), "--stage1", str(models["stage1"]),
         "--out", str(out), "-q", f"cache_dir={out.parent}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".o.tmp-*.mp4")):  # the writer is open: frames are on their way
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "infer did not start writing"
        time.sleep(0.1)
    time.sleep(0.5)
    return proc, out


@pytest.mark.heavy
@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "aborted")])
def test_a_signal_during_infer_removes_the_temp_mp4_and_the_frame_cache(clip, models, tmp_path, sig, code, word):
    proc, out = _start_long_infer(clip, models, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"talkfreq: {word}" in err and "Traceback" not in err
    assert not out.exists() and not list(out.parent.iterdir())


def test_a_later_run_removes_the_temp_file_of_a_killed_one(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f".o.tmp-{dead.pid}.mp4"
    stale.write_bytes(b"half an mp4")
    alive = tmp_path / f".o.tmp-{os.getppid()}.mp4"  # a running process's file is not touched
    alive.write_bytes(b"in progress")
    other = tmp_path / f".p.tmp-{dead.pid}.mp4"  # another output's file is not ours to judge
    other.write_bytes(b"x")
    with VideoWriter(tmp_path / "o.mp4", fps=25, width=32, height=32) as w:
        w.write(np.zeros((32, 32, 3), np.uint8))
    assert not stale.exists() and alive.exists() and other.exists() and (tmp_path / "o.mp4").is_file()


# ------------------------------------------------------------------------------------------- 3-4. resume


@pytest.fixture(scope="module")
def refiner_data(synth_dir, tmp_path_factory) -> Path:
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("fault_prepared")
    prepare_dataset([synth_dir], out=out, cfg=load_config(PrepareConfig, None, ["face.crop_size=64"]),
                    show_progress=False)
    return out


def train_refiner(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "refiner", "-c", str(REPO / "configs/refiner/tiny.yaml"), "--data", str(data),
            f"run.out_dir={out}", "logging.logger=none", "logging.sample_every_n_steps=0",
            "trainer.val_check_interval=2", *extra]


@pytest.mark.heavy
def test_resume_with_a_changed_model_config_is_one_line_and_keeps_config_yaml(refiner_data, tmp_path, capsys):
    assert main(train_refiner(refiner_data, tmp_path, "trainer.max_steps=2", "run.name=r", "-q")) == 0
    saved = (tmp_path / "r" / "config.yaml").read_text()
    capsys.readouterr()
    rc = main(train_refiner(refiner_data, tmp_path, "trainer.max_steps=4", "run.name=r", "--resume", "last",
                            "sovqae.codebook_size=32", "-q"))
    err = one_line_error(capsys)
    assert rc == 2 and "sovqae.codebook_size 64 -> 32" in err and "--name" in err
    assert (tmp_path / "r" / "config.yaml").read_text() == saved
    # what a resume may change still resumes
    assert main(train_refiner(refiner_data, tmp_path, "trainer.max_steps=3", "run.name=r", "--resume", "last",
                              "-q")) == 0
    assert torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


@pytest.mark.parametrize("kind, change", [("syncnet", "model.image_size=64"), ("stage1", "freak.base_channels=8"),
                                          ("refiner", "loss.l1=3.0")])
def test_every_kind_checks_its_config_before_resuming(kind, change, tmp_path):
    from talkfreq.config import to_yaml
    from talkfreq.training.common import check_resume_config
    from talkfreq.training.registry import load_run_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = load_run_config(kind, None, [f"run.out_dir={tmp_path}", "run.name=run"])
    (run / "config.yaml").write_text(to_yaml(cfg))
    ckpt = run / "checkpoints" / "last.ckpt"
    check_resume_config(ckpt, load_run_config(kind, None, ["trainer.max_steps=7", "data.root=/elsewhere"]))
    with pytest.raises(TalkfreqError, match=change.split("=")[0].replace(".", r"\.")):
        check_resume_config(ckpt, load_run_config(kind, None, [change]))


def test_resume_last_without_a_checkpoint_says_so(tmp_path, capsys):
    from talkfreq.training.common import RunConfig, resolve_resume

    run = RunConfig(out_dir=str(tmp_path), name="fresh", resume="last", checkpoint_every_n_steps=50)
    assert resolve_resume(run) is None
    err = capsys.readouterr().err
    assert "talkfreq: warning:" in err and "no checkpoint" in err and "step 0" in err
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.yaml").write_text("run: {}\n")  # a run started here and was killed early
    assert resolve_resume(run) is None
    err = capsys.readouterr().err
    assert "stopped before its first" in err and "every 50 steps" in err and "lost" in err


# ----------------------------------------------------------------------------------- 5-7. refine, compare-video


def test_refine_and_compare_video_take_an_audio_rate_aac_cannot_encode(clip, models, tmp_path, capsys):
    frames = frames_of(clip)
    six = write_av(tmp_path / "six.mkv", frames, audio=speechy(2.0, 6000), rate=6000, audio_codec="pcm_s16le")
    assert probe(six).audio_rate == 6000
    out = tmp_path / "refined.mp4"
    assert main(["refine", str(six), "--refiner", str(models["refiner"]), "--out", str(out), "-q"]) == 0
    assert probe(out).audio_rate == 48000 and abs(len(load_video_audio(out, sample_rate=16000)) / 16000 - 2.0) < 0.1
    side = tmp_path / "side.mp4"
    assert main(["compare-video", str(six), f"copy={clip}", "--out", str(side), "-q"]) == 0
    assert probe(side).audio_rate == 48000


def test_refine_without_a_face_anywhere_exits_2(clip, models, tmp_path, capsys):
    grey = write_av(tmp_path / "grey.mp4", np.full((10, 96, 96, 3), 90, np.uint8))
    out = tmp_path / "o.mp4"
    rc = main(["refine", str(grey), "--refiner", str(models["refiner"]), "--out", str(out), "-q"])
    err = one_line_error(capsys)
    assert rc == 2 and "no face found" in err and str(grey) in err
    assert not out.exists() and not leftovers(tmp_path)


def test_odd_frame_sizes_are_reported_as_written(clip, models, tmp_path, capsys):
    odd = write_av(tmp_path / "odd.mkv", frames_of(clip)[:, :127, :125].copy(), audio=speechy(2.0, 16000),
                   audio_codec="pcm_s16le")
    assert (probe(odd).width, probe(odd).height) == (125, 127)
    capsys.readouterr()
    out = tmp_path / "r.mp4"
    assert main(["refine", str(odd), "--refiner", str(models["refiner"]), "--out", str(out), "-q"]) == 0
    said = capsys.readouterr().out
    assert (probe(out).width, probe(out).height) == (126, 128)
    assert "(126x128, padded from 125x127" in said
    out = tmp_path / "i.mp4"
    assert main(["infer", "--face", str(odd), "--audio", str(odd), "--stage1", str(models["stage1"]), "--out",
                 str(out), "-q"]) == 0
    said = capsys.readouterr().out
    assert (probe(out).width, probe(out).height) == (126, 128) and "(126x128, padded from 125x127" in said


# ---------------------------------------------------------------------------------------------- 8. silence


def test_a_silent_track_drives_a_resting_face(clip, models, tmp_path, capsys):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(32000, np.float32))
    out = tmp_path / "o.mp4"
    assert main(["infer", "--face", str(clip), "--audio", str(silent), "--stage1", str(models["stage1"]),
                 "--refiner", str(models["refiner"]), "--out", str(out), "-q"]) == 0
    said = capsys.readouterr().out
    assert "silent" in said and len(frames_of(out)) == 50 and probe(out).has_audio


# ------------------------------------------------------------------------------------- 9. forward-backward cache


def test_the_frame_cache_has_no_name_in_any_folder(tmp_path):
    from talkfreq.pipeline.sources import FrameCache

    cache = FrameCache(shape=(4, 6, 3), directory=tmp_path)
    cache.write(np.ones((4, 6, 3), np.uint8))
    assert not list(tmp_path.iterdir())  # nothing a kill could leave behind
    assert cache.read(0).sum() == 72
    cache.close()
    default = FrameCache(shape=(2, 2, 3), directory=None)
    assert default.directory == Path(__import__("tempfile").gettempdir())
    default.close()


def test_not_enough_room_for_the_frame_cache_fails_before_any_work(clip, models, tmp_path, capsys, monkeypatch):
    import talkfreq.pipeline.sources as sources

    monkeypatch.setattr(sources.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**5, 10**5))
    audio = write_wav(tmp_path / "long.wav", speechy(4.0, 16000))
    out = tmp_path / "o.mp4"
    rc = main(["infer", "--face", str(clip), "--audio", str(audio), "--stage1", str(models["stage1"]), "--out",
               str(out), "-q"])
    err = one_line_error(capsys)
    assert rc == 2 and "frame cache of" in err and "cache_dir=" in err
    assert not out.exists() and not leftovers(tmp_path)


# -------------------------------------------------------------------------------------------- 10. usage errors


@pytest.mark.parametrize("argv, says", [
    (["prepare", "x", "--bogus"], "No such option: --bogus"),
    (["infer", "--face"], "'--face' requires an argument"),
    (["nosuchcmd"], "No such command 'nosuchcmd'"),
    (["train"], "Missing argument"),
])
def test_usage_errors_through_the_console_script_are_one_line(argv, says):
    proc = subprocess.run([console_script(), *argv], capture_output=True, text=True, env=child_env(), timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("talkfreq: error:")
    assert says in err


def test_the_tested_typer_range_is_pinned():
    from importlib.metadata import version

    import tomllib
    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("typer"))[len("typer"):]
    assert "<" in spec and version("typer") in SpecifierSet(spec)


# ----------------------------------------------------------------------------------------------- also seen


def test_damaged_weights_give_a_whole_sentence_without_unsafe_advice(models, tmp_path, capsys, clip):
    for name, damage in [("truncated", lambda b: b[: len(b) // 2]), ("pickled", None)]:
        bad = tmp_path / name
        shutil.copytree(models["refiner"], bad)
        if damage is None:
            torch.save({"w": np.zeros(3)}, bad / "model.pt")  # a numpy array: pickled code to run
        else:
            (bad / "model.pt").write_bytes(damage((bad / "model.pt").read_bytes()))
        rc = main(["refine", str(clip), "--refiner", str(bad), "--out", str(tmp_path / "o.mp4"), "-q"])
        err = one_line_error(capsys)
        assert rc == 2 and "weights_only" not in err and "\x1b" not in err
        assert err.endswith(("again", "code")), err  # the message ends where its sentence does
        assert ("damaged or truncated" if damage else "besides tensors") in err


@pytest.mark.heavy
@pytest.mark.parametrize("quiet", [False, True])
def test_training_output_in_a_log_file(refiner_data, tmp_path, quiet):
    """stdout to a pipe: a step line every log_every_n_steps steps; --quiet: none, and no Lightning banner."""
    argv = train_refiner(refiner_data, tmp_path, "trainer.max_steps=4", "trainer.log_every_n_steps=2", "run.name=q",
                         *(["--quiet"] if quiet else []))
    proc = subprocess.run([console_script(), *argv], capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    steps = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    if quiet:
        assert not steps and "GPU available" not in both and "Tip" not in both, both
    else:
        assert [s.split()[1] for s in steps] == ["2/4", "4/4"], proc.stdout
        assert "loss" in steps[-1]


def test_prepare_leaves_a_long_faceless_gap_invalid(synth_dir, tmp_path):
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset
    from talkfreq.data.prepared import PreparedDataset

    src = tmp_path / "in" / "gap.mp4"
    src.parent.mkdir()
    frames = frames_of(synth_dir / "id00" / "id00_c00.mp4")
    frames[10:30] = 128  # 0.8 s without a face
    frames[40:43] = 128  # a blink of the detector
    write_av(src, frames, audio=speechy(2.0, 16000))
    out = tmp_path / "prep"
    prepare_dataset([src], out=out, cfg=load_config(PrepareConfig, None, ["face.crop_size=64"]), show_progress=False)
    ds = PreparedDataset(out)
    valid = np.asarray(ds.clip(ds.ids()[0]).valid)
    assert not valid[10:30].any() and valid[40:43].all() and valid[:9].all()
    out2 = tmp_path / "prep2"
    prepare_dataset([src], out=out2, cfg=load_config(PrepareConfig, None, ["face.crop_size=64",
                                                                          "face.max_gap_seconds=1.2"]),
                    show_progress=False)
    ds2 = PreparedDataset(out2)
    assert np.asarray(ds2.clip(ds2.ids()[0]).valid)[10:30].all()  # the setting decides


@pytest.mark.heavy
def test_lse_flag_when_the_expert_fails_on_the_real_clip(clip, tmp_path, monkeypatch):
    from talkfreq.face import FaceConfig
    from talkfreq.models import SyncNet
    from talkfreq.report import sync_scoring
    from talkfreq.report.evaluate import EvalConfig, evaluate

    assert sync_scoring.lse_unreliable({"lse_offset": 0.0, "lse_c": 0.5}) is None
    assert "AV offset +3 frames" in sync_scoring.lse_unreliable({"lse_offset": 3.0, "lse_c": 0.5})
    assert "LSE-C 0.020" in sync_scoring.lse_unreliable({"lse_offset": 0.0, "lse_c": 0.02})
    assert sync_scoring.lse_unreliable({"lse_offset": None, "lse_c": None}) is None

    torch.manual_seed(0)
    SyncNet(config={"image_size": 96}).save_pretrained(tmp_path / "syncnet")
    monkeypatch.setattr(sync_scoring, "RELIABLE_REAL_LSE_C", 1e9)  # an expert that never finds sync on the real clip
    res = evaluate(clip, {"copy": clip}, out=tmp_path / "report",
                   cfg=EvalConfig(face=FaceConfig(crop_size=96), syncnet=str(tmp_path / "syncnet"), write_video=False))
    assert set(res.unreliable) == {"lse_d", "lse_c", "lse_offset", "lse_offset_support"}
    html = (tmp_path / "report" / "report.html").read_text()
    table_end = html.index("</table>")
    flag = html.index('id="unreliable"')
    assert flag > table_end and "LSE-D, LSE-C" in html[flag:flag + 300] and "out of sync" in html[flag:flag + 600]
    import json

    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["unreliable"]["lse_c"]
