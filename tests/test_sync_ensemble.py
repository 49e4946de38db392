"""An ensemble of SyncNet experts (``--syncnet`` repeated, report.sync_scoring.SyncEnsemble): LSE of the mean of the
distance matrices of the members that find the real clip in sync, each member's own LSE beside it, and one expert
scoring exactly as it does alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkfreq.errors import ConfigError
from talkfreq.face import FaceConfig
from talkfreq.metrics.sync import LSEResult, lse_from_distances, lse_scores, offset_distances
from talkfreq.report.sync_scoring import SyncEnsemble, SyncScorer, ensemble_lse, ensemble_note, load_sync_scorers

FRAMES = 20


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    from talkfreq.models import SyncNet

    d = tmp_path_factory.mktemp("experts")
    for seed, size in ((0, 48), (1, 48), (2, 64)):
        torch.manual_seed(seed)
        SyncNet(config={"image_size": size, "width": 32}).save_pretrained(d / f"e{seed}_{size}")
    return {"a": d / "e0_48", "b": d / "e1_48", "wide": d / "e2_64"}


def _score(scorer, crops, wav):
    stream = scorer.stream(wav, fps=25.0, batch_size=8, device="cpu")
    stream.add(crops)
    return stream


def _inputs():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (FRAMES, 48, 48, 3), dtype=np.uint8), rng.standard_normal(FRAMES * 640) * 0.1


def test_ensemble_scores_the_mean_distances_and_one_expert_twice_is_that_expert(experts):
    face = FaceConfig()
    a, b = (load_sync_scorers(experts[k], face=face, fps=25.0, device="cpu") for k in "ab")
    assert isinstance(a, SyncScorer)
    both = load_sync_scorers([experts["a"], experts["b"]], face=face, fps=25.0, device="cpu")
    assert isinstance(both, SyncEnsemble) and both.kind == "talkfreq"
    crops, wav = _inputs()
    with torch.no_grad():
        lse = both.scores(_score(both, crops, wav), samples=len(wav))
        each = both.distances(_score(both, crops, wav), samples=len(wav))
        dists = [offset_distances(*m.embeddings(_score(m, crops, wav), samples=len(wav))) for m in (a, b)]
    assert all(torch.equal(x, y) for x, y in zip(each, dists))  # each member embeds the ensemble's crops as alone
    assert lse == lse_from_distances((dists[0] + dists[1]) / 2)
    assert lse.lse_d != pytest.approx(lse_from_distances(dists[0]).lse_d)  # two seeds: the mean is neither member
    twice = SyncEnsemble([a, a])
    with torch.no_grad():
        assert twice.scores(_score(twice, crops, wav), samples=len(wav)) == a.scores(_score(a, crops, wav),
                                                                                     samples=len(wav))


def _dip(at: int, *, windows: int = 30, vshift: int = 15, depth: float = 0.5) -> torch.Tensor:
    """(windows, 2 vshift + 1) distances with one dip: the expert finds offset ``at`` (vshift - index)."""
    d = torch.ones(windows, 2 * vshift + 1)
    d[:, vshift - at] -= depth
    return d


def test_ensemble_lse_leaves_out_experts_that_fail_on_the_real_clip():
    dists = {"real": [_dip(0), _dip(0, depth=0.05), _dip(-3)], "FREAK": [_dip(1), _dip(0), _dip(-6)],
             "FREAK+SOVQAE": [_dip(1), _dip(0), _dip(-2)]}
    lse, note = ensemble_lse(dists, reference="real")
    for n, d in dists.items():  # the third expert puts the real clip at -3; the second's shallow dip is at 0: it scores
        assert lse[n] == lse_from_distances((d[0] + d[1]) / 2)
    assert lse["real"].offset == 0 and lse["FREAK"].offset in (0, 1)
    assert note.startswith("LSE from the mean distances of 2 of 3 SyncNet experts (not scoring, as they find the "
                           "real clip at another offset: expert 3: offset -3, LSE-C 0.500)")
    # none finds the real clip in sync: all score (and the report flags the columns by the ensemble's real row)
    flat = {n: [_dip(-3), _dip(4)] for n in ("real", "FREAK")}
    lse, note = ensemble_lse(flat, reference="real")
    assert lse["real"] == lse_from_distances((flat["real"][0] + flat["real"][1]) / 2)
    assert "2 of 2 SyncNet experts (none finds the real clip at offset 0 alone: all score)" in note


def test_ensemble_refuses_experts_of_other_crops(experts):
    with pytest.raises(ConfigError, match="one kind and crop size"):
        load_sync_scorers([experts["a"], experts["wide"]], face=FaceConfig(), fps=25.0, device="cpu")
    with pytest.raises(ConfigError, match="give syncnet too"):
        from talkfreq.report.evaluate import EvalConfig, _load_models

        _load_models(EvalConfig(syncnet_ensemble=[str(experts["a"])]), "cpu")


def test_lse_from_distances_is_lse_scores():
    g = torch.Generator().manual_seed(0)
    audio, video = torch.randn(30, 8, generator=g), torch.randn(30, 8, generator=g)
    assert lse_from_distances(offset_distances(audio, video, vshift=4)) == lse_scores(audio, video, vshift=4)
    with pytest.raises(ValueError, match="2 vshift"):
        lse_from_distances(torch.zeros(5, 4))


def test_ensemble_note_gives_each_experts_change_of_each_pair():
    r = lambda c, o=0: LSEResult(lse_d=1.0, lse_c=c, offset=o)  # noqa: E731
    note = ensemble_note({"real": [r(0.2), r(0.1, -1)], "FREAK": [r(0.10), r(0.20)],
                          "FREAK+SOVQAE": [r(0.11), r(0.15)]}, keep=[0], reference="real")
    assert note.startswith("LSE from the mean distances of 1 of 2 SyncNet experts (not scoring, as they find the "
                           "real clip at another offset: expert 2: offset -1, LSE-C 0.100)")
    assert "real 0.200 (+0) / 0.100 (-1)" in note
    assert "FREAK+SOVQAE vs FREAK, LSE-C change by each expert alone: +10.0%, -25.0%." in note
