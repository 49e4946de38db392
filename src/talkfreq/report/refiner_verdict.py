"""Did the refiner earn its place? One sentence per (stage 1, stage 1 + refiner) pair of an evaluation.

A pair is two candidate rows named ``X`` and ``X+<anything>`` (the demo's and the experiments' naming: ``FREAK`` and
``FREAK+SOVQAE``). The refiner *wins the detail columns* when, against stage 1 alone, its mouth PSNR and mouth SSIM are
not lower, and its mouth HF ratio and mouth spectrum gap are closer to the real clip's; it *keeps the sync* when the AV
offset is the same and LSE-D and LSE-C are within ``sync_tolerance`` (relative) of stage 1's, all scored by the same
expert (the offset rule stands as it is; when it fails where an offset is unsure - ``lse_offset_support`` below
:data:`SURE_OFFSET` - the sentence says so). Where no expert can judge (LSE unavailable, or the expert finds the real
clip itself out of sync), the sync half falls back to the real video's mouth opening, which in a self-reconstruction is
the true timing: the sync is kept when the refined mouth opening peaks at the same lag against the real one
(``mouth_open_lag``) and its ``mouth_open_r`` is within ``sync_tolerance`` (relative) of stage 1's - judged only where
stage 1's r is at least :data:`MIN_OPENING_R` (a mouth that does not follow the real one has no timing to keep). The
rule is ours (it is the acceptance of the restoring refiner); a column that is unavailable makes its half of the
verdict "not measured", never "held".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from talkfreq.report.scoring import Row

DETAIL_KEYS = ("mouth_psnr", "mouth_ssim", "mouth_hf_ratio", "mouth_spectrum_gap")
SYNC_KEYS = ("lse_d", "lse_c", "lse_offset")
OPENING_KEYS = ("mouth_open_r", "mouth_open_lag")
MIN_OPENING_R = 0.3  # stage 1's mouth_open_r below this: its mouth does not follow the real one, nothing to keep
SURE_OFFSET = 0.9  # an offset held in fewer bootstrap resamples (lse_offset_support) is named as uncertain
WORSE_SIGN = {"lse_d": 1.0, "lse_c": -1.0}  # the sign of (refined - stage 1) that means worse sync


def _detail(base: dict, refined: dict, real: dict) -> Optional[list[str]]:
    """Names of the detail checks that failed; None when a needed value is missing."""
    if any(base.get(k) is None or refined.get(k) is None for k in DETAIL_KEYS) or real.get("mouth_hf_ratio") is None:
        return None
    failed = [k for k in ("mouth_psnr", "mouth_ssim") if refined[k] < base[k]]
    if abs(refined["mouth_hf_ratio"] - real["mouth_hf_ratio"]) >= abs(base["mouth_hf_ratio"] - real["mouth_hf_ratio"]):
        failed.append("mouth_hf_ratio")
    if refined["mouth_spectrum_gap"] >= base["mouth_spectrum_gap"]:
        failed.append("mouth_spectrum_gap")
    return failed


def sync_failures(base: dict, refined: dict, tolerance: float, *, worse_only: bool = False) -> Optional[list[str]]:
    """Names of the sync checks that failed; None when the LSE columns are unavailable. ``worse_only``: an LSE-D or
    LSE-C that moved by more than ``tolerance`` fails only in the worse direction (higher LSE-D, lower LSE-C)."""
    if any(base.get(k) is None or refined.get(k) is None for k in SYNC_KEYS):
        return None
    failed = [] if refined["lse_offset"] == base["lse_offset"] else ["lse_offset"]
    for k, sign in WORSE_SIGN.items():
        moved = refined[k] - base[k]
        if abs(moved) > tolerance * abs(base[k]) and (not worse_only or sign * moved > 0):
            failed.append(k)
    return failed


def _offset_doubt(base: dict, refined: dict) -> str:
    """A clause saying how sure the two offsets are, when either is unsure (:data:`SURE_OFFSET`); else ''."""
    sup = [v.get("lse_offset_support") for v in (base, refined)]
    if any(x is None for x in sup) or min(sup) >= SURE_OFFSET:
        return ""
    return (f" - the offsets are uncertain on this clip: stage 1's holds in {sup[0]:.0%} of bootstrap resamples of "
            f"its sync windows, the refined one's in {sup[1]:.0%}")


def _better_sync(base: dict, refined: dict, real: dict, failed: Sequence[str]) -> str:
    """A clause when every failed sync check moved the better way (LSE-D lower, LSE-C higher, the offset nearer the
    real clip's): the rule still fails it, since on its own audio a refiner may score better by redrawing the original
    mouth rather than keeping stage 1's, and the sentence says which way it moved so a reader can tell; else ''."""
    def better(k: str) -> bool:
        if k == "lse_offset":
            return real.get("lse_offset") is not None and (
                abs(refined[k] - real["lse_offset"]) < abs(base[k] - real["lse_offset"]))
        return (refined[k] - base[k]) * WORSE_SIGN[k] < 0
    if not failed or not all(better(k) for k in failed):
        return ""
    moved = [f"{k.upper().replace('_', '-')} {base[k]:.3f} -> {refined[k]:.3f}" for k in WORSE_SIGN]
    moved.append(f"offset {base['lse_offset']:+.0f} -> {refined['lse_offset']:+.0f}")
    return (f"; every change is toward better sync by the expert ({', '.join(moved)}), which on the clip's own audio "
            "may be the refiner redrawing the original mouth: the new-audio check tells")


def _opening_sync(base: dict, refined: dict, tolerance: float) -> Optional[list[str]]:
    """Names of the opening-based sync checks that failed; None when they cannot judge (see the module docstring)."""
    if any(base.get(k) is None or refined.get(k) is None for k in OPENING_KEYS):
        return None
    if base["mouth_open_r"] < MIN_OPENING_R:
        return None
    failed = [] if refined["mouth_open_lag"] == base["mouth_open_lag"] else ["mouth_open_lag"]
    if refined["mouth_open_r"] < base["mouth_open_r"] * (1.0 - tolerance):
        failed.append("mouth_open_r")
    return failed


def refiner_pairs(names) -> list[tuple[str, str]]:
    """(stage 1, stage 1 + refiner) name pairs among ``names``: ``X`` and ``X+<anything>`` (module docstring)."""
    names = list(names)
    return [(n.split("+", 1)[0], n) for n in names if "+" in n and n.split("+", 1)[0] in names]


def refiner_verdicts(rows: Sequence[Row], *, sync_tolerance: float = 0.05,
                     sync_unreliable: Optional[str] = None) -> list[str]:
    """One sentence per stage-1 / refined pair among ``rows`` (the reference row first, as evaluate orders them).
    ``sync_unreliable``: why the LSE columns cannot be trusted (the expert fails on the real clip), if they cannot."""
    real = next((r.values for r in rows if r.role == "reference"), {})
    by_name = {r.name: r for r in rows if r.role == "candidate"}
    out = []
    for base_name, name in refiner_pairs(by_name):
        row = by_name[name]
        detail = _detail(by_name[base_name].values, row.values, real)
        sync = sync_failures(by_name[base_name].values, row.values, sync_tolerance)
        d = "not measured" if detail is None else ("held" if not detail else f"did NOT hold ({', '.join(detail)})")
        rule = f"same AV offset, LSE-D/LSE-C within {sync_tolerance:.0%}"
        if sync_unreliable or sync is None:
            why = f"the LSE columns are unreliable: {sync_unreliable}" if sync_unreliable else "no LSE"
            sync = _opening_sync(by_name[base_name].values, row.values, sync_tolerance)
            rule = (f"{why}; judged by the mouth opening against the real video instead: same mouth open lag, "
                    f"mouth open r within {sync_tolerance:.0%}")
            if sync is None:
                rule += f", which needs stage 1's mouth open r >= {MIN_OPENING_R:g}"
        s = "not measured" if sync is None else ("held" if not sync else f"did NOT hold ({', '.join(sync)})")
        if sync and "lse_offset" in sync:
            s += _offset_doubt(by_name[base_name].values, row.values)
        if sync and not sync_unreliable and all(k in SYNC_KEYS for k in sync):
            s += _better_sync(by_name[base_name].values, row.values, real, sync)
        won = "earned its place" if detail == [] and sync == [] else "did not earn its place"
        out.append(f"Refiner verdict, {name} vs {base_name}: the refiner {won} - detail columns (mouth PSNR/SSIM "
                   f"not lower, mouth HF ratio and spectrum gap closer to real): {d}; lip sync kept ({rule}): {s}.")
    return out


__all__ = ["DETAIL_KEYS", "MIN_OPENING_R", "OPENING_KEYS", "SURE_OFFSET", "SYNC_KEYS", "refiner_pairs",
           "refiner_verdicts", "sync_failures"]
