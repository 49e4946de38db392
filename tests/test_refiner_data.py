"""Refiner data: ``data.frame_range`` keeps every frame outside the range out of both splits."""

from __future__ import annotations

import pytest

from talkfreq.data.datasets import split_segments
from talkfreq.data.prepared import PreparedDataset
from talkfreq.data.refiner_data import RefinerDataConfig, RefinerDataModule, split_frames
from talkfreq.errors import ConfigError


def test_frame_range_cuts_train_and_val_inside_the_range(prepared_dir):
    data = PreparedDataset(prepared_dir)  # 2 clips x 50 frames, all in the train split -> the hold-out cut applies
    cfg = RefinerDataConfig(root=str(prepared_dir), val_fraction=0.2, frame_range=[5, 35])
    train, val, fell_back = split_frames(data, cfg)
    assert fell_back
    assert sorted(train) == sorted((m.clip_id, 5, 29) for m in data.metas)  # 30 frames: 24 train, last 6 val
    assert sorted(val) == sorted((m.clip_id, 29, 35) for m in data.metas)
    dm = RefinerDataModule(cfg, image_size=32)
    used = set(dm.train_set.starts.tolist()) | set(dm.val_set.starts.tolist())
    assert min(used) == 5 and max(used) == 34  # the held-out tail 35..49 is never read


def test_frame_range_open_stop_and_no_range_are_the_plain_split(prepared_dir):
    data = PreparedDataset(prepared_dir)
    plain = split_segments(data, holdout_fraction=0.1, min_frames=1)
    assert split_frames(data, RefinerDataConfig(root=str(prepared_dir))) == plain
    assert split_frames(data, RefinerDataConfig(root=str(prepared_dir), frame_range=[0, None])) == plain


@pytest.mark.parametrize("bad", [[10, 10], [-1, 5], [3]])
def test_frame_range_validation(prepared_dir, bad):
    with pytest.raises(ConfigError, match="frame_range"):
        split_frames(PreparedDataset(prepared_dir), RefinerDataConfig(root=str(prepared_dir), frame_range=bad))
