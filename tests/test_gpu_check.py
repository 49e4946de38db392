"""benchmarks/gpu_check.sh --dry-run: every part of the GPU check on the CPU with tiny sizes, so the script cannot rot
between GPU loans; and the pieces of benchmarks/gpu_check.py the dry run may not reach (the synthetic clip, a part
that timed out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from test_bench import check_tiny_bench
from test_experiments import load_script

REPO = Path(__file__).resolve().parents[1]


def probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel, standing in for the carried ones."""
    whl = folder / "talkfreq_probe-0.1-py3-none-any.whl"
    info = "talkfreq_probe-0.1.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("talkfreq_probe/__init__.py", "")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: talkfreq-probe\nVersion: 0.1\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        files = ["talkfreq_probe/__init__.py", f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"]
        z.writestr(f"{info}/RECORD", "".join(f"{f},,\n" for f in files))
    return whl


@pytest.mark.heavy
def test_dry_run_runs_every_part_and_writes_the_summary(tmp_path):
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir()
    probe_wheel(wheels)
    env = os.environ | {"OUT": str(out), "PYTHON": sys.executable, "GPU_CHECK_WHEELS": str(wheels),
                        "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    assert [p["part"] for p in summary["parts"]] == ["install", "info", "clip", "tests", "bench256", "bench512",
                                                     "train"]
    assert all(p["status"] == "ok" for p in summary["parts"]), summary["parts"]
    assert summary["tests"]["failed"] == 0 and summary["tests"]["skipped"] > 0  # no CUDA: the GPU tests skip
    assert set(summary["bench"]) == {"bench 256", "bench 512"} and summary["train"]
    assert not summary["info"]["import_errors"]
    log = (out / "gpu_check.log").read_text()
    assert "installed 1 wheels" in log and "gpu check (dry run" in log and "end to end, batch 1" in log
    # bench256 is `talkfreq bench --tiny --quick` end to end on the CPU: the bench tests' checks of that command
    check_tiny_bench(json.loads((out / "bench_256.json").read_text()), log)
    assert set(json.loads((out / "bench_512.json").read_text())["models"]) == {"FREAK-512", "SOVQAE-512"}
    assert sorted(p.name for p in out.iterdir()) == ["bench_256.json", "bench_512.json", "gpu_check.log",
                                                     "pytest.xml", "summary.json", "train.json"]


@pytest.mark.heavy
def test_only_runs_the_named_parts(tmp_path):
    out = tmp_path / "out"
    env = os.environ | {"OUT": str(out), "PYTHON": sys.executable, "GPU_CHECK_WHEELS": str(tmp_path),
                        "GPU_CHECK_ONLY": "none"}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [p["part"] for p in summary["parts"]] == ["install", "info", "clip"]  # the ones every part needs
    assert "=== bench512: not in GPU_CHECK_ONLY" in proc.stdout


def test_video_synthesizes_a_clip_when_no_sample_is_there(tmp_path, monkeypatch):
    from talkfreq.io import VideoReader

    gc = load_script("benchmarks/gpu_check.py")
    monkeypatch.setattr(gc, "SAMPLE", tmp_path / "absent.mp4")
    dest = tmp_path / "clip.mp4"
    assert gc.video(dest, seconds=0.4, size=96, wheels=tmp_path) == 0
    r = VideoReader(dest)
    assert (r.source_width, sum(1 for _ in r)) == (96, 10)


def test_summary_reports_a_timed_out_part_and_fails(tmp_path, capsys):
    gc = load_script("benchmarks/gpu_check.py")
    (tmp_path / "parts.tsv").write_text("install\t0\t10.0\t12.5\t45\nbench256\t124\t12.5\t102.5\t90\n")
    assert gc.summary(tmp_path, tmp_path) == 1
    text = capsys.readouterr().out
    assert "TIMEOUT" in text and "90 s (cap 90 s)" in text
    parts = json.loads((tmp_path / "summary.json").read_text())["parts"]
    assert [p["status"] for p in parts] == ["ok", "TIMEOUT"] and parts[0]["seconds"] == 2.5


def test_sizes_lists_the_carried_files_and_checks_the_limit(tmp_path, capsys, monkeypatch):
    gc = load_script("benchmarks/gpu_check.py")
    (tmp_path / "a.whl").write_bytes(b"x" * 2**20)
    assert gc.sizes(tmp_path, REPO) == 0
    text = capsys.readouterr().out
    assert "1.00 MiB  a.whl" in text and "the repository's tree" in text and "fits" in text
    monkeypatch.setattr(gc, "TREE_LIMIT_MIB", 1)
    assert gc.sizes(tmp_path, REPO) == 1 and "TOO BIG" in capsys.readouterr().out
