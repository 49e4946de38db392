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
    assert "lip sync kept (same AV offset, LSE-D/LSE-C within 5%): not measured" in v
    assert refiner_verdicts(rows[:2]) == []


def test_unreliable_lse_columns_give_no_sync_verdict():
    [v] = refiner_verdicts(_rows({"mouth_psnr": 26.0}), sync_unreliable="the expert puts the real clip at offset +3")
    assert "not measured (the LSE columns are unreliable: the expert puts the real clip at offset +3)" in v
    assert "did not earn its place" in v
