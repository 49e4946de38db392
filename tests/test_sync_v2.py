"""LSE with the original syncnet_v2 weights: the MFCC front end against the reference library, the crop against
run_pipeline.py's code, and the +-15 offset scan end to end through ``lse_syncnet_v2`` and ``talkfreq evaluate``
with a randomly initialised syncnet_v2 saved to disk like the published ``syncnet_v2.model``.

A random network says nothing about lip sync; these tests check shapes, alignment, window counts and wiring. The
published weights are not downloaded (none are, at run time or in tests).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import rewrite_video
from talkfreq.audio.mfcc import MFCC_WINDOW, syncnet_mfcc
from talkfreq.cli import main
from talkfreq.errors import TalkfreqError
from talkfreq.face import FaceConfig
from talkfreq.face.track import square_boxes
from talkfreq.io import VideoReader, load_audio, load_video_audio
from talkfreq.metrics.sync import lse_scores
from talkfreq.metrics.sync_v2 import (
    crop_syncnet_v2,
    face_boxes_from_crop_boxes,
    lse_syncnet_v2,
    syncnet_v2_boxes,
    syncnet_v2_embedder,
    syncnet_v2_stream,
    syncnet_v2_windows,
)
from talkfreq.models import SyncNetV2
from talkfreq.report.evaluate import EvalConfig, evaluate

FRAMES = 30  # 1.2 s of synth video: 24 syncnet_v2 windows, enough for the +-15 scan


@pytest.fixture(scope="module")
def v2_weights(tmp_path_factory) -> Path:
    """A randomly initialised syncnet_v2 saved like the published file (plain state dict, legacy format, no
    num_batches_tracked buffers), with non-trivial BatchNorm statistics so eval mode is exercised."""
    torch.manual_seed(0)
    model = SyncNetV2()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("v2") / "syncnet_v2.model"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def v2_model(v2_weights) -> SyncNetV2:
    return SyncNetV2.load_original(v2_weights)


# ------------------------------------------------------------------------------------------------ MFCC front end
def _speech_like(seconds: float, rng) -> np.ndarray:
    """A sine chord with a syllable-rate envelope plus white noise, as int16 samples at 16 kHz."""
    t = np.arange(int(16000 * seconds)) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x = env * (0.25 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)) + 0.03 * rng.standard_normal(
        t.size)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def test_mfcc_front_end_matches_syncnet_python(tmp_path):
    """The audio path of SyncNetInstance.evaluate (wavfile.read int16 -> python_speech_features.mfcc -> zip(*) ->
    stack), against talkfreq's (PyAV float audio -> syncnet_mfcc), on a sine/noise signal and on pure noise."""
    from python_speech_features import mfcc
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    for name, samples in (("chord", _speech_like(1.37, rng)),
                          ("noise", (rng.standard_normal(16000) * 3000).astype(np.int16))):
        path = tmp_path / f"{name}.wav"
        wavfile.write(path, 16000, samples)
        sample_rate, audio = wavfile.read(path)
        ref = np.stack([np.array(i) for i in zip(*mfcc(audio, sample_rate))])  # the original's lines
        ours = syncnet_mfcc(load_audio(path, sample_rate=16000))
        assert ours.shape == ref.shape == (13, 1 + math.ceil((len(samples) - 400) / 160)), name
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4, err_msg=name)

    # Coefficient 0 is the log frame energy of the int16-scaled signal: the [-1, 1] -> int16 scale is not lost.
    x = samples.astype(np.float64)
    frame = np.append(x[0], x[1:] - 0.97 * x[:-1])[:400]
    energy = np.sum(np.abs(np.fft.rfft(frame, 512)) ** 2) / 512
    assert syncnet_mfcc(samples / 32768.0)[0, 0] == pytest.approx(np.log(energy), rel=1e-5)
    with pytest.raises(ValueError, match="16000 Hz"):
        syncnet_mfcc(samples / 32768.0, sample_rate=22050)


def test_mfcc_windows_are_the_originals():
    """Video frame i's window is MFCC columns 4 i .. 4 i + 19 (cct[:, :, :, vframe*4 : vframe*4+20])."""
    from talkfreq.audio.mel import mel_window

    feats = np.arange(13 * 120, dtype=np.float32).reshape(13, 120)
    for i in (0, 1, 7, 25):
        np.testing.assert_array_equal(mel_window(feats, i, fps=25, cfg=MFCC_WINDOW), feats[:, 4 * i:4 * i + 20])


# ------------------------------------------------------------------------------------------------ crop
def _run_pipeline_crop(image: np.ndarray, box, cs: float = 0.4) -> np.ndarray:
    """run_pipeline.py crop_video for one frame and one (unsmoothed) detection, verbatim in behaviour."""
    bs = max(box[3] - box[1], box[2] - box[0]) / 2
    y, x = (box[1] + box[3]) / 2, (box[0] + box[2]) / 2
    bsi = int(bs * (1 + 2 * cs))
    frame = np.pad(image, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    face = frame[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
    return cv2.resize(face, (224, 224))


def test_crop_matches_run_pipeline_and_box_round_trip():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    for box in ([80.3, 40.7, 150.2, 121.9], [5.0, 2.5, 75.0, 90.0], [190.0, 100.0, 239.0, 175.0]):  # inside, edges
        np.testing.assert_array_equal(crop_syncnet_v2(image, box), _run_pipeline_crop(image, box))
    b = syncnet_v2_boxes(np.array([[10.0, 20.0, 50.0, 60.0]]))[0]  # s = 20, centre (30, 40)
    np.testing.assert_allclose(b, [30 - 28, 40 - 20, 30 + 28, 40 + 36])
    face = np.array([[30.0, 40.0, 90.0, 110.0], [0.0, 5.0, 64.0, 69.0]])
    side = np.maximum(face[:, 2] - face[:, 0], face[:, 3] - face[:, 1])
    crop = square_boxes(face, padding=0.25, shift_y=0.1)
    back = face_boxes_from_crop_boxes(crop, padding=0.25, shift_y=0.1)
    centre = (face[:, :2] + face[:, 2:]) / 2
    np.testing.assert_allclose((back[:, :2] + back[:, 2:]) / 2, centre, atol=1e-4)
    np.testing.assert_allclose(back[:, 2] - back[:, 0], side, atol=1e-4)  # the squared box's side


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.heavy
def test_lse_syncnet_v2_scan_and_window_count(v2_model):
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (FRAMES, 224, 224, 3), dtype=np.uint8)
    wav = _speech_like(FRAMES / 25, rng) / 32768.0
    with torch.no_grad():
        out = v2_model(torch.rand(2, 3, 5, 224, 224) * 255, torch.from_numpy(syncnet_mfcc(wav)[None, None, :, :20])
                       .repeat(2, 1, 1, 1))
    assert out.audio_emb.shape == out.video_emb.shape == (2, 1024)

    res = lse_syncnet_v2(iter(crops), wav, model=v2_model, batch_size=7)
    assert syncnet_v2_windows(FRAMES, len(wav)) == FRAMES - 5  # one fewer than FRAMES - 4 sliding windows
    assert -15 <= res.offset <= 15 and res.lse_d > 0 and res.lse_c >= 0
    # The same by hand: the stream's windows, trimmed to the original's count, scored over +-15 offsets.
    stream = syncnet_v2_stream(wav, model=v2_model).add(crops)
    a, v = stream.result()
    assert a.shape == v.shape == (FRAMES - 4, 1024)
    by_hand = lse_scores(a[:FRAMES - 5], v[:FRAMES - 5], vshift=15)  # batch sizes differ: float round-off only
    assert res.offset == by_hand.offset and res.lse_d == pytest.approx(by_hand.lse_d, rel=1e-5)
    assert res.lse_c == pytest.approx(by_hand.lse_c, rel=1e-3, abs=1e-5)
    # Window i pairs frames i..i+4 (BGR 0..255) with MFCC columns 4i..4i+19.
    i = 6
    embed = syncnet_v2_embedder(v2_model)
    faces = torch.from_numpy(crops[i:i + 5]).permute(0, 3, 1, 2)[None].float() / 255
    mfcc = torch.from_numpy(syncnet_mfcc(wav)[:, 4 * i:4 * i + 20])[None]
    with torch.no_grad():
        ai, vi = embed(faces, mfcc)
        direct = v2_model(torch.from_numpy(crops[i:i + 5, :, :, ::-1].astype(np.float32)).permute(3, 0, 1, 2)[None],
                          mfcc[:, None])
    torch.testing.assert_close(ai[0], a[i], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(vi[0], v[i], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(direct.video_emb[0], v[i], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at least 6 frames"):
        lse_syncnet_v2(crops[:5], wav, model=v2_model)


@pytest.mark.heavy
def test_evaluate_with_syncnet_v2_weights(synth_dir, v2_weights, v2_model, tmp_path, capsys):
    """``talkfreq evaluate --syncnet syncnet_v2.model`` scores every row over +-15 offsets with the MFCC front end
    and the syncnet_v2 crop; the numbers equal lse_syncnet_v2 on crops cut from the same boxes."""
    src = next(synth_dir.glob("id00/*.mp4"))
    wav = load_video_audio(src, sample_rate=16000)[:FRAMES * 640]
    real = rewrite_video(src, tmp_path / "real.mp4", audio=wav, frames=FRAMES)
    late = np.concatenate([np.zeros(3 * 640, np.float32), wav])[:len(wav)]
    shifted = rewrite_video(src, tmp_path / "late.mp4", audio=late, frames=FRAMES)
    out = tmp_path / "rep"
    assert main(["evaluate", "-r", str(real), "--candidate", f"late={shifted}", "--out", str(out), "--syncnet",
                 str(v2_weights), "--no-video", "--size", "64", "closeup_frames=1", "batch_size=8", "-q"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "metrics.json").read_text())
    rows = {r["name"]: r["metrics"] for r in doc["rows"]}
    for name in ("real", "late"):
        assert rows[name]["lse_d"] > 0 and rows[name]["lse_c"] >= 0 and -15 <= rows[name]["lse_offset"] <= 15, name
    assert "lse_d" not in doc["unavailable"]

    # The same score from the public pieces: the reference's boxes -> face boxes -> syncnet_v2 crops.
    from talkfreq.report.common import reference_track

    face = FaceConfig(crop_size=64)
    track = reference_track(real, face=face, fps=25.0)
    faces = face_boxes_from_crop_boxes(track.boxes, padding=face.padding, shift_y=face.shift_y)
    crops = np.stack([crop_syncnet_v2(f, b) for f, b in zip(VideoReader(real, fps=25.0), faces)])
    direct = lse_syncnet_v2(crops, load_video_audio(real, sample_rate=16000), model=v2_model)
    assert rows["real"]["lse_d"] == pytest.approx(direct.lse_d, rel=1e-5)
    assert rows["real"]["lse_c"] == pytest.approx(direct.lse_c, rel=1e-4, abs=1e-6)
    assert rows["real"]["lse_offset"] == direct.offset


def test_syncnet_v2_bad_inputs_one_line(synth_dir, v2_weights, tmp_path):
    real = next(synth_dir.glob("id00/*.mp4"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.model")
    with pytest.raises(TalkfreqError, match=r"other\.model: not a published Wav2Lip generator"):
        evaluate(real, {"a": real}, out=tmp_path / "r", cfg=EvalConfig(syncnet=str(tmp_path / "other.model")))
    with pytest.raises(TalkfreqError, match="25 fps"):
        evaluate(real, {"a": real}, out=tmp_path / "r", cfg=EvalConfig(syncnet=str(v2_weights), fps=30.0))
    with pytest.raises(TalkfreqError, match="syncnet_v2.model file"):
        evaluate(real, {"a": real}, out=tmp_path / "r", cfg=EvalConfig(syncnet=str(tmp_path / "missing")))
    assert not (tmp_path / "r").exists()
