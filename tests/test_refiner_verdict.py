"""The report's refiner verdict: detail columns won and lip sync kept, or not, and why."""

from __future__ import annotations

from talkfreq.report.refiner_verdict import refiner_verdicts
from talkfreq.report.scoring import Row

REAL = {"mouth_hf_ratio": 0.30, "lse_d": 0.7, "lse_c": 0.4, "lse_offset": 0.0}
BASE = {"mouth_psnr": 25.0, "mouth_ssim": 0.80, "mouth_hf_ratio": 0.10, "mouth_spectrum_gap": 0.5,
        "lse_d": 0.90, "lse_c": 0.20, "lse_offset": 0.0}


def _rows(refined: dict) -> list[Row]:
    return [Row("real", "reference", "r.mp4", REAL), Row("FREAK", "candidate", "f.mp4", BASE),
            Row("FREAK+SOVQAE", "candidate", "fs.mp4", {**BASE, **refined})]


def test_a_refiner_that_sharpens_and_keeps_sync_earns_its_place():
    [v] = refiner_verdicts(_rows({"mouth_psnr": 26.0, "mouth_ssim": 0.82, "mouth_hf_ratio": 0.2,
                                  "mouth_spectrum_gap": 0.4, "lse_d": 0.91, "lse_c": 0.195}))
    assert "FREAK+SOVQAE vs FREAK: the refiner earned its place" in v and "did NOT" not in v


def test_lost_sync_and_lower_mouth_psnr_are_named():
    [v] = refiner_verdicts(_rows({"mouth_psnr": 24.0, "mouth_ssim": 0.82, "mouth_hf_ratio": 0.2,
                                  "mouth_spectrum_gap": 0.4, "lse_c": 0.02, "lse_offset": -12.0}))
    assert "did not earn its place" in v
    assert "did NOT hold (mouth_psnr)" in v and "did NOT hold (lse_offset, lse_c)" in v


def test_unavailable_lse_is_not_measured_and_unpaired_rows_give_no_verdict():
    rows = _rows({"mouth_psnr": 26.0, "lse_d": None})
    [v] = refiner_verdicts(rows)
    assert "no LSE; judged by the mouth opening" in v and v.endswith(": not measured.")
    assert refiner_verdicts(rows[:2]) == []


def test_unreliable_lse_columns_give_no_sync_verdict_without_the_mouth_opening():
    [v] = refiner_verdicts(_rows({"mouth_psnr": 26.0}), sync_unreliable="the expert puts the real clip at offset +3")
    assert "the LSE columns are unreliable: the expert puts the real clip at offset +3" in v
    assert v.endswith(": not measured.") and "did not earn its place" in v


def test_the_real_mouth_opening_judges_sync_when_the_expert_cannot():
    detail = {"mouth_psnr": 26.0, "mouth_ssim": 0.82, "mouth_hf_ratio": 0.2, "mouth_spectrum_gap": 0.4}
    base = {"mouth_open_r": 0.70, "mouth_open_lag": 0.0}
    rows = _rows({**detail, "mouth_open_r": 0.68, "mouth_open_lag": 0.0})
    rows[1].values.update(base)
    [v] = refiner_verdicts(rows, sync_unreliable="offset +15")
    assert "judged by the mouth opening against the real video" in v and "earned its place" in v
    rows[2].values.update(mouth_open_r=0.60, mouth_open_lag=2.0)
    [v] = refiner_verdicts(rows, sync_unreliable="offset +15")
    assert "did NOT hold (mouth_open_lag, mouth_open_r)" in v and "did not earn its place" in v
    rows[1].values.update(mouth_open_r=0.1)  # stage 1's mouth follows nothing: no timing to keep
    [v] = refiner_verdicts(rows, sync_unreliable="offset +15")
    assert "needs stage 1's mouth open r >= 0.3): not measured." in v


def test_a_moved_offset_still_fails_and_says_how_sure_the_offsets_were():
    detail = {"mouth_psnr": 26.0, "mouth_ssim": 0.82, "mouth_hf_ratio": 0.2, "mouth_spectrum_gap": 0.4}
    unsure = _rows({**detail, "lse_offset": -1.0, "lse_offset_support": 0.58})
    unsure[1] = Row("FREAK", "candidate", "f.mp4", {**BASE, "lse_offset_support": 0.61})
    [v] = refiner_verdicts(unsure)
    assert "did not earn its place" in v and "did NOT hold (lse_offset)" in v
    assert "the offsets are uncertain on this clip: stage 1's holds in 61% of bootstrap resamples" in v
    assert "the refined one's in 58%" in v
    sure = _rows({**detail, "lse_offset": -1.0, "lse_offset_support": 0.97})
    sure[1] = Row("FREAK", "candidate", "f.mp4", {**BASE, "lse_offset_support": 0.99})
    [v] = refiner_verdicts(sure)
    assert "did NOT hold (lse_offset)" in v and "uncertain" not in v


def test_own_audio_sync_rule_is_two_sided():
    # a refiner whose own-audio LSE-C jumps may be redrawing the original mouth: better by more than 5 % fails too
    detail = {"mouth_psnr": 26.0, "mouth_ssim": 0.82, "mouth_hf_ratio": 0.2, "mouth_spectrum_gap": 0.4}
    [v] = refiner_verdicts(_rows({**detail, "lse_c": 0.30}))
    assert "did NOT hold (lse_c)" in v and "did not earn its place" in v
    # ... and the sentence says the change was toward better sync, so the failure is not read as lost sync
    assert "every change is toward better sync by the expert (LSE-D 0.900 -> 0.900, LSE-C 0.200 -> 0.300" in v


def test_better_sync_is_named_only_when_every_failed_check_moved_the_better_way():
    detail = {"mouth_psnr": 26.0, "mouth_ssim": 0.82, "mouth_hf_ratio": 0.2, "mouth_spectrum_gap": 0.4}
    rows = _rows({**detail, "lse_c": 0.30, "lse_offset": 0.0})
    rows[1].values.update(lse_offset=-1.0)  # stage 1 a frame off the real clip's 0; the refined video at 0
    [v] = refiner_verdicts(rows)
    assert "did NOT hold (lse_offset, lse_c)" in v and "offset -1 -> +0)" in v
    [v] = refiner_verdicts(_rows({**detail, "lse_c": 0.30, "lse_offset": 1.0}))  # offset moved away from real
    assert "did NOT hold (lse_offset, lse_c)" in v and "toward better sync" not in v
    [v] = refiner_verdicts(_rows({**detail, "lse_c": 0.15}))  # lost confidence: plainly worse
    assert "did NOT hold (lse_c)" in v and "toward better sync" not in v
