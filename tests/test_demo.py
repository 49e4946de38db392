"""`talkfreq demo --quick`: the main job wired end to end (synth → prepare → 3 trainings → infer → evaluate)."""

from __future__ import annotations

import json

import pytest

from talkfreq.cli import main


@pytest.mark.heavy
def test_quick_demo_writes_report_and_side_by_side(tmp_path):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--quick", "-q", "synth.seconds=2.0", "synth.clips_per_identity=2"])
    assert rc == 0
    report = out / "report"
    assert (report / "report.html").is_file() and (report / "compare.mp4").is_file()
    names = [row["name"] for row in json.loads((report / "metrics.json").read_text())["rows"]]
    assert names[0] == "real" and {"FREAK", "FREAK+SOVQAE"} <= set(names)
    # the held-out clip was never prepared (so never trained on)
    held = list((out / "heldout").glob("*.mp4"))
    assert len(held) == 1 and held[0].stem not in (out / "prepared" / "index.json").read_text()
    # the new-audio check: the same face dubbed with the speaker's training speech, judged against stage 1's dub
    check = json.loads((out / "new_audio" / "freak.json").read_text())
    assert check["kept"] in (True, False, None)
    assert check["verdict"].startswith("New-audio check (id00_c00.mp4 0.0-2.0 s)")  # its one training clip
    assert set(check["original"]) == {"stage1", "refined"} and "lse_offset" in check["stage1"]
    # its LSE is scored once, against the original's face boxes (as every other report number)
    vso = {r["name"]: r["metrics"] for r in json.loads((out / "new_audio" / "freak_vs_original" / "metrics.json")
                                                       .read_text())["rows"]}
    assert check["windows"][0]["refined"]["lse_c"] == vso["refined_0"]["lse_c"]
    assert check["windows"][0]["stage1"]["lse_d"] == vso["stage1_0"]["lse_d"]
    assert "New-audio check (id00_c00.mp4" in (report / "report.html").read_text()  # next to the table


@pytest.mark.heavy
def test_demo_within_a_budget_fits_freak_and_refiner_steps_to_it(tmp_path):
    from talkfreq.training.budget import MIN_STEPS

    out = tmp_path / "demo"
    small = ["-q", "synth.seconds=2.0", "synth.clips_per_identity=2", "synth.identities=1", "new_audio=false"]
    few = "[trainer.max_steps=4, trainer.val_check_interval=4, run.checkpoint_every_n_steps=4]"
    scorer = f"{{syncnet: {few}, guide: {few}}}"  # the experts keep their steps outside the budget
    # 0.6 s: less than any probe takes, so each network gets the minimum
    assert main(["demo", "--out", str(out), *small, "minutes=0.01", f"overrides={scorer}"]) == 0
    plan = json.loads((out / "runs" / "budget.json").read_text())
    assert {n: v["steps"] for n, v in plan["networks"].items()} == {"freak": MIN_STEPS, "refiner": MIN_STEPS}
    assert plan["used_seconds"] > 0 and all(v["seconds_per_step"] > 0 for v in plan["networks"].values())
    for net in ("freak", "refiner"):
        finished = json.loads((out / "runs" / net / "finished.json").read_text())
        assert f"max_steps: {MIN_STEPS}\n" in finished["config"]
    # the configs' own steps were not reached: the report says so, and how long a budget would reach them
    assert all(v["nominal_steps"] > MIN_STEPS for v in plan["networks"].values())
    html = (out / "report" / "report.html").read_text()
    assert f"freak {MIN_STEPS} of {plan['networks']['freak']['nominal_steps']}" in html
    assert "min would train them all" in html
    # one or the other, refused before any synthesis
    assert main(["demo", "--out", str(tmp_path / "both"), *small, "minutes=1", "steps=3"]) != 0
    assert not (tmp_path / "both").exists()
