"""The new-audio check: does the refiner keep stage 1's timing when the audio is not the video's own?"""

from __future__ import annotations

from talkfreq.report.new_audio import judge_timing, new_audio_check, not_measured, pool

STAGE1 = {"lse_d": 1.00, "lse_c": 0.07, "lse_offset": 0.0}
KEPT = {"lse_d": 0.997, "lse_c": 0.072, "lse_offset": 0.0, "mouth_open_r": 0.94, "mouth_open_lag": 0.0}


def test_a_refiner_that_follows_stage_1_keeps_its_timing():
    kept, failed, how = judge_timing(STAGE1, KEPT)
    assert kept is True and failed == []
    assert "lag 0, r >= 0.8" in how and "expert vs the new audio" in how


def test_a_refiner_that_redraws_another_mouth_is_caught_by_the_opening_and_the_expert():
    kept, failed, _ = judge_timing(STAGE1, {**KEPT, "mouth_open_r": 0.35, "mouth_open_lag": 3.0,
                                            "lse_offset": -8.0, "lse_c": 0.03})
    assert kept is False and failed == ["mouth_open_lag", "mouth_open_r", "lse_offset", "lse_c"]


def test_the_expert_judges_only_where_it_can():
    # the main report found the expert unable to rank the real clip: the opening alone judges
    kept, failed, how = judge_timing(STAGE1, {**KEPT, "lse_offset": 5.0}, expert_unreliable="offset +3")
    assert kept is True and "expert: not judged" in how
    # stage 1 itself does not follow the new audio by the expert: nothing of the expert's to keep
    kept, _, how = judge_timing({**STAGE1, "lse_offset": -8.0}, {**KEPT, "lse_offset": 2.0})
    assert kept is True and "no sync of stage 1 with the new audio: offset -8" in how
    # a frame off with a clear peak is in sync (the expert's jitter): judged, and a refiner that loses the peak fails
    kept, failed, how = judge_timing({**STAGE1, "lse_offset": -1.0, "lse_c": 0.23},
                                     {**KEPT, "lse_offset": -1.0, "lse_c": 0.15})
    assert kept is False and failed == ["lse_c"] and "expert vs the new audio" in how
    # a refined dub that reads as *more* in sync with the new audio keeps the timing (one-sided, unlike own audio)
    kept, failed, how = judge_timing({**STAGE1, "lse_c": 0.29, "lse_d": 0.85},
                                     {**KEPT, "lse_c": 0.37, "lse_d": 0.78})
    assert kept is True and failed == [] and "no more than 5% worse" in how
    kept, failed, _ = judge_timing({**STAGE1, "lse_c": 0.29, "lse_d": 0.85}, {**KEPT, "lse_c": 0.27, "lse_d": 0.90})
    assert kept is False and failed == ["lse_d", "lse_c"]
    # ... or finds its offset 0 without a sync peak (LSE-C at the noise level)
    kept, _, how = judge_timing({**STAGE1, "lse_c": 0.015}, {**KEPT, "lse_offset": -7.0})
    assert kept is True and "LSE-C 0.015" in how
    # a flat opening and no expert: nothing judges, never "kept"
    kept, failed, how = judge_timing(STAGE1, {**KEPT, "mouth_open_r": None, "mouth_open_lag": None},
                                     expert_unreliable="no sync peak")
    assert kept is None and failed == [] and "shut or flat, or not measured" in how


def test_a_stretch_where_stage_1_keeps_the_mouth_shut_is_not_judged_by_the_opening():
    # May under new speech: stage 1's mouth reads 0.0000-0.0002 (shut); its near-constant opening gives the refined
    # one r 0 (constant) and 0.57 (noise) - no timing to keep, so only stretches where stage 1 opens are judged
    shut, opens = {"real": {"mouth_open": 0.0}}, {"real": {"mouth_open": 0.03}}
    r = [{**KEPT, "mouth_open_r": 0.0, "mouth_open_lag": None}, {**KEPT, "mouth_open_r": 0.57}]
    lse = {"stage1": STAGE1, "refined": KEPT}
    check = new_audio_check(audio="a, b", vs_stage1=[{**shut, "refined": r[0]}, {"real": {"mouth_open": 0.0002},
                                                                                  "refined": r[1]}],
                            vs_original=[lse, lse], expert_unreliable="offset +15")
    assert check.kept is None and check.refined["mouth_open_r"] is None and "stage 1's mouth shut" in check.verdict
    assert [w["refined"]["mouth_open_r"] for w in check.windows] == [None, None]
    # one stretch where stage 1 opens: that one judges, and the shut one is left out of the pool
    check = new_audio_check(audio="a, b", vs_stage1=[{**shut, "refined": r[0]}, {**opens, "refined": KEPT}],
                            vs_original=[lse, lse], expert_unreliable="offset +15")
    assert check.kept is True and check.refined["mouth_open_r"] == KEPT["mouth_open_r"]
    assert check.stage1["mouth_open"] == 0.015
    check = new_audio_check(audio="a", vs_stage1=[{**opens, "refined": r[1]}], vs_original=[lse],
                            expert_unreliable="offset +15")
    assert check.kept is False and check.failed == ["mouth_open_r"]


def test_the_check_reads_both_evaluations_and_reports_the_pull_toward_the_original():
    real = {"mouth_psnr": 100.0, "mouth_open_r": 1.0, "mouth_open_lag": 0.0}
    refined = {"mouth_psnr": 35.3, "mouth_ssim": 0.956, "mouth_open_r": KEPT["mouth_open_r"], "mouth_open_lag": 0.0,
               "lse_d": 2.0, "lse_c": 0.01, "lse_offset": 9.0}  # an expert's LSE here (other boxes) is not read
    lse = {k: KEPT[k] for k in ("lse_d", "lse_c", "lse_offset")}
    check = new_audio_check(audio="clip_train.mp4 0.0-12.0 s", vs_stage1=[{"real": real, "refined": refined}],
                            vs_original=[{"real": {}, "stage1": {**STAGE1, "mouth_psnr": 26.30, "mouth_open_r": 0.30},
                                          "refined": {**lse, "mouth_psnr": 26.95, "mouth_open_r": 0.32}}])
    assert check.kept is True and check.refined["mouth_psnr"] == 35.3 and check.stage1["lse_c"] == 0.07
    assert check.refined["lse_c"] == KEPT["lse_c"] and "expert vs the new audio" in check.verdict
    assert check.original["refined"] == {"mouth_psnr": 26.95, "mouth_ssim": None, "mouth_open_r": 0.32}
    assert "the refiner: stage 1's timing kept; judged by mouth opening" in check.verdict
    assert "26.30 -> 26.95 dB" in check.verdict
    assert check.to_dict()["kept"] is True and len(check.windows) == 1


def test_stretches_of_new_speech_are_pooled_before_the_rule_judges():
    # one stretch alone loses 7 % LSE-C, the other gains 1 %: the pooled dub (3 % worse) keeps the timing
    s1 = [{**STAGE1, "lse_c": 0.40}, {**STAGE1, "lse_c": 0.30}]
    ref = [{**KEPT, "lse_c": 0.372}, {**KEPT, "lse_c": 0.303}]
    alone = new_audio_check(audio="a", vs_stage1=[{"refined": ref[0]}], vs_original=[{"stage1": s1[0],
                                                                                      "refined": ref[0]}])
    assert alone.kept is False and alone.failed == ["lse_c"]
    both = new_audio_check(audio="a, b", vs_stage1=[{"refined": r} for r in ref],
                           vs_original=[{"stage1": a, "refined": r} for a, r in zip(s1, ref)])
    assert both.kept is True and both.stage1["lse_c"] == 0.35 and abs(both.refined["lse_c"] - 0.3375) < 1e-9
    assert [w["refined"]["lse_c"] for w in both.windows] == [0.372, 0.303]  # each stretch is kept in the JSON
    # whole frames are pooled by the most frequent; a tie goes to the one nearer 0; a missing value is skipped
    assert pool([{"lse_offset": 2.0}, {"lse_offset": 0.0}, {"lse_offset": 2.0}], ["lse_offset"]) == {"lse_offset": 2.0}
    assert pool([{"lse_offset": -1.0}, {"lse_offset": 1.0}], ["lse_offset"]) == {"lse_offset": -1.0}
    assert pool([{"lse_offset": 3.0}, {"lse_offset": -1.0}], ["lse_offset"]) == {"lse_offset": -1.0}
    assert pool([{"mouth_open_r": None}, {"mouth_open_r": 0.5}], ["mouth_open_r", "lse_c"]) == {
        "mouth_open_r": 0.5, "lse_c": None}


def test_a_check_that_could_not_score_says_so():
    check = not_measured(audio="a.wav", why="d.mp4: no face found in the reference video")
    assert check.kept is None and check.verdict == ("New-audio check (a.wav), the refiner: not measured "
                                                    "(d.mp4: no face found in the reference video).")


def test_the_new_speech_is_stretches_of_the_training_part_as_long_as_the_held_out_clip(tmp_path, monkeypatch):
    import numpy as np

    import talkfreq.demo as demo
    from talkfreq.io import VideoWriter, load_audio

    def clip(path, seconds, seed):
        wav = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)
        with VideoWriter(path, fps=25.0, width=32, height=32, audio=wav, sample_rate=16000) as w:
            for _ in range(int(seconds * 25)):
                w.write(np.zeros((32, 32, 3), np.uint8))
        return path

    split = demo.Split(target=clip(tmp_path / "held.mp4", 1.0, 0), inputs=[clip(tmp_path / "train.mp4", 4.0, 1)],
                       identities=["train"])
    got = demo.other_speech(split, out=tmp_path, windows=3)
    assert [(p.name, c, s) for p, c, s in got] == [(f"new_audio_{i}.wav", "train.mp4", f"{i}.0-{i + 1}.0 s")
                                                   for i in range(3)]
    assert all(len(load_audio(p, sample_rate=16000)) == 16000 for p, _, _ in got)
    # as much speech as the check wants, no more: 2 s of it here take two stretches
    monkeypatch.setattr(demo, "NEW_AUDIO_SECONDS", 2.0)
    assert len(demo.other_speech(split, out=tmp_path, windows=3)) == 2
    # a training part shorter than the held-out clip: the one stretch it has
    short = demo.Split(target=split.inputs[0], inputs=[split.target], identities=["held"])
    assert [(c, s) for _, c, s in demo.other_speech(short, out=tmp_path, windows=3)] == [("held.mp4", "0.0-1.0 s")]
