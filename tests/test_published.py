"""Published weight files (Wav2Lip's generator and lip-sync expert), saved as the original saves them, load through
every entry point, and each network is fed the input convention it was trained with.

The networks are talkfreq's modules at the original's layout (96 px, width 512: the key names and shapes of
Rudrabha/Wav2Lip's ``Wav2Lip`` and ``SyncNet_color``, spot-checked below) with random weights and random BatchNorm
statistics, saved as ``wav2lip_train.py``'s ``save_checkpoint`` does: ``{"state_dict", "optimizer",
"global_step", "global_epoch"}``, keys prefixed ``module.`` (DataParallel), zip or legacy serialisation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkfreq.cli import main
from talkfreq.errors import TalkfreqError
from talkfreq.face import FaceConfig
from talkfreq.models import SyncNet, Wav2Lip
from talkfreq.models.loading import load_stage1
from talkfreq.models.published import load_published
from talkfreq.models.syncnet import stack_lower_halves
from talkfreq.pipeline.inputs import stage1_batch

torch.set_num_threads(1)

# (key, shape) of the originals (models/wav2lip.py, models/syncnet.py, models/conv.py of Rudrabha/Wav2Lip)
WAV2LIP_KEYS = {
    "face_encoder_blocks.0.0.conv_block.0.weight": (16, 6, 7, 7),
    "face_encoder_blocks.6.1.conv_block.1.running_var": (512,),
    "audio_encoder.12.conv_block.0.weight": (512, 512, 1, 1),
    "face_decoder_blocks.1.0.conv_block.0.weight": (1024, 512, 3, 3),  # ConvTranspose2d: (in, out, k, k)
    "face_decoder_blocks.6.0.conv_block.0.weight": (160, 64, 3, 3),
    "output_block.0.conv_block.0.weight": (32, 80, 3, 3),
    "output_block.1.weight": (3, 32, 1, 1),
}
EXPERT_KEYS = {
    "face_encoder.0.conv_block.0.weight": (32, 15, 7, 7),
    "face_encoder.1.conv_block.0.weight": (64, 32, 5, 5),
    "face_encoder.15.conv_block.0.weight": (512, 512, 3, 3),
    "face_encoder.16.conv_block.0.weight": (512, 512, 1, 1),
    "audio_encoder.0.conv_block.0.weight": (32, 1, 3, 3),
    "audio_encoder.13.conv_block.0.weight": (512, 512, 1, 1),
}


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def _save_as_original(model: torch.nn.Module, path, *, legacy: bool, prefix: str = "module.") -> None:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad][:2], lr=1e-4)
    torch.save({"state_dict": {prefix + k: v for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "global_step": 123, "global_epoch": 4},
               path, _use_new_zipfile_serialization=not legacy)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    gen = _randomised(Wav2Lip(), 0)
    expert = _randomised(SyncNet(), 1)
    _save_as_original(gen, root / "wav2lip.pth", legacy=False)
    _save_as_original(gen, root / "wav2lip_gan.pth", legacy=True, prefix="")
    _save_as_original(expert, root / "lipsync_expert.pth", legacy=True)
    _save_as_original(expert, root / "expert_zip.pth", legacy=False, prefix="")
    return {"root": root, "gen": gen, "expert": expert}


def test_the_layouts_are_the_originals():
    for model, keys, params in ((Wav2Lip(), WAV2LIP_KEYS, 36_298_035), (SyncNet(), EXPERT_KEYS, 16_435_072)):
        state = model.state_dict()
        assert {k: tuple(state[k].shape) for k in keys} == keys
        assert sum(p.numel() for p in model.parameters()) == params


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["wav2lip.pth", "wav2lip_gan.pth"])
def test_generator_loads_through_every_entry_point(files, name):
    path = files["root"] / name
    for model in (load_stage1(path), Wav2Lip.from_pretrained(path), load_published(path)):
        assert isinstance(model, Wav2Lip) and not model.training
        assert (model.config.color_order, model.config.mask_fill, model.config.image_size) == ("bgr", 0.0, 96)
        _same_weights(model, files["gen"])
    with pytest.raises(TalkfreqError, match="holds a published wav2lip network, not lipsync_expert"):
        SyncNet.from_pretrained(path)


@pytest.mark.parametrize("name", ["lipsync_expert.pth", "expert_zip.pth"])
def test_expert_loads_through_every_entry_point(files, name):
    from talkfreq.report.sync_scoring import load_sync_scorer

    path = files["root"] / name
    scorer = load_sync_scorer(path, face=FaceConfig(), fps=25.0, device="cpu")
    assert scorer.kind == "talkfreq"  # the Wav2Lip-style expert path: lower half of the crop, Wav2Lip mel
    for model in (SyncNet.from_pretrained(path), SyncNet.frozen(str(path)), scorer.model):
        assert isinstance(model, SyncNet) and not model.training
        assert (model.config.color_order, model.config.pixel_range) == ("bgr", "0..1")
        _same_weights(model, files["expert"])
    with pytest.raises(TalkfreqError, match="not a stage-1 generator"):
        load_stage1(path)


def test_generator_gets_the_originals_inputs(files):
    """Wav2Lip's inference.py: OpenCV BGR crop, lower half set to 0 (black), (masked, crop) / 255, sigmoid * 255."""
    published = load_stage1(files["root"] / "wav2lip.pth")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    mel = torch.from_numpy(rng.uniform(-4, 4, (2, 1, 80, 16)).astype(np.float32))
    with torch.no_grad():
        ours = (stage1_batch(published, targets=rgb, references=rgb, audio=mel.numpy(), mask="half") + 1) / 2

        def original(faces_bgr: np.ndarray, fill: float) -> torch.Tensor:  # the bare network in its own [0, 1]
            masked = faces_bgr.astype(np.float64) / 255.0
            masked[:, 48:] = fill
            x = np.concatenate([masked, faces_bgr / 255.0], axis=3).transpose(0, 3, 1, 2)
            return (files["gen"](torch.from_numpy(x).float() * 2 - 1, mel) + 1) / 2  # rgb/0.5 config: no flip

        expected = original(rgb[..., ::-1], 0.0).flip(1)  # BGR prediction -> RGB
        rgb_grey = original(rgb, 0.5)  # what talkfreq fed before: RGB, grey mask
    assert torch.allclose(ours, expected, atol=1e-5)
    assert (ours - rgb_grey).abs().max() > 0.01  # the convention matters: the test fails without it


def test_expert_gets_the_originals_inputs(files):
    """color_syncnet_train.py: 5 BGR frames / 255, lower halves stacked frame-major along channels."""
    published = SyncNet.from_pretrained(files["root"] / "lipsync_expert.pth")
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 5, 3, 96, 96, generator=g)  # RGB in [0, 1]
    mel = torch.rand(2, 1, 80, 16, generator=g) * 8 - 4
    with torch.no_grad():
        ours = published(stack_lower_halves(frames * 2 - 1), mel)
        expected = files["expert"](stack_lower_halves(frames.flip(2)), mel)  # the bare network, BGR [0, 1]
        signed_rgb = files["expert"](stack_lower_halves(frames * 2 - 1), mel)
    assert torch.allclose(ours.video_emb, expected.video_emb, atol=1e-6)
    assert torch.allclose(ours.audio_emb, expected.audio_emb)
    assert (ours.video_emb - signed_rgb.video_emb).abs().max() > 1e-3


@pytest.mark.heavy
def test_infer_with_a_published_generator(files, synth_dir, tmp_path, capsys):
    clip = synth_dir / "id00" / "id00_c00.mp4"
    out = tmp_path / "dub.mp4"
    rc = main(["infer", "--face", str(clip), "--audio", str(clip), "--stage1", str(files["root"] / "wav2lip.pth"),
               "--out", str(out), "-q"])
    assert rc == 0 and out.is_file()


def test_import_command_writes_a_model_folder(files, tmp_path, capsys):
    out = tmp_path / "w2l"
    assert main(["import", str(files["root"] / "wav2lip_gan.pth"), "--out", str(out)]) == 0
    model = Wav2Lip.from_pretrained(out)
    assert (model.config.color_order, model.config.mask_fill) == ("bgr", 0.0)
    _same_weights(model, files["gen"])
    assert main(["import", str(files["root"] / "lipsync_expert.pth"), "--out", str(out)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, bad)
    assert main(["import", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "not a published" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.heavy
def test_evaluate_with_the_published_expert(files, synth_dir, tmp_path):
    import json

    clip = synth_dir / "id00" / "id00_c00.mp4"
    out = tmp_path / "report"
    rc = main(["evaluate", "-r", str(clip), "--candidate", f"copy={clip}", "--out", str(out),
               "--syncnet", str(files["root"] / "lipsync_expert.pth"), "--no-video", "--size", "96", "-q"])
    assert rc == 0
    report = json.loads((out / "metrics.json").read_text())
    rows = {r["name"]: r["metrics"] for r in report["rows"]}
    assert all(isinstance(rows[n]["lse_d"], float) for n in rows)
    assert rows["copy"]["lse_d"] == pytest.approx(rows["real"]["lse_d"], rel=1e-6)
    assert rows["real"]["fid"] == "unavailable" and "no Inception weights" in report["unavailable"]["fid"]


def test_imported_syncnet_v2_folder_scores_as_syncnet_v2(tmp_path):
    from talkfreq.models import SyncNetV2
    from talkfreq.report.sync_scoring import load_sync_scorer

    torch.manual_seed(0)
    src = SyncNetV2()
    torch.save({k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")},
               tmp_path / "syncnet_v2.model", _use_new_zipfile_serialization=False)
    assert main(["import", str(tmp_path / "syncnet_v2.model"), "--out", str(tmp_path / "v2")]) == 0
    scorer = load_sync_scorer(tmp_path / "v2", face=FaceConfig(), fps=25.0, device="cpu")
    assert scorer.kind == "syncnet_v2" and isinstance(scorer.model, SyncNetV2)
    _same_weights(scorer.model, src)
