"""`talkfreq refine`: frames, fps and audio kept, pixels outside the face untouched, face-less frames passed
through, temporal smoothing measured, bad input refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from talkfreq.cli import main
from talkfreq.data.prepared import PreparedDataset
from talkfreq.data.refiner_data import resize_uint8, uint8_to_tensor
from talkfreq.face.crop import crop_to_frame_affine
from talkfreq.io import VideoReader, VideoWriter, load_audio, probe
from talkfreq.metrics.robustness import temporal_flip_rate
from talkfreq.metrics.temporal import temporal_flicker
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig
from talkfreq.pipeline.paste import feather_mask
from talkfreq.pipeline.refine import refine_sequence

torch.set_num_threads(1)

SIZE = 32  # the refiner's crop size


@pytest.fixture(scope="module")
def clip_video(synth_dir) -> Path:
    return synth_dir / "id00" / "id00_c00.mp4"  # 128 px, 2 s, 50 frames, with audio


@pytest.fixture(scope="module")
def prepared(synth_dir, tmp_path_factory) -> PreparedDataset:
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("refine_prepared")
    prepare_dataset([synth_dir], out=out, cfg=load_config(PrepareConfig, None, ["face.crop_size=64"]),
                    show_progress=False)
    return PreparedDataset(out)


@pytest.fixture(scope="module")
def model_dir(prepared, tmp_path_factory) -> Path:
    """An untrained tiny SOVQAE whose codebook is k-means-initialised on face crops (refine does not care how good
    it is; the codes just have to mean something for the flip-rate check)."""
    torch.manual_seed(0)
    model = SOVQAE(config=SOVQAEConfig(image_size=SIZE, base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1,
                                       attention=False, latent_dim=16, codebook_size=64))
    clip = prepared.clip(prepared.ids()[0])
    model.train()
    model(uint8_to_tensor(np.stack([resize_uint8(np.asarray(clip.frames[i]), SIZE) for i in range(0, 50, 3)])))
    out = tmp_path_factory.mktemp("refiner_model") / "model"
    model.eval().save_pretrained(out)
    return out


def decode(path: Path) -> np.ndarray:
    return np.stack(list(VideoReader(path, fps=None)))


def outside_mask(boxes: np.ndarray, valid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool: pixels the pasted mask cannot touch on each frame."""
    mask = feather_mask(SIZE, region="face")
    out = np.ones((len(boxes), *shape), bool)
    for i, (box, ok) in enumerate(zip(boxes, valid)):
        if ok:
            warped = cv2.warpAffine(mask, crop_to_frame_affine(box, size=SIZE), (shape[1], shape[0]),
                                    flags=cv2.INTER_LINEAR, borderValue=0.0)
            out[i] = warped == 0
    return out


def test_refine_keeps_frames_fps_audio_and_pixels_outside_the_face(clip_video, prepared, model_dir, tmp_path,
                                                                   capsys):
    clip_dir = prepared.root / "clips" / "id00_id00_c00"
    out = tmp_path / "refined.mp4"
    rc = main(["refine", str(clip_video), "--refiner", str(model_dir), "--out", str(out), "--batch", "8",
               "--boxes-from", str(clip_dir), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "50 refined" in text and "0 without a face" in text
    src, res = probe(clip_video), probe(out)
    a, b = decode(clip_video), decode(out)
    assert abs(len(a) - len(b)) <= 1 and res.fps == pytest.approx(src.fps)
    assert res.has_audio
    dur_a = len(load_audio(clip_video)) / 16000
    dur_b = len(load_audio(out)) / 16000
    assert abs(dur_a - dur_b) <= 1 / src.fps
    n = min(len(a), len(b))
    boxes = np.load(clip_dir / "boxes.npy")
    outside = outside_mask(boxes[:n], np.ones(n, bool), a.shape[1:3])
    diff = a[:n].astype(np.float64) - b[:n].astype(np.float64)
    psnr_out = 10 * np.log10(255**2 / np.mean(diff[outside] ** 2))
    assert psnr_out > 40.0, psnr_out  # only codec noise outside the mask (measured ~42 dB at crf 18, 128 px)
    assert np.abs(diff[~outside]).mean() > 3.0  # ... while the face was really replaced


def test_frames_without_a_face_pass_through_and_are_counted(clip_video, model_dir, tmp_path, capsys):
    frames = decode(clip_video)
    frames[20:35] = 128  # 15 grey frames: no face for 0.6 s (longer than refine's max_gap_seconds of 0.2)
    video = tmp_path / "gap.mp4"
    with VideoWriter(video, fps=25, width=frames.shape[2], height=frames.shape[1],
                     audio=load_audio(clip_video), sample_rate=16000) as w:
        for f in frames:
            w.write(f)
    out = tmp_path / "gap_refined.mp4"
    assert main(["refine", str(video), "--refiner", str(model_dir), "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "15 without a face" in text and "35 refined" in text
    src, res = decode(video), decode(out)
    assert len(res) == len(src)
    assert np.abs(res[20:35].astype(int) - src[20:35].astype(int)).mean() < 1.0  # unchanged up to the codec


def test_temporal_smoothing_reduces_code_flips_and_flicker(prepared, model_dir):
    """The benchmark in miniature (benchmarks/refiner_temporal.py trains a model first). Untrained tiny model on a
    synth clip, measured: alpha 0 -> flip rate 0.11, flicker 0.024; alpha 0.5 -> 0.06 and 0.013."""
    model = SOVQAE.from_pretrained(model_dir).eval()
    clip = prepared.clip(prepared.ids()[0])
    crops = np.stack([resize_uint8(np.asarray(f), SIZE) for f in clip.frames])
    plain, idx0 = refine_sequence(model, crops, alpha=0.0, batch_size=8)
    smooth, idx1 = refine_sequence(model, crops, alpha=0.5, batch_size=8)
    flips0, flips1 = temporal_flip_rate(idx0), temporal_flip_rate(idx1)
    flicker0, flicker1 = temporal_flicker(plain), temporal_flicker(smooth)
    assert flips1 < 0.8 * flips0, (flips0, flips1)
    assert flicker1 < 0.8 * flicker0, (flicker0, flicker1)
    # batching does not change the result: the smoother carries its state across batches
    again, idx2 = refine_sequence(model, crops, alpha=0.5, batch_size=50)
    assert torch.equal(idx1, idx2) and np.abs(again.astype(int) - smooth.astype(int)).max() <= 1


def test_bad_input_is_one_line_and_leaves_no_output(clip_video, model_dir, tmp_path, capsys):
    out = tmp_path / "o.mp4"

    def run(*args: str) -> str:
        assert main(["refine", *args, "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("talkfreq: error:")
        assert not out.exists() and not list(tmp_path.glob(".o.tmp-*"))
        return err

    assert "not found" in run(str(tmp_path / "missing.mp4"), "--refiner", str(model_dir), "--out", str(out))
    # a stage-1 model folder, and a stage-1 Lightning checkpoint
    from talkfreq.models.discriminator import PatchDiscriminator  # any non-refiner model in the shared format

    other = tmp_path / "stage1_model"
    PatchDiscriminator().save_pretrained(other)
    assert "not SOVQAE" in run(str(clip_video), "--refiner", str(other), "--out", str(out))
    ckpt = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": {"generator.w": torch.zeros(1)}, "hyper_parameters": {"model": "freak"}}, ckpt)
    assert "stage-1 freak" in run(str(clip_video), "--refiner", str(ckpt), "--out", str(out))
    bad_out = tmp_path / "no_such_folder" / "o.mp4"
    assert "does not exist" in run(str(clip_video), "--refiner", str(model_dir), "--out", str(bad_out))
    assert not bad_out.exists()


def test_model_default_smoothing_is_used(clip_video, model_dir, tmp_path, capsys):
    (model_dir / "inference.json").write_text(json.dumps({"latent_smoothing": 0.4}))
    try:
        out = tmp_path / "s.mp4"
        assert main(["refine", str(clip_video), "--refiner", str(model_dir), "--out", str(out), "-q",
                     "region=lower"]) == 0
        assert "smoothing alpha 0.4" in capsys.readouterr().out
    finally:
        (model_dir / "inference.json").unlink()


@pytest.mark.heavy
def test_refine_a_shared_real_video_keeps_duration_fps_audio_and_outside_pixels(model_dir, tmp_path, capsys):
    """Issue 4's acceptance on real media: a 512 px, 25 fps clip with 48 kHz stereo AAC (boxes from its prepared
    clip, so the mask the test checks is exactly the one refine pasted through)."""
    from conftest import media
    from talkfreq.config import load_config
    from talkfreq.data.prepare import PrepareConfig, prepare_dataset

    video = media("video/real3dportrait_May_5s.mp4")
    prep = tmp_path / "prep"
    prepare_dataset([video], out=prep, cfg=load_config(PrepareConfig, None, [f"face.crop_size={SIZE}"]),
                    show_progress=False)
    clip_dir = prep / "clips" / "real3dportrait_May_5s"
    out = tmp_path / "may_refined.mp4"
    assert main(["refine", str(video), "--refiner", str(model_dir), "--out", str(out), "--boxes-from",
                 str(clip_dir), "-q"]) == 0
    src, res = probe(video), probe(out)
    assert res.fps == pytest.approx(25.0) and abs(res.duration - src.duration) <= 1 / 25
    assert res.has_audio and abs(len(load_audio(out)) - len(load_audio(video))) <= 16000 / 25
    a, b = decode(video), decode(out)
    assert abs(len(a) - len(b)) <= 1
    n = min(len(a), len(b))
    outside = outside_mask(np.load(clip_dir / "boxes.npy")[:n], np.load(clip_dir / "valid.npy")[:n], a.shape[1:3])
    diff = a[:n].astype(np.float64) - b[:n].astype(np.float64)
    assert 10 * np.log10(255**2 / np.mean(diff[outside] ** 2)) > 40.0
