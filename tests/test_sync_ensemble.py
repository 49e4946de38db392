"""An ensemble of SyncNet experts (``--syncnet`` repeated, report.sync_scoring.SyncEnsemble): LSE of the mean of the
members' distance matrices, each member's own LSE beside it, and one expert scoring exactly as it does alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkfreq.errors import ConfigError
from talkfreq.face import FaceConfig
from talkfreq.metrics.sync import LSEResult, lse_from_distances, lse_scores, offset_distances
from talkfreq.report.sync_scoring import SyncEnsemble, SyncScorer, ensemble_note, load_sync_scorers

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


def test_ensemble_scores_the_mean_distances_and_each_member_alone(experts):
    face = FaceConfig()
    a, b = (load_sync_scorers(experts[k], face=face, fps=25.0, device="cpu") for k in "ab")
    assert isinstance(a, SyncScorer)
    both = load_sync_scorers([experts["a"], experts["b"]], face=face, fps=25.0, device="cpu")
    assert isinstance(both, SyncEnsemble) and both.kind == "talkfreq"
    crops, wav = _inputs()
    with torch.no_grad():
        lse, own = both.scores_each(_score(both, crops, wav), samples=len(wav))
        dists = [offset_distances(*m.embeddings(_score(m, crops, wav), samples=len(wav))) for m in (a, b)]
    alone = [lse_from_distances(d) for d in dists]
    assert [(r.lse_d, r.lse_c, r.offset) for r in own] == [(r.lse_d, r.lse_c, r.offset) for r in alone]
    assert lse == lse_from_distances((dists[0] + dists[1]) / 2)
    assert lse.lse_d != pytest.approx(alone[0].lse_d)  # two seeds embed differently: the mean is neither member
    # one expert twice is that expert: the ensemble adds no score of its own
    twice = SyncEnsemble([a, a])
    with torch.no_grad():
        assert twice.scores(_score(twice, crops, wav), samples=len(wav)) == alone[0]


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
                          "FREAK+SOVQAE": [r(0.11), r(0.15)]})
    assert note.startswith("LSE from the mean distances of 2 SyncNet experts")
    assert "real 0.200 (+0) / 0.100 (-1)" in note
    assert "FREAK+SOVQAE vs FREAK, LSE-C change by each expert alone: +10.0%, -25.0%." in note
