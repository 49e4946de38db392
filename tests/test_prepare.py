"""`talkfreq prepare`: real media acceptance, synth data, resume/atomicity/shards/workers, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import media
from talkfreq.config import load_config
from talkfreq.data.prepare import PrepareConfig, discover, parse_shard, prepare_dataset
from talkfreq.data.prepared import PreparedDataset
from talkfreq.errors import TalkfreqError
from talkfreq.io import VideoWriter


def cfg(**over) -> PrepareConfig:
    return load_config(PrepareConfig, None, [f"{k}={v}" for k, v in over.items()])


@pytest.mark.heavy
def test_katiehill_acceptance(tmp_path):
    res = prepare_dataset([media("video/sadtalker_WDA_KatieHill_000.mp4")], out=tmp_path / "o",
                          cfg=cfg(**{"face.crop_size": 256}), show_progress=False)
    ds = PreparedDataset(tmp_path / "o")
    clip = ds.clip(ds.ids()[0])
    assert res.prepared[0].n_frames == 200 and clip.frames.shape == (200, 256, 256, 3)
    assert clip.mel.shape == (80, 641)
    assert clip.face_found.all() and clip.valid.all()
    assert clip.audio.shape == (128000,)
    # the crops hold the face: the detector finds it again inside them
    from talkfreq.face import HaarDetector

    det = HaarDetector()
    assert sum(len(det.detect(np.asarray(clip.frames[i]))) > 0 for i in range(0, 200, 20)) >= 9


@pytest.mark.heavy
@pytest.mark.parametrize("rel", ["video/videoretalking_face1_vfr.mp4", "video/videoretalking_face4.mp4"])
def test_vfr_and_30fps_come_out_at_25fps(tmp_path, rel):
    from talkfreq.io import probe

    path = media(rel)
    info = probe(path)
    prepare_dataset([path], out=tmp_path / "o", cfg=cfg(**{"face.crop_size": 96}), show_progress=False)
    ds = PreparedDataset(tmp_path / "o")
    m = ds.metas[0]
    assert m.fps == 25.0
    assert abs(m.n_frames - (info.duration - info.video_start) * 25) <= 1
    assert abs(m.audio_samples / 16000 - m.n_frames / 25) <= 1 / 25
    assert m.mel_frames == 1 + m.audio_samples // 200
    assert m.face_found / m.n_frames > 0.9


def test_synth_prepare_index_and_layout(synth_dir, tmp_path):
    out = tmp_path / "p"
    res = prepare_dataset([synth_dir], out=out, cfg=cfg(**{"face.crop_size": 96}), show_progress=False)
    ds = PreparedDataset(out)
    assert len(ds) == 2 and len(res.prepared) == 2 and ds.identities() == ["id00", "id01"]
    for cid in ds.ids():
        c = ds.clip(cid)
        assert c.frames.shape == (50, 96, 96, 3) and c.mel.shape == (80, 161)
        assert c.boxes.shape == (50, 4) and c.face_found.mean() > 0.95
        assert np.isfinite(c.boxes).all()
    assert (out / "prepare.yaml").is_file()


def test_resume_skips_finished_and_cleans_partials(synth_dir, tmp_path):
    out = tmp_path / "p"
    c = cfg(**{"face.crop_size": 64})
    prepare_dataset([synth_dir], out=out, cfg=c, show_progress=False)
    victim = sorted((out / "clips").iterdir())[0]
    shutil.rmtree(victim)
    (out / "clips" / f".partial-{victim.name}-99999").mkdir()  # what a killed run leaves
    res = prepare_dataset([synth_dir], out=out, cfg=c, show_progress=False)
    assert [m.clip_id for m in res.prepared] == [victim.name] and len(res.skipped) == 1
    assert not list((out / "clips").glob(".partial-*"))
    assert len(json.loads((out / "index.json").read_text())) == 2


def test_shards_split_the_clip_list(synth_dir, tmp_path):
    out = tmp_path / "p"
    c = cfg(**{"face.crop_size": 64})
    a = prepare_dataset([synth_dir], out=out, cfg=c, shard="0/2", show_progress=False)
    b = prepare_dataset([synth_dir], out=out, cfg=c, shard="1/2", show_progress=False)
    assert len(a.prepared) == len(b.prepared) == 1
    assert {m.clip_id for m in a.prepared} != {m.clip_id for m in b.prepared}
    assert len(PreparedDataset(out)) == 2
    with pytest.raises(TalkfreqError, match="shard"):
        parse_shard("2/2")


@pytest.mark.heavy
def test_workers(synth_dir, tmp_path):
    res = prepare_dataset([synth_dir], out=tmp_path / "p", cfg=cfg(workers=2, **{"face.crop_size": 64}),
                          show_progress=False)
    assert len(res.prepared) == 2 and not res.failed


def test_discover_identities(tmp_path):
    (tmp_path / "hftk" / "alice").mkdir(parents=True)
    (tmp_path / "hftk" / "alice" / "c1.mp4").write_bytes(b"")
    (tmp_path / "hftk" / "flat.mp4").write_bytes(b"")
    srcs = discover([tmp_path / "hftk"])
    assert [(s.identity, s.clip_id) for s in srcs] == [("alice", "alice_c1"), ("flat", "flat")]


# ---- bad input: one line naming the file, nothing left behind ---------------------------------------------------

def _silent_video(path, n=10, size=64):
    with VideoWriter(path, fps=25, width=size, height=size) as w:
        for _ in range(n):
            w.write(np.zeros((size, size, 3), np.uint8))


def _expect(tmp_path, inputs, match):
    out = tmp_path / "out"
    with pytest.raises(TalkfreqError) as e:
        prepare_dataset(inputs, out=out, cfg=cfg(), show_progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert match in msg, msg
    assert not out.exists(), f"output left behind: {list(out.rglob('*'))}"
    return msg


def test_bad_missing_file(tmp_path):
    _expect(tmp_path, [tmp_path / "nope.mp4"], "nope.mp4: input not found")


def test_bad_not_a_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 500)
    _expect(tmp_path, [junk], "junk.mp4: not a video or audio file")
    wav = media("audio/edtalk_mouth_source.wav")
    _expect(tmp_path, [wav], "edtalk_mouth_source.wav: not a video")


def test_bad_no_audio_track(tmp_path):
    v = tmp_path / "mute.mp4"
    _silent_video(v)
    _expect(tmp_path, [v], "mute.mp4: video has no audio track")


def test_bad_no_face_anywhere(tmp_path):
    v = tmp_path / "wall.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(v, fps=25, width=96, height=96, audio=rng.normal(0, 0.1, 16000).astype(np.float32)) as w:
        for _ in range(25):
            w.write(np.full((96, 96, 3), 128, np.uint8))
    _expect(tmp_path, [v], "wall.mp4: no face found in any frame")


def test_bad_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TalkfreqError, match="output folder cannot be written"):
        prepare_dataset([media("video/real3dportrait_May_5s.mp4")], out=blocker / "sub", cfg=cfg(),
                        show_progress=False)


def test_one_bad_clip_among_many_is_reported_not_fatal(synth_dir, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(synth_dir, folder)
    (folder / "id00" / "broken.mp4").write_bytes(b"nothing")
    res = prepare_dataset([folder], out=tmp_path / "p", cfg=cfg(**{"face.crop_size": 64}), show_progress=False)
    assert len(res.prepared) == 2 and len(res.failed) == 1 and "broken.mp4" in res.failed[0][1]
    assert not list((tmp_path / "p" / "clips").glob(".partial-*"))


def test_missing_speech_model_fails_up_front(synth_dir, tmp_path):
    with pytest.raises(TalkfreqError, match="not found"):
        prepare_dataset([synth_dir], out=tmp_path / "p",
                        cfg=cfg(**{"speech.enabled": True, "speech.model": str(tmp_path / "nomodel")}),
                        show_progress=False)
    assert not (tmp_path / "p").exists()
