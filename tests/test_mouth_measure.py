"""The landmark-free mouth-opening measure and the silence finder (talkfreq.metrics.mouth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import media
from talkfreq.metrics.mouth import (
    SilenceConfig,
    frame_levels,
    lagged_pearson,
    mouth_opening,
    mouth_rows,
    pearson,
    silent_frames,
    silent_opening_ratio,
)
from test_experiments import load_script

SR, FPS = 16000, 25.0


BENCH = load_script("benchmarks/mouth_measure.py")
face_crops = BENCH.face_crops  # cut the way ``talkfreq evaluate`` cuts them


@pytest.fixture(scope="module")
def synth_clips(tmp_path_factory) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """[(crops, truth openness, 16 kHz audio)] of three 6 s synth identities at 256 px."""
    from talkfreq.data.synth import SynthConfig, synthesize
    from talkfreq.io import load_video_audio

    out = tmp_path_factory.mktemp("synth_mouth")
    paths = synthesize(cfg=SynthConfig(identities=3, clips_per_identity=1, seconds=6.0, frame_size=256, seed=1),
                       out=out)
    clips = []
    for p in paths:
        with np.load(Path(p).with_suffix(".truth.npz")) as z:
            truth = z["openness"]
        clips.append((face_crops(Path(p)), truth, load_video_audio(p, sample_rate=SR)))
    return clips


@pytest.mark.heavy
def test_opening_tracks_synth_truth(synth_clips):
    rs = [pearson(mouth_opening(crops), truth[: len(crops)]) for crops, truth, _ in synth_clips]
    assert min(rs) >= 0.8, rs  # measured 0.90-0.98


@pytest.mark.heavy
def test_reference_rows_measure_candidates_in_the_same_box(synth_clips):
    crops = synth_clips[0][0]
    rows = mouth_rows(crops)
    assert np.all((rows > 0.5) & (rows < 0.75))
    np.testing.assert_array_equal(mouth_opening(crops, rows=rows), mouth_opening(crops))
    # a flat grey candidate has no dark mouth in the reference's box
    assert not mouth_opening(np.full_like(crops, 128), rows=rows).any()


@pytest.mark.heavy
def test_silence_on_synth_is_where_the_mouth_is_shut(synth_clips):
    for crops, truth, wav in synth_clips:
        n = len(crops)
        silent = silent_frames(wav, sample_rate=SR, fps=FPS, n_frames=n)
        assert silent.sum() >= 0.15 * n  # the synth pauses are 150-600 ms between words
        assert not truth[:n][silent].any()  # no silent frame has an open mouth
        opening = mouth_opening(crops)
        assert opening[silent].mean() < 0.25 * opening[~silent].mean()


def _bursts(noise_db: float, *, seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """Tone bursts (0.4 s on, 0.4 s off) at -10 dBFS RMS over white noise ``noise_db`` below them."""
    t = np.arange(int(seconds * SR)) / SR
    on = (t % 0.8) < 0.4
    tone = np.sqrt(2) * 10 ** (-10 / 20) * np.sin(2 * np.pi * 220 * t) * on
    return tone + np.random.default_rng(seed).normal(0, 10 ** ((-10 - noise_db) / 20), t.size)


def test_silent_frames_levels_and_edges():
    wav = _bursts(60.0)
    n = 100
    lv = frame_levels(wav, sample_rate=SR, fps=FPS, n_frames=n + 5)
    assert lv[5] == pytest.approx(-10.0, abs=0.3) and np.isneginf(lv[-1])  # past the audio's end
    silent = silent_frames(wav, sample_rate=SR, fps=FPS, n_frames=n)
    on = ((np.arange(n) / FPS) % 0.8) < 0.4
    assert not (silent & on).any()
    # each 10-frame gap loses the frames within edge_frames (2) of a burst, plus the one whose window straddles
    gap = silent[10:20]
    assert gap.sum() == 10 - 2 * 2 - 1 and not gap[:2].any() and not gap[-2:].any()


def test_noise_floor_rule_finds_pauses_a_fixed_threshold_misses():
    wav = _bursts(27.0)  # a noise floor 27 dB below the speech, as on the KatieHill sample clip
    on = ((np.arange(100) / FPS) % 0.8) < 0.4
    silent = silent_frames(wav, sample_rate=SR, fps=FPS, n_frames=100)
    assert silent.sum() >= 20 and not (silent & on).any()
    fixed = SilenceConfig(floor_margin_db=-100.0)  # the 35 dB rule alone
    assert not silent_frames(wav, sample_rate=SR, fps=FPS, n_frames=100, cfg=fixed).any()
    # a clip that never pauses (bursts 12 dB apart) has no silent frame, however quiet its softer syllables
    t = np.arange(4 * SR) / SR
    steady = np.sin(2 * np.pi * 220 * t) * np.where((t % 0.8) < 0.4, 1.0, 10 ** (-12 / 20))
    assert not silent_frames(steady, sample_rate=SR, fps=FPS, n_frames=100).any()


def test_pearson_and_silent_ratio():
    assert pearson(np.ones(5), np.arange(5)) == 0.0
    assert pearson(np.arange(5), 2 * np.arange(5) + 1) == pytest.approx(1.0)
    s = np.array([True, True, False, False])
    ref = np.array([0.02, 0.04, 0.3, 0.2])
    assert silent_opening_ratio(ref, s, ref_opening=ref, ref_silent=s) == pytest.approx(1.0)
    assert silent_opening_ratio(ref * 1.5, s, ref_opening=ref, ref_silent=s) == pytest.approx(1.5)
    assert np.isnan(silent_opening_ratio(ref, ~s & False, ref_opening=ref, ref_silent=s))
    assert np.isnan(silent_opening_ratio(ref, s, ref_opening=np.zeros(4), ref_silent=s))


@pytest.mark.heavy
@pytest.mark.media
def test_real_clip_open_frames_score_above_closed_and_the_mouth_moves_with_speech():
    from talkfreq.io import load_video_audio

    name = "sadtalker_WDA_KatieHill_000.mp4"
    video = media(f"video/{name}")
    crops = face_crops(video)
    opening = mouth_opening(crops)
    open_, closed = BENCH.LABELS[name]  # hand-labelled: lips apart with a dark gap / lips together
    assert opening[open_].min() > opening[closed].max()
    # she smiles in her pauses, so the mean opening there is not lower; the mouth moves less there
    silent = silent_frames(load_video_audio(video, sample_rate=SR), sample_rate=SR, fps=FPS, n_frames=len(crops))
    step = np.abs(np.diff(opening))
    assert silent.sum() >= 10
    assert step[~silent[1:] & ~silent[:-1]].mean() > 1.3 * step[silent[1:] & silent[:-1]].mean()


def test_lagged_pearson_finds_a_known_delay():
    rng = np.random.default_rng(0)
    real = np.convolve(rng.random(120), np.ones(4) / 4, mode="same")  # a smooth opening series, like speech
    for k in (-3, 0, 2, 5):
        late = np.roll(real, k)  # late[t] = real[t - k]: the dub's mouth moves k frames late
        lag, r = lagged_pearson(late, real, max_lag=5)
        assert lag == k and r > 0.95
    assert lagged_pearson(real, real)[0] == 0
    assert lagged_pearson(real[:12], real[:12], max_lag=5) == (None, 0.0)  # too short to judge
    assert lagged_pearson(np.ones(60), real[:60]) == (None, 0.0)  # a mouth that never moves


def test_a_lag_at_the_edge_of_the_search_is_flagged_as_no_clear_timing():
    from talkfreq.report.scoring import Row, lag_edge_note

    rows = [Row("real", "reference", "r.mp4", {"mouth_open_lag": 0.0}),
            Row("FREAK", "candidate", "a.mp4", {"mouth_open_lag": -5.0}),
            Row("FREAK+SOVQAE", "candidate", "b.mp4", {"mouth_open_lag": -4.0}),
            Row("flat", "candidate", "c.mp4", {"mouth_open_lag": None})]
    note = lag_edge_note(rows)
    assert note is not None and "FREAK at the edge of the +-5-frame search" in note and "SOVQAE" not in note
    assert lag_edge_note(rows[:1] + rows[2:]) is None
    # the edge is where lagged_pearson stops: a dub 7 frames early peaks at its edge, not at -7
    rng = np.random.default_rng(1)
    real = np.convolve(rng.random(120), np.ones(4) / 4, mode="same")
    assert lagged_pearson(np.roll(real, -7), real)[0] == -5
