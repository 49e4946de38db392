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
