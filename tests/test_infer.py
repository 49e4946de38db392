"""`talkfreq infer`: frame count, fps and audio right; pixels outside the face mask untouched; ping-pong and cut;
frame k driven by the audio window of time k / fps; face-less frames passed through; real media end to end; every
bad input refused in one line with no output left behind.

Models are tiny and untrained (built here and saved with save_pretrained): the pipeline's timing and bookkeeping
do not depend on what the networks learned.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import media, write_wav
from talkfreq.audio.mel import MelConfig, mel_window, melspectrogram
from talkfreq.cli import main
from talkfreq.face.boxes import detect_boxes
from talkfreq.face.crop import crop_to_frame_affine
from talkfreq.io import VideoReader, VideoWriter, fit_length, load_audio, probe
from talkfreq.models import FREAK, SOVQAE, SOVQAEConfig, Wav2Lip
from talkfreq.pipeline.infer import InferConfig, infer
from talkfreq.pipeline.paste import feather_mask
from talkfreq.pipeline.sources import FrameCache, image_face_box, pingpong_index

torch.set_num_threads(1)

SIZE = 32  # face crop side of the tiny stage-1 model and refiner
FPS = 25
TINY_FREAK = dict(image_size=SIZE, base_channels=8, channel_mult=[1, 2, 2], num_scales=3, audio_hidden=16,
                  audio_embed_dim=16, avfm_decoder_scales=1)
TINY_SOVQAE = dict(image_size=SIZE, base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attention=False,
                   latent_dim=16, codebook_size=64)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("infer_models")
    FREAK(config=TINY_FREAK).save_pretrained(root / "stage1")
    SOVQAE(config=SOVQAEConfig(**TINY_SOVQAE)).save_pretrained(root / "refiner")
    SOVQAE(config=SOVQAEConfig(**{**TINY_SOVQAE, "image_size": 64})).save_pretrained(root / "refiner64")
    SOVQAE(config=SOVQAEConfig(**{**TINY_SOVQAE, "image_size": 48})).save_pretrained(root / "refiner48")
    FREAK(config={**TINY_FREAK, "audio_len": 5, "audio_dim": 32}).save_pretrained(root / "stage1_speech")
    return {p.name: p for p in root.iterdir()}


@pytest.fixture(scope="module")
def clip(synth_dir) -> Path:
    return synth_dir / "id00" / "id00_c00.mp4"  # 128 px, 2 s = 50 frames, speech audio


def decode(path: Path) -> np.ndarray:
    return np.stack(list(VideoReader(path, fps=None)))


def write_video(path: Path, frames: np.ndarray, audio: np.ndarray | None = None) -> Path:
    with VideoWriter(path, fps=FPS, width=frames.shape[2], height=frames.shape[1], audio=audio,
                     sample_rate=16000) as w:
        for f in frames:
            w.write(f)
    return path


def warped(box: np.ndarray, shape: tuple[int, int], region: str) -> np.ndarray:
    """(H, W) float: the paste mask of ``region`` on a frame of ``shape`` for crop ``box``."""
    return cv2.warpAffine(feather_mask(SIZE, region=region), crop_to_frame_affine(box, size=SIZE),
                          (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderValue=0.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def audio_seconds(path: Path) -> float:
    return len(load_audio(path, sample_rate=16000)) / 16000


# ------------------------------------------------------------------------------------------- dubbing / one-shot


def test_dubbing_frames_fps_audio_and_untouched_outside_the_mask(clip, models, tmp_path, capsys):
    out, s1 = tmp_path / "dub.mp4", tmp_path / "dub_stage1.mp4"
    rc = main(["infer", "--face", str(clip), "--audio", str(clip), "--stage1", str(models["stage1"]),
               "--refiner", str(models["refiner"]), "--out", str(out), "--save-stage1", str(s1), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "50 frames at 25 fps" in text and "50 generated and refined" in text and "0 without a face" in text
    src, res, res1 = decode(clip), decode(out), decode(s1)
    assert len(res) == len(res1) == 50 and probe(out).fps == pytest.approx(FPS)
    assert abs(audio_seconds(out) - 2.0) <= 1 / FPS and abs(audio_seconds(s1) - 2.0) <= 1 / FPS
    boxes, valid, _ = detect_boxes(clip, cfg=InferConfig().face, fps=FPS)  # the boxes infer used
    assert valid.all()
    outside = np.stack([warped(b, src.shape[1:3], "lower") == 0 for b in boxes])
    assert psnr(src[outside], res[outside]) > 40.0  # only codec noise (measured ~45 dB at crf 18)
    assert np.abs(src[~outside].astype(int) - res[~outside].astype(int)).mean() > 3.0  # the mouth was replaced
    assert np.abs(res1[~outside].astype(int) - res[~outside].astype(int)).mean() > 1.0  # refined != stage 1


def test_a_refiner_at_twice_stage_1s_size(clip, models, tmp_path):
    """A 64 px refiner over a 32 px stage 1: stage 1's faces go up bicubically (as the refiner's training pairs were
    brought up), the refined 64 px faces are pasted at their own size; the stage-1 video keeps its 32 px faces."""
    out, s1 = tmp_path / "dub.mp4", tmp_path / "dub_stage1.mp4"
    res = infer(clip, audio=clip, stage1=models["stage1"], refiner=models["refiner64"], out=out, save_stage1=s1)
    assert res.generated == 50
    src, refined, first = decode(clip), decode(out), decode(s1)
    boxes, _, _ = detect_boxes(clip, cfg=InferConfig().face, fps=FPS)
    outside = np.stack([warped(b, src.shape[1:3], "lower") == 0 for b in boxes])
    assert psnr(src[outside], refined[outside]) > 40.0
    assert np.abs(first[~outside].astype(int) - refined[~outside].astype(int)).mean() > 1.0


def test_a_lower_mask_freak_keeps_the_frames_own_pixels_outside_its_ellipse(clip, tmp_path):
    """keep_visible (auto for a generator that hides exactly the pasted ellipse): the ring that the symmetric
    feather reaches outside the ellipse is the frame's own (codec noise only). The untrained FREAK without compose
    redraws it (measured: 34.0 dB in the ring against 38.9), and the symmetric feather would paste that. 64 px: at
    32 px the feather's outer reach, 3 px, is hardly wider than the 2 px ramp."""
    torch.manual_seed(0)
    model = tmp_path / "lower"
    FREAK(config={**TINY_FREAK, "image_size": 64, "dub_mask": "lower"}).save_pretrained(model)
    src = decode(clip)
    boxes, _, _ = detect_boxes(clip, cfg=InferConfig().face, fps=FPS)

    def on_frame(mask, b):
        return cv2.warpAffine(mask, crop_to_frame_affine(b, size=64), (src.shape[2], src.shape[1]),
                              flags=cv2.INTER_LINEAR, borderValue=0.0)

    sym, ins = (feather_mask(64, region="lower", inside=k) for k in (False, True))
    inside = [on_frame(ins, b) for b in boxes]
    ring = np.stack([(on_frame(sym, b) > 0.05) & (m == 0) for b, m in zip(boxes, inside)])
    assert ring.mean() > 0.01
    kept = decode(infer(clip, audio=clip, stage1=model, out=tmp_path / "kept.mp4").out)
    pasted = decode(infer(clip, audio=clip, stage1=model, out=tmp_path / "sym.mp4",
                          cfg=InferConfig(keep_visible=False)).out)
    assert psnr(src[ring], kept[ring]) > 37.0  # codec noise only (measured 39.4 dB at crf 18)
    assert psnr(src[ring], pasted[ring]) < psnr(src[ring], kept[ring]) - 3.0
    inner = np.stack([m >= 0.999 for m in inside])
    assert np.abs(kept[inner].astype(int) - src[inner].astype(int)).mean() > 3.0  # the mouth is still generated


def test_upscale_u8_is_opencvs_bicubic():
    import cv2

    from talkfreq.pipeline.infer import upscale_u8

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    up = upscale_u8(torch.from_numpy(faces), 64).numpy()
    ref = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_CUBIC) for f in faces])
    assert up.shape == ref.shape and up.dtype == np.uint8
    diff = np.abs(up.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.3  # OpenCV's fixed-point weights round a level differently at most
    t = torch.from_numpy(faces)
    assert upscale_u8(t, 32) is t  # the same size: untouched


def test_one_shot_from_an_image(clip, models, tmp_path, capsys):
    image = decode(clip)[0]
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "one.mp4"
    rc = main(["infer", "--face", str(portrait), "--audio", str(clip), "--stage1", str(models["stage1"]),
               "--refiner", str(models["refiner"]), "--out", str(out), "-q"])
    assert rc == 0
    assert "one-shot from a still" in capsys.readouterr().out
    res = decode(out)
    assert len(res) == 50 and probe(out).fps == pytest.approx(FPS) and abs(audio_seconds(out) - 2.0) <= 1 / FPS
    box = image_face_box(image, cfg=InferConfig().face, source="portrait")
    outside = warped(box, image.shape[:2], "face") == 0
    for frame in res[::7]:
        assert psnr(image[outside], frame[outside]) > 40.0
        assert np.abs(image[~outside].astype(int) - frame[~outside].astype(int)).mean() > 3.0


@pytest.mark.heavy
def test_wav2lip_dubbing_and_a_fixed_reference(clip, tmp_path):
    torch.manual_seed(0)
    model = Wav2Lip(config={"image_size": 96})  # the 6-channel input and the (1, 80, 16) mel path
    res = infer(clip, audio=clip, stage1=model, out=tmp_path / "w.mp4",
                cfg=InferConfig(reference="first", batch_size=4))
    assert res.frames == res.generated == 50 and not res.refined
    assert len(decode(tmp_path / "w.mp4")) == 50


def test_speech_feature_model_needs_and_uses_a_speech_model(clip, models, tmp_path):
    transformers = pytest.importorskip("transformers")
    from test_audio_features import TINY

    torch.manual_seed(0)
    hubert = tmp_path / "hubert"
    transformers.HubertModel(transformers.HubertConfig(**TINY)).eval().save_pretrained(hubert)
    cfg = InferConfig()
    cfg.speech.model = str(hubert)
    res = infer(clip, audio=clip, stage1=models["stage1_speech"], out=tmp_path / "h.mp4", cfg=cfg)
    assert res.frames == 50
    # A model folder with the speech.json that stage-1 training writes needs no --speech-model.
    import shutil

    from talkfreq.audio.features import save_speech_record

    recorded = shutil.copytree(models["stage1_speech"], tmp_path / "recorded")
    save_speech_record(recorded, model=str(hubert), layer=-1)
    assert infer(clip, audio=clip, stage1=recorded, out=tmp_path / "r.mp4", cfg=InferConfig()).frames == 50


# ---------------------------------------------------------------------------------------------- the timeline


def test_short_video_plays_forward_backward_and_long_video_is_cut(clip, models, tmp_path):
    src = decode(clip)[:20]
    short = write_video(tmp_path / "short.mp4", src)  # 0.8 s of video, no audio track
    out = tmp_path / "pp.mp4"
    res = infer(short, audio=clip, stage1=models["stage1"], refiner=models["refiner"], out=out,
                cfg=InferConfig(batch_size=6))
    assert res.pingpong and res.source_frames == 20 and res.frames == 50
    frames = decode(out)
    assert abs(len(frames) - 2.0 * FPS) <= 1 and abs(audio_seconds(out) - 2.0) <= 1 / FPS
    boxes, _, _ = detect_boxes(short, cfg=InferConfig().face, fps=FPS)
    seen = decode(short)
    for k in range(0, 50, 3):  # frame k shows source frame 0, 1, ..., 19, 18, ..., 0, 1, ... outside the mouth
        j = pingpong_index(k, 20)
        outside = warped(boxes[j], seen.shape[1:3], "lower") == 0
        assert psnr(seen[j][outside], frames[k][outside]) > 40.0, k
    assert not list(tmp_path.glob(".talkfreq-frames-*"))  # the frame cache is gone

    res = infer(clip, audio=write_wav(tmp_path / "a1.wav", load_audio(clip)[:16000]), stage1=models["stage1"],
                out=tmp_path / "cut.mp4")
    assert res.frames == 25 and not res.pingpong and len(decode(tmp_path / "cut.mp4")) == 25


def test_pingpong_index_and_frame_cache(tmp_path):
    assert [pingpong_index(k, 4) for k in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [pingpong_index(k, 1) for k in range(3)] == [0, 0, 0]
    cache = FrameCache(shape=(4, 6, 3), directory=tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (5, 4, 6, 3), np.uint8)
    for f in frames:
        cache.write(f)
    assert all(np.array_equal(cache.read(i), frames[i]) for i in (4, 0, 2))
    cache.close()
    assert not list(tmp_path.iterdir())


class EnergyStandIn(FREAK):
    """A stage-1 stand-in whose face is one flat grey: the mean of its (T, F) mel window, / 4 into [-1, 1]."""

    def forward(self, reference, masked, audio, mask=None):
        audio = self._check(reference, masked, audio, mask)
        v = (audio.mean(dim=(1, 2)) / 4.0).clamp(-1, 1)
        return v[:, None, None, None].expand_as(reference).contiguous()


def test_frame_k_gets_the_audio_window_of_time_k_over_fps(clip, tmp_path):
    model = EnergyStandIn(config=TINY_FREAK)
    out = tmp_path / "sync.mp4"
    res = infer(clip, audio=clip, stage1=model, out=out, cfg=InferConfig(batch_size=7))  # batches cut anywhere
    frames = decode(out)
    boxes, _, _ = detect_boxes(clip, cfg=InferConfig().face, fps=FPS)
    inner = [warped(b, frames.shape[1:3], "lower") >= 0.999 for b in boxes]
    measured = np.array([f[m].mean() / 127.5 - 1.0 for f, m in zip(frames, inner)])
    # expected, independently: Wav2Lip's window of frame k starts at mel frame int(80 k / 25)
    wav = fit_length(load_audio(clip, sample_rate=16000), 2 * 16000)
    mel = melspectrogram(wav)
    expected = np.array([np.clip(mel_window(mel, k, fps=FPS).mean() / 4.0, -1, 1) for k in range(res.frames)])
    assert np.abs(measured - expected).max() < 0.03  # a few grey levels of codec error
    # and against raw audio energy over [k/25, k/25 + 0.2 s): the best lag is 0 frames
    hop = 16000 // FPS
    energy = np.array([10 * np.log10(np.mean(wav[k * hop:k * hop + MelConfig().frames_per_window * 200] ** 2)
                                     + 1e-9) for k in range(res.frames)])
    lags = range(-3, 4)
    corr = [np.corrcoef(measured[max(0, -d):50 - max(0, d)], energy[max(0, d):50 - max(0, -d)])[0, 1] for d in lags]
    assert int(np.argmax(corr)) == 3 and corr[3] > 0.9, corr


def test_frames_without_a_face_pass_through_and_are_counted(clip, models, tmp_path, capsys):
    frames = decode(clip)
    frames[20:35] = 128  # 0.6 s without a face: longer than the 5-frame gap that is filled
    video = write_video(tmp_path / "gap.mp4", frames, audio=load_audio(clip))
    out = tmp_path / "gap_out.mp4"
    assert main(["infer", "--face", str(video), "--audio", str(video), "--stage1", str(models["stage1"]),
                 "--refiner", str(models["refiner"]), "--out", str(out), "-q"]) == 0
    assert "15 without a face" in capsys.readouterr().out
    src, res = decode(video), decode(out)
    assert len(res) == 50 and np.abs(res[20:35].astype(int) - src[20:35].astype(int)).mean() < 1.0


def test_a_given_box_replaces_detection(models, clip, tmp_path):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((100, 120, 3), 90, np.uint8))  # no face to detect
    out = tmp_path / "box.mp4"
    assert main(["infer", "--face", str(grey), "--audio", str(clip), "--stage1", str(models["stage1"]),
                 "--out", str(out), "--box", "30,20,90,80", "-q"]) == 0
    assert len(decode(out)) == 50


# ---------------------------------------------------------------------------------------------- real media


@pytest.mark.heavy
@pytest.mark.media
def test_real_dubbing_48k_stereo(models, tmp_path):
    video, wav = media("video/real3dportrait_May_5s.mp4"), media("audio/videoretalking_audio2.wav")
    out = tmp_path / "may.mp4"
    res = infer(video, audio=wav, stage1=models["stage1"], refiner=models["refiner"], out=out)
    assert res.mode == "dubbing" and res.frames == 125 and res.no_face < 5
    info = probe(out)
    assert info.fps == pytest.approx(FPS) and info.audio_rate == 48000 and (info.width, info.height) == (512, 512)
    assert abs(audio_seconds(out) - audio_seconds(wav)) <= 1 / FPS


@pytest.mark.heavy
@pytest.mark.media
def test_real_one_shot_mp3(models, tmp_path):
    image, mp3 = media("image/real3dportrait_Macron.png"), media("audio/vexpress_AOC_aud.mp3")
    out = tmp_path / "macron.mp4"
    res = infer(image, audio=mp3, stage1=models["stage1"], refiner=models["refiner"], out=out)
    assert res.mode == "one-shot" and res.generated == res.frames == round(audio_seconds(mp3) * FPS)
    assert abs(audio_seconds(out) - audio_seconds(mp3)) <= 1 / FPS and len(decode(out)) == res.frames


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_before_any_work_and_leaves_no_output(clip, models, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    s1, ref = str(models["stage1"]), str(models["refiner"])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not an image" * 10)
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((120, 120, 3), 90, np.uint8))
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32))
    mute_video = write_video(tmp_path / "mute.mp4", decode(clip)[:5])

    def run(*args: str, face: Path = clip, audio: Path = clip, stage1: str = s1, refiner: str | None = ref,
            dest: Path = out) -> str:
        argv = ["infer", "--face", str(face), "--audio", str(audio), "--stage1", stage1, "--out", str(dest), "-q"]
        argv += ["--refiner", refiner] if refiner else []
        assert main([*argv, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("talkfreq: error:"), err
        assert not dest.is_file() and not list(dest.parent.glob(f".{dest.stem}.tmp-*"))
        assert not list(tmp_path.glob(".talkfreq-frames-*"))
        return err

    assert "face image or video not found" in run(face=tmp_path / "missing.mp4")
    assert "not a video or audio file" in run(face=garbage)
    assert "not an image file" in run(face=bad_png)
    assert "no face found in the image" in run(face=grey)
    assert "audio file not found" in run(audio=tmp_path / "missing.wav")
    assert "not a video or audio file" in run(audio=garbage)
    assert "no audio track" in run(audio=mute_video)
    assert "empty" in run(audio=empty)
    assert "is a refiner (SOVQAE) checkpoint, not a stage-1 model" in run(stage1=ref)
    assert "is a stage-1 FREAK model, not a refiner" in run(refiner=s1)
    err = run(refiner=str(models["refiner48"]))
    assert "face size mismatch" in err and "32 px" in err and "48 px" in err
    assert "stage-1 model not found" in run(stage1=str(tmp_path / "nope"))
    assert "pass --speech-model" in run(stage1=str(models["stage1_speech"]))
    assert "does not exist" in run(dest=tmp_path / "no_such_folder" / "o.mp4")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    assert "is a folder" in run(dest=folder)
    assert "must be an .mp4" in run(dest=tmp_path / "o.avi")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert "is a file, not a folder" in run(dest=blocker / "o.mp4")
    assert "must differ from --out" in run("--save-stage1", str(out))
    assert "--box must be four numbers" in run("--box", "1,2,3")
    assert "mode must be one of" in run("--mode", "karaoke")
    with pytest.raises(Exception, match="one-shot needs a FREAK"):
        infer(clip, audio=clip, stage1=Wav2Lip(), out=out, cfg=InferConfig(mode="one-shot"))
    assert not out.exists()
