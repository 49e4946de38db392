"""`talkfreq evaluate` and `talkfreq compare-video` on synth clips: the numbers, the report files, bad inputs.

One evaluation (real vs an exact copy and a Gaussian-blurred copy, with an untrained SyncNet and an untrained
refiner to exercise the LSE and NRoUB wiring) is shared by the module; crops are 128 px to keep it quick.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import media, rewrite_video
from talkfreq.cli import main
from talkfreq.face import FaceConfig
from talkfreq.io import VideoReader, probe
from talkfreq.report.common import REFERENCE_NAME
from talkfreq.report.compare_video import compare_video
from talkfreq.report.evaluate import EvalConfig, evaluate
from talkfreq.report.scoring import COLUMNS, Row, best_rows

FRAMES = 50  # 2 s synth clips at 25 fps


@pytest.fixture(scope="module")
def clips(synth_dir, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval_inputs")
    real = next(synth_dir.glob("id00/*.mp4"))
    blurred = rewrite_video(real, d / "blur.mp4", fn=lambda f: cv2.GaussianBlur(f, (0, 0), 2.0))
    short = rewrite_video(real, d / "short.mp4", frames=30, audio=False)
    noface = rewrite_video(real, d / "noface.mp4", fn=lambda f: np.full_like(f, 90), frames=10)
    return {"real": real, "blur": blurred, "short": short, "noface": noface, "dir": d}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    import torch

    from talkfreq.models import SyncNet
    from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig

    d = tmp_path_factory.mktemp("eval_models")
    torch.manual_seed(0)
    SyncNet(config={"image_size": 96}).save_pretrained(d / "syncnet")
    ref = SOVQAE(config=SOVQAEConfig(image_size=32, base_channels=16, channel_mult=[1, 2], num_res_blocks=1,
                                     attention=False, latent_dim=8, codebook_size=32))
    ref.train()
    ref(torch.rand(8, 3, 32, 32) * 2 - 1)  # k-means initialisation of the codebook
    ref.save_pretrained(d / "refiner")
    return {"syncnet": d / "syncnet", "refiner": d / "refiner"}


# the tests of this one evaluation are heavy: it is most of the module's time; test_cli_evaluate_without_video is
# the quick tier's evaluate end to end (64 px, no video)
@pytest.fixture(scope="module")
def report(clips, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "report"
    cfg = EvalConfig(face=FaceConfig(crop_size=128), syncnet=str(models["syncnet"]), refiner=str(models["refiner"]),
                     nroub_frames=8)
    return evaluate(clips["real"], {"copy": clips["real"], "blur": clips["blur"]}, out=out, cfg=cfg)


@pytest.mark.heavy
def test_self_candidate_is_perfect(report):
    copy, real = report.row("copy").values, report.row(REFERENCE_NAME).values
    cap = EvalConfig().psnr_cap_db
    assert copy["psnr"] == cap and copy["mouth_psnr"] == cap  # identical frames: inf, capped per frame
    assert copy["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert copy["spectrum_gap"] == 0.0 and copy["mouth_spectrum_gap"] == 0.0
    assert copy["flicker_ratio"] == pytest.approx(1.0)
    # ground truth is a row, scored by the same tool: the copy's numbers are the real video's
    for key in ("psnr", "ssim", "laplacian_var", "cpbd", "hf_ratio", "lse_d", "lse_c"):
        assert copy[key] == pytest.approx(real[key]), key
    assert report.frames == report.scored == FRAMES and report.notes == []


@pytest.mark.heavy
def test_blur_lowers_fidelity_detail_and_sharpness(report):
    blur, real = report.row("blur").values, report.row(REFERENCE_NAME).values
    assert blur["psnr"] < 40 and blur["ssim"] < 0.95 and blur["mouth_psnr"] < 40
    assert blur["hf_ratio"] < real["hf_ratio"] and blur["mouth_hf_ratio"] < real["mouth_hf_ratio"]
    assert blur["laplacian_var"] < 0.5 * real["laplacian_var"] and blur["cpbd"] < real["cpbd"]
    assert blur["spectrum_gap"] > 0.1 and blur["mouth_spectrum_gap"] > 0.1
    assert blur["flicker_ratio"] < 1.0  # blur smooths frame-to-frame texture changes too


@pytest.mark.heavy
def test_mouth_open_columns(report):
    real, copy, blur = (report.row(n).values for n in (REFERENCE_NAME, "copy", "blur"))
    assert real["mouth_open_r"] == 1.0 and copy["mouth_open_r"] == pytest.approx(1.0)
    assert copy["mouth_open"] == real["mouth_open"] > 0
    # the synth clip pauses between words: its silent stretches exist and the copy rests exactly as open
    assert real["mouth_open_silent"] == pytest.approx(1.0) and copy["mouth_open_silent"] == pytest.approx(1.0)
    assert blur["mouth_open_r"] < 1.0 and blur["mouth_open"] != real["mouth_open"]


@pytest.mark.heavy
def test_best_marking_picks_the_copy_and_never_the_reference(report):
    marked = {c.key for c in COLUMNS if c.direction is not None} - {"lpips", "fid"}  # no weights for either here
    assert set(report.best) == marked
    assert all(names == ["copy"] for k, names in report.best.items() if not k.startswith("lse")), report.best
    assert all(REFERENCE_NAME not in names for names in report.best.values())


def test_best_rows_directions_ties_and_unavailable():
    rows = [Row("real", "reference", "r", {"psnr": 100.0, "lpips": 0.0, "cpbd": 0.5, "lse_d": None}),
            Row("a", "candidate", "a", {"psnr": 30.0, "lpips": 0.2, "cpbd": 0.9, "lse_d": None}),
            Row("b", "candidate", "b", {"psnr": 32.0, "lpips": 0.3, "cpbd": 0.45, "lse_d": None}),
            Row("c", "candidate", "c", {"psnr": 32.0, "lpips": math.nan, "cpbd": 0.1, "lse_d": None})]
    best = best_rows(rows)
    assert best["psnr"] == ["b", "c"]  # higher is better; a tie marks both; the reference's 100 is not a candidate
    assert best["lpips"] == ["a"]  # lower is better; NaN never wins
    assert best["cpbd"] == ["b"]  # closest to the real value (0.5), not the highest (a: 0.9)
    assert "lse_d" not in best  # unavailable everywhere: nothing to mark


@pytest.mark.heavy
def test_report_files(report):
    out = report.out
    html = (out / "report.html").read_text()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == ["closeups.png", "nroub_histograms.png", "per_frame.png", "radial_spectra.png", "spectra.png"]
    for name in figures:
        assert f'src="figures/{name}"' in html
    assert '<video controls preload="metadata" src="compare.mp4">' in html and (out / "compare.mp4").is_file()
    assert html.count('class="best"') == sum(len(v) for v in report.best.values())
    assert re.search(r'<tr class="reference"><td class="name"[^>]*>real \(reference\)', html)
    assert "LPIPS</b> unavailable" in html and "NRoUB" in html
    assert not list(out.parent.glob(".*tmp*")), "staging folder left behind"


@pytest.mark.heavy
def test_csv_and_json(report):
    with open(report.out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == [REFERENCE_NAME, "copy", "blur"]
    assert [r["role"] for r in rows] == ["reference", "candidate", "candidate"]
    assert all(r["lpips"] == "unavailable" for r in rows)  # no VGG16 weights here: never a number
    assert all(float(r["lse_d"]) > 0 for r in rows)
    doc = json.loads((report.out / "metrics.json").read_text())
    assert [r["name"] for r in doc["rows"]] == [REFERENCE_NAME, "copy", "blur"]
    assert doc["rows"][2]["metrics"]["lpips"] == "unavailable" and "lpips" in doc["unavailable"]
    assert doc["best"]["psnr"] == ["copy"] and doc["scored_frames"] == FRAMES
    assert set(doc["nroub"]["degradations"]) and doc["nroub"]["frames"] == 8


@pytest.mark.heavy
def test_compare_video_from_evaluate(report):
    info = probe(report.out / "compare.mp4")
    assert info.has_audio and info.width == 3 * 128
    assert sum(1 for _ in VideoReader(report.out / "compare.mp4")) == FRAMES


def test_compare_video_tiles_audio_and_truncation(clips, tmp_path):
    out = tmp_path / "cmp.mp4"
    res = compare_video(clips["real"], {"blur": clips["blur"], "short": clips["short"]}, out=out, insets=(),
                        labels=True)
    assert res.frames == 30 and "cut to 30 frames" in res.note  # the shortest sets the length
    assert res.width == sum(res.tile_widths.values()) == 3 * 128 and res.height == 128
    info = probe(out)
    assert (info.width, info.height) == (res.width, res.height)
    assert info.has_audio and res.audio  # the real video's audio, even though "short" has none
    assert info.duration == pytest.approx(30 / 25, abs=0.1)
    assert sum(1 for _ in VideoReader(out)) == 30

    res = compare_video(clips["real"], {"blur": clips["blur"]}, out=out, insets=("mouth",), zoom=2.0, labels=False)
    assert res.frames == FRAMES and res.height == 128 + res.strip_height and res.strip_height > 0
    assert 1.0 < res.zooms["mouth"] <= 2.0


# ---------------------------------------------------------------- a real clip against degraded copies of itself
KATIE = "video/sadtalker_WDA_KatieHill_000.mp4"
DEGRADATIONS = ("gaussian_blur", "jpeg")  # at data.degradations.FIXED_STRENGTHS: sigma 1.5 px, quality 30
# Every fidelity and frequency column (LSE needs a SyncNet, LPIPS VGG16 weights: neither is given here).
# seam: the gradient across the dubbing paste boundary; on whole-frame degradations it does not rank (blur lowers
# it, JPEG blocking raises it, either may land nearer the real value than a clean re-encode)
# seam and mouth_open_lag judge the paste boundary and timing, which whole-frame degradations leave alone (a tie)
RANKED = tuple(c.key for c in COLUMNS if c.direction is not None and not c.key.startswith("lse")
               and c.key not in ("lpips", "fid", "seam", "mouth_open_lag"))


@pytest.mark.heavy
@pytest.mark.media
@pytest.mark.parametrize("frames,size", [(50, 128), pytest.param(None, 256, marks=pytest.mark.slow)],
                         ids=["2s-128px", "full-256px"])
def test_real_clip_ranks_clean_copy_first(frames, size, tmp_path, capsys):
    """``talkfreq evaluate`` on the real sample clip against a clean, a Gaussian-blurred and a JPEG-degraded copy
    of it ranks the clean copy first on every fidelity and frequency column.

    All three copies are the clip's decoded frames written by the same encoder, lossless (crf 0), so they differ
    only by the degradation: with the default crf 18, re-encoding alone moves the no-reference statistics (the
    clean copy's flicker ratio drops to 0.97 on this mpeg4 source) as much as JPEG noise does. The default run
    scores the first 2 s at 128 px; the slow one all 8 s at the default 256 px, with the side-by-side video.
    """
    from talkfreq.data.degradations import FIXED_STRENGTHS, apply_kind

    real = media(KATIE)
    copies = {"clean": rewrite_video(real, tmp_path / "clean.mp4", frames=frames, crf=0)}
    for kind in DEGRADATIONS:
        copies[kind] = rewrite_video(real, tmp_path / f"{kind}.mp4", frames=frames, crf=0,
                                fn=lambda f, k=kind: apply_kind(f, kind=k, strength=FIXED_STRENGTHS[k]))
    out = tmp_path / "report"
    args = ["evaluate", "-r", str(real), *[a for n, p in copies.items() for a in ("--candidate", f"{n}={p}")],
            "--out", str(out), "--size", str(size), "-q"]
    assert main(args if frames is None else [*args, "--no-video"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "metrics.json").read_text())
    rows = {r["name"]: r["metrics"] for r in doc["rows"]}
    assert doc["scored_frames"] == (frames or 200)
    direction = {c.key: c.direction for c in COLUMNS}
    print("\n".join(f"{k:20s} " + " ".join(f"{n}={rows[n][k]:.5g}" for n in rows) for k in RANKED))
    for key in RANKED:
        def badness(name: str) -> float:
            v = rows[name][key]
            return {"max": -v, "min": v, "ref": abs(v - rows[REFERENCE_NAME][key])}[direction[key]]

        assert all(badness("clean") < badness(k) for k in DEGRADATIONS), (key, {n: rows[n][key] for n in rows})
        assert doc["best"][key] == ["clean"], key
    # No network weights here: LPIPS says so instead of giving a number (FID is not an evaluate column).
    assert all(r["lpips"] == "unavailable" for r in rows.values()) and "VGG16" in doc["unavailable"]["lpips"]
    assert all(r["fid"] == "unavailable" for r in rows.values()) and "Inception" in doc["unavailable"]["fid"]
    assert "lpips" not in doc["best"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("talkfreq: error:"), err
    return err


def test_bad_inputs_one_line_and_no_output(clips, tmp_path, capsys):
    real, out = str(clips["real"]), tmp_path / "rep"
    cases = [
        (["-r", str(tmp_path / "missing.mp4"), "--candidate", f"a={real}"], "not found"),
        (["-r", real, "--candidate", f"a={tmp_path / 'nope.mp4'}"], "not found"),
        (["-r", real, "--candidate", real], "NAME=PATH"),
        (["-r", real, "--candidate", f"real={real}"], "reserved"),
        (["-r", real, "--candidate", f"a={real}", "--candidate", f"a={real}"], "twice"),
        (["-r", str(clips["noface"]), "--candidate", f"a={real}"], "no face"),
    ]
    for args, expected in cases:
        assert main(["evaluate", *args, "--out", str(out), "-q"]) == 2, args
        assert expected in _one_line_error(capsys)
        assert not out.exists() and not list(tmp_path.glob(".*")), args
    mp4 = tmp_path / "cmp.mp4"
    for args, expected in [([real, "blur"], "NAME=PATH"), ([real, f"b={tmp_path / 'x.mp4'}"], "not found"),
                           ([str(clips["noface"]), f"b={real}"], "no face")]:
        assert main(["compare-video", *args, "--out", str(mp4), "-q"]) == 2
        assert expected in _one_line_error(capsys)
        assert not list(tmp_path.iterdir()) or not mp4.exists()


def test_cli_compare_video(clips, tmp_path, capsys):
    mp4 = tmp_path / "cmp.mp4"
    assert main(["compare-video", str(clips["real"]), f"blurred={clips['blur']}", "--out", str(mp4), "--insets",
                 "none", "--height", "64", "-q"]) == 0
    assert "wrote" in capsys.readouterr().out
    info = probe(mp4)
    assert (info.width, info.height) == (128, 64) and info.has_audio


@pytest.mark.parametrize("cmd", ["evaluate", "compare-video"])
def test_help(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_cli_evaluate_without_video(clips, tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("mine")  # an existing folder: the report joins it, nothing else is touched
    import torch

    from talkfreq.models import SyncNet

    experts = []
    for seed in (0, 1):  # two seeds of a small expert: --syncnet repeated scores with their ensemble
        torch.manual_seed(seed)
        SyncNet(config={"image_size": 48, "width": 32}).save_pretrained(tmp_path / f"expert{seed}")
        experts += ["--syncnet", str(tmp_path / f"expert{seed}")]
    assert main(["evaluate", "-r", str(clips["real"]), "--candidate", f"blur={clips['blur']}", "--out", str(out),
                 "--no-video", "--size", "64", "closeup_frames=2", "-q", *experts]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    assert "LSE from the mean distances of" in printed and "of 2 SyncNet experts" in " ".join(printed.split())
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["syncnet_ensemble"] == [str(tmp_path / "expert1")]
    html = (out / "report.html").read_text()
    assert "<video" not in html and not (out / "compare.mp4").exists() and (out / "keep.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["config"]["face"]["crop_size"] == 64


# ---------------------------------------------------------------- report.html in a real browser
CHROMIUM_PACKAGES = ("chromium", "chromium-driver")  # Debian's; .ci/run installs them too
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _chromium_missing() -> str | None:
    missing = [p for p, ok in (("chromium", shutil.which("chromium")), ("chromium-driver", CHROMEDRIVER.is_file()))
               if not ok]
    return ", ".join(missing) or None


def _no_browser(reason: str):
    """Fail under CI (CI=true), skip elsewhere: CI must render the report, a laptop without Chromium need not."""
    msg = f"report.html render test needs headless Chromium: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg + " (CI=true: install it, e.g. .ci/run does `apt-get install chromium chromium-driver`)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    """Selenium on Debian's headless ``chromium`` + ``chromedriver``, installed with apt-get when missing and this
    process may (root, apt-get present)."""
    if _chromium_missing() and shutil.which("apt-get") and os.geteuid() == 0:
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        try:  # a failure shows below as the packages still missing; the time limits stay within pytest-timeout's
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=120)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *CHROMIUM_PACKAGES],
                           env=env, capture_output=True, timeout=400)
        except (OSError, subprocess.TimeoutExpired):
            pass
    missing = _chromium_missing()
    if missing:
        _no_browser(f"{missing} not installed (apt-get install -y --no-install-recommends "
                    f"{' '.join(CHROMIUM_PACKAGES)})")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("the selenium package is missing (pip install -e '.[dev]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.heavy
def test_report_renders_in_headless_chromium(report, browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((report.out / "report.html").resolve().as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
    table = browser.execute_script("""
        const t = document.getElementById('metrics');
        return t && {rows: t.tBodies[0].rows.length, cols: t.tHead.rows[0].cells.length,
                     width: t.getBoundingClientRect().width, height: t.getBoundingClientRect().height,
                     first: t.tBodies[0].rows[0].cells[0].textContent, best: t.querySelectorAll('.best').length};""")
    assert table, "no metrics table in the rendered page"
    assert table["rows"] == len(report.rows) and table["first"].startswith("real (reference)")
    assert table["cols"] > 10 and table["width"] > 300 and table["height"] > 50  # laid out, not collapsed
    assert table["best"] == sum(len(v) for v in report.best.values())
    images = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])")
    assert sorted(src for src, _, _ in images) == sorted(
        f"figures/{p.name}" for p in (report.out / "figures").glob("*.png"))
    assert all(w > 50 and h > 50 for _, w, h in images), images  # each PNG decoded (a broken one is 0 x 0)
    # The embedded compare.mp4 (h264) decodes: its metadata loads (preload="metadata") with the tiled size.
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const v = document.querySelector('video'); return v.error !== null || v.readyState >= 1"))
    video = browser.execute_script("const v = document.querySelector('video');"
                                   "return [v.error && v.error.code, v.videoWidth, v.duration]")
    assert video[0] is None and video[1] == 3 * 128 and video[2] == pytest.approx(FRAMES / 25, abs=0.1), video
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] >= 800 and img.shape[1] >= 1000
    assert img.std() > 20  # text, table and figures drawn, not a blank page


def test_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        _no_browser("chromium not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="chromium not installed"):
        _no_browser("chromium not installed")
