"""Does the refiner keep stage 1's timing under audio the video never had? The new-audio check.

Every other number of a report dubs the held-out clip with *its own* audio, so the real frame is also the right
answer for the mouth. That cannot tell a refiner that sharpens stage 1's mouth from one that redraws the video's
original mouth - the same picture when the audio is the video's own, and opposite things in a real dub, where the
second undoes the dub. This check dubs the same held-out face with other speech of the same speaker (what a user's
dub is; stretches of it as long as the held-out clip, pooled by :func:`pool`) and scores, with the report's expert:

- **timing kept** (judged): against the stage-1 dub as the reference, the refined dub's mouth opening must follow
  stage 1's (``mouth_open_lag`` 0 and ``mouth_open_r`` >= ``min_open_r``; 0.8 is ours: the real clips' own opening
  shifted by one frame scores r 0.76-0.84, benchmarks/RESULTS.md "mouth-opening measure") - in the stretches where
  stage 1's mouth opens at all (mean opening >= :data:`MIN_STAGE1_OPENING`; a shut mouth has no timing to keep, and
  its r is noise; a refiner that opens a mouth stage 1 keeps shut there is left to the expert and to the pull
  toward the original below) - and, where the expert
  can judge (it found the real clip in sync in the main report, and it finds stage 1 in sync with the new audio:
  offset within :data:`MAX_STAGE1_OFFSET` frames and LSE-C >= :data:`MIN_STAGE1_LSE_C`), the refined dub keeps
  stage 1's AV offset with LSE-D/LSE-C no more than ``tolerance`` worse against the new audio (the rule of
  :mod:`talkfreq.report.refiner_verdict`, one-sided here: the main report's own-audio rule is two-sided because
  a refiner that redraws the original mouth *raises* its own-audio sync, but against speech the video never had
  the original mouth can only lower it, so a better LSE here is the refined mouth reading as more in sync with the
  dub - the demo with a 1200-step FREAK: LSE-C 0.290 -> 0.367 at the same offset);
- **pull toward the original** (reported, not judged): the mouth PSNR and opening r of both dubs against the
  original video's frames, which spoke other words. A refiner that redraws the original mouth raises both far above
  stage 1's; sharpening alone raises the PSNR a little (same person, same texture), so no threshold is set.

The rule and the check are ours (the papers evaluate with each clip's own audio).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from talkfreq.report.common import REFERENCE_NAME
from talkfreq.report.refiner_verdict import SYNC_KEYS, sync_failures

ORIGINAL_KEYS = ("mouth_psnr", "mouth_ssim", "mouth_open_r")
FRAME_KEYS = ("lse_offset", "mouth_open_lag")  # whole frames: pooled by the most frequent, not the mean
# stage 1's LSE-C against the new audio below which the expert finds no sync peak and its offset is noise: audio
# shifted out of the scan scores 0.02-0.03 with the tiny experts (talkfreq.report.sync_scoring); ours, 2x that
MIN_STAGE1_LSE_C = 0.05
# stage 1's offset against the new audio beyond which it is not in sync with it (ours: one frame, 40 ms, is the
# expert's own jitter - the demo's FREAK scores offset 0 with its own audio and -1 with new speech at LSE-C 0.23)
MAX_STAGE1_OFFSET = 1
# stage 1's mean mouth opening (talkfreq.metrics.mouth, dark fraction) in a stretch below which its mouth reads shut
# and the opening rule does not judge that stretch: the synth clips' silent stretches read 0.001-0.005. Ours, after
# May's stage 1 under new speech (0.0000-0.0002 in three stretches, against 0.0065 for the real clip and 0.03 for
# edtalk's stage 1) had its near-constant opening "fail" r >= 0.8 against a refined mouth that reads 0.0004-0.005
MIN_STAGE1_OPENING = 0.005


@dataclass
class NewAudioCheck:
    """The new-audio check of one stage-1 / refined pair (see the module docstring)."""

    audio: str  # where the new speech came from
    # pooled over the stretches of new speech (:func:`pool`):
    stage1: dict[str, Optional[float]]  # the stage-1 dub against the new audio: lse_d, lse_c, lse_offset
    refined: dict[str, Optional[float]]  # the refined dub: the same, + mouth_psnr/ssim/open_r/lag vs the stage-1 dub
    original: dict[str, dict[str, Optional[float]]]  # {"stage1"|"refined": ORIGINAL_KEYS vs the original frames}
    kept: Optional[bool]  # None: nothing could judge
    failed: list[str] = field(default_factory=list)
    verdict: str = ""
    windows: list[dict] = field(default_factory=list)  # per stretch of new speech: its stage1/refined/original

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_timing(stage1: dict, refined: dict, *, expert_unreliable: Optional[str] = None, tolerance: float = 0.05,
                 min_open_r: float = 0.8) -> tuple[Optional[bool], list[str], str]:
    """(kept, failed checks, how it was judged) for the stage-1 and refined dubs' values under the new audio.

    ``refined`` holds the refined dub's LSE against the new audio and its ``mouth_open_r`` / ``mouth_open_lag``
    against the stage-1 dub; ``expert_unreliable`` is why the expert cannot judge at all (from the main report).
    """
    failed: list[str] = []
    how: list[str] = []
    r, lag = refined.get("mouth_open_r"), refined.get("mouth_open_lag")
    judged = r is not None and lag is not None
    if judged:
        how.append(f"mouth opening vs stage 1's: lag 0, r >= {min_open_r:g}")
        failed += [] if lag == 0 else ["mouth_open_lag"]
        failed += [] if r >= min_open_r else ["mouth_open_r"]
    else:
        how.append("mouth opening: not judged (stage 1's mouth shut or flat, or not measured)")
    sync = None if expert_unreliable else sync_failures(stage1, refined, tolerance, worse_only=True)  # None: no LSE
    if expert_unreliable:
        how.append("expert: not judged (it cannot rank lip sync on the real clip)")
    elif sync is None:
        how.append("expert: no LSE")
    elif abs(stage1["lse_offset"]) > MAX_STAGE1_OFFSET or stage1["lse_c"] < MIN_STAGE1_LSE_C:
        how.append(f"expert: not judged (it finds no sync of stage 1 with the new audio: offset "
                   f"{stage1['lse_offset']:+.0f}, LSE-C {stage1['lse_c']:.3f})")
    else:
        how.append(f"expert vs the new audio: same offset, LSE-D/LSE-C no more than {tolerance:.0%} worse")
        failed += sync
        judged = True
    return (not failed if judged else None), failed, "; ".join(how)


def pool(windows: Sequence[dict], keys: Sequence[str]) -> dict[str, Optional[float]]:
    """One value per key over the new-audio stretches' values: the mean, and for an offset or lag (whole frames) the
    most frequent one (a tie goes to the one nearer 0: the expert's jitter is around the true offset). A key that
    no stretch has is None; one that some lack is pooled over the others."""
    pooled: dict[str, Optional[float]] = {}
    for k in keys:
        vals = [float(w[k]) for w in windows if w.get(k) is not None]
        if not vals:
            pooled[k] = None
        elif k in FRAME_KEYS:
            pooled[k] = max(sorted(set(vals), key=lambda v: (abs(v), v)), key=vals.count)
        else:
            pooled[k] = sum(vals) / len(vals)
    return pooled


def new_audio_check(*, audio: str, vs_stage1: Sequence[dict[str, dict]], vs_original: Sequence[dict[str, dict]],
                    expert_unreliable: Optional[str] = None, tolerance: float = 0.05,
                    min_open_r: float = 0.8, name: str = "the refiner") -> NewAudioCheck:
    """Build the check from two evaluations' values per stretch of new speech (``[{row name: values}]``, the
    stretches equally long): ``vs_stage1`` with the stage-1 dub as the reference (row ``refined``: its mouth against
    stage 1's), ``vs_original`` against the original video (rows ``stage1`` and ``refined``: their mouths against
    the original frames, and their LSE against the new audio). The stretches are pooled (:func:`pool`) and the pool
    is judged: more speech than one short held-out clip holds, so that the verdict does not turn on one stretch's
    noise (benchmarks/RESULTS.md "demo").

    The LSE comes from ``vs_original`` only: the expert scores a dub's mouth against its audio, whatever the
    reference, but it crops the mouths with the reference's face boxes, and the original's are the boxes of every
    other report number (on edtalk the stage-1 dub's own boxes moved its LSE-C from 0.051 to 0.070)."""
    mouth = ("mouth_psnr", "mouth_ssim", "mouth_open_r", "mouth_open_lag")  # the refined mouth against stage 1's
    windows = [{"stage1": {**{k: vso["stage1"].get(k) for k in SYNC_KEYS},
                           "mouth_open": vs1.get(REFERENCE_NAME, {}).get("mouth_open")},
                "refined": {**{k: vso["refined"].get(k) for k in SYNC_KEYS},
                            **{k: vs1["refined"].get(k) for k in mouth}},
                "original": {n: {k: vso[n].get(k) for k in ORIGINAL_KEYS} for n in ("stage1", "refined")}}
               for vs1, vso in zip(vs_stage1, vs_original, strict=True)]
    for w in windows:  # a stretch where stage 1's mouth reads shut has no timing for the opening to follow
        if w["stage1"]["mouth_open"] is not None and w["stage1"]["mouth_open"] < MIN_STAGE1_OPENING:
            w["refined"].update(mouth_open_r=None, mouth_open_lag=None)
    s1 = pool([w["stage1"] for w in windows], (*SYNC_KEYS, "mouth_open"))
    ref = pool([w["refined"] for w in windows], (*SYNC_KEYS, *mouth))
    orig = {n: pool([w["original"][n] for w in windows], ORIGINAL_KEYS) for n in ("stage1", "refined")}
    kept, failed, how = judge_timing(s1, ref, expert_unreliable=expert_unreliable, tolerance=tolerance,
                                     min_open_r=min_open_r)
    word = {True: "kept", False: f"NOT kept ({', '.join(failed)})", None: "not judged"}[kept]
    p1, p2 = orig["stage1"]["mouth_psnr"], orig["refined"]["mouth_psnr"]
    pull = (f"; toward the original video's mouth: mouth PSNR {p1:.2f} -> {p2:.2f} dB" if p1 is not None
            and p2 is not None else "")
    # no square brackets: rich's console (talkfreq.demo.say) would read them as markup
    verdict = f"New-audio check ({audio}), {name}: stage 1's timing {word}; judged by {how}{pull}."
    return NewAudioCheck(audio=audio, stage1=s1, refined=ref, original=orig, kept=kept, failed=failed,
                         verdict=verdict, windows=windows)


def not_measured(*, audio: str, why: str, name: str = "the refiner") -> NewAudioCheck:
    """The check when its dubs could not be scored (e.g. no face found in a stage-1 dub of an untrained model)."""
    return NewAudioCheck(audio=audio, stage1={}, refined={}, original={}, kept=None,
                         verdict=f"New-audio check ({audio}), {name}: not measured ({why}).")


__all__ = ["MAX_STAGE1_OFFSET", "MIN_STAGE1_LSE_C", "MIN_STAGE1_OPENING", "NewAudioCheck", "judge_timing",
           "new_audio_check", "not_measured", "pool"]
