"""S3FD as syncnet_python runs it: the network's key layout (both published files), the input it is fed and the
decoding of its output (priors, variances, NMS, thresholds, scaling back to the frame)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from talkfreq.errors import TalkfreqError
from talkfreq.face import FaceConfig, make_detector
from talkfreq.face.s3fd import S3FDDetector, S3FDNet, _priors, load_s3fd, s3fd_detect

torch.set_num_threads(1)

# syncnet_python detectors/s3fd/nets.py S3FDNet: (key, shape)
SFD_KEYS = {
    "vgg.0.weight": (64, 3, 3, 3),
    "vgg.14.weight": (256, 256, 3, 3),
    "vgg.28.weight": (512, 512, 3, 3),
    "vgg.31.weight": (1024, 512, 3, 3),
    "vgg.33.weight": (1024, 1024, 1, 1),
    "L2Norm3_3.weight": (256,),
    "L2Norm5_3.weight": (512,),
    "extras.3.weight": (256, 128, 3, 3),
    "loc.0.weight": (4, 256, 3, 3),
    "conf.0.weight": (4, 256, 3, 3),
    "conf.3.weight": (2, 1024, 3, 3),
    "loc.5.bias": (4,),
}
# face-alignment / Wav2Lip face_detection/detection/sfd/net_s3fd.py names of the same tensors, in the same order
FA_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
            "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7"]


def _face_alignment_state(state: dict) -> dict:
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33)
    names = {f"vgg.{i}": n for i, n in zip(convs, FA_NAMES)}
    names.update({"L2Norm3_3": "conv3_3_norm", "L2Norm4_3": "conv4_3_norm", "L2Norm5_3": "conv5_3_norm"})
    names.update({f"extras.{i}": n for i, n in enumerate(["conv6_1", "conv6_2", "conv7_1", "conv7_2"])})
    for i, src in enumerate(["conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2"]):
        names[f"loc.{i}"], names[f"conf.{i}"] = f"{src}_mbox_loc", f"{src}_mbox_conf"
    out = {}
    for k, v in state.items():
        mod, leaf = k.rsplit(".", 1)
        out[f"{names[mod]}.{leaf}"] = v
    return out


def test_layout_and_both_published_files_load(tmp_path):
    torch.manual_seed(0)
    net = S3FDNet()
    state = net.state_dict()
    assert {k: tuple(state[k].shape) for k in SFD_KEYS} == SFD_KEYS
    assert len(state) == 2 * 15 + 3 + 2 * 4 + 2 * 12  # 15 vgg convs, 3 L2Norm scales, 4 extras, 12 heads
    torch.save(state, tmp_path / "sfd_face.pth")
    fa = _face_alignment_state(state)
    assert "conv3_3_norm_mbox_conf.weight" in fa and fa["fc6.weight"].shape == (1024, 512, 3, 3)
    torch.save(fa, tmp_path / "s3fd.pth", _use_new_zipfile_serialization=False)
    for name in ("sfd_face.pth", "s3fd.pth"):
        loaded = load_s3fd(tmp_path / name)
        assert not loaded.training
        for k, v in state.items():
            assert torch.equal(loaded.state_dict()[k], v), (name, k)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(TalkfreqError, match=r"bad\.pth \(S3FD\): weights do not match S3FDNet"):
        load_s3fd(tmp_path / "bad.pth")
    det = S3FDDetector(tmp_path / "sfd_face.pth", scale=0.5)
    out = det.detect(np.zeros((64, 96, 3), np.uint8))
    assert out.dtype == np.float32 and out.shape[1] == 5


def test_backend_needs_its_weights():
    with pytest.raises(TalkfreqError, match="face.s3fd_model=PATH"):
        make_detector(FaceConfig(backend="s3fd"))


class _Scripted(torch.nn.Module):
    """Stands in for the network: records its input, returns chosen scores (and zero offsets: boxes = priors)."""

    def __init__(self, scores: dict[int, float]):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.scores, self.seen = scores, None

    def forward(self, x):
        self.seen = x.clone()
        h, w = x.shape[-2:]
        sizes, fh, fw = [], h, w
        for k in range(6):  # any feature-map sizes do: decoding reads the priors returned with them
            fh, fw = max(1, -(-h // 2 ** (k + 2))), max(1, -(-w // 2 ** (k + 2)))
            sizes.append((fh, fw))
        priors = _priors((h, w), sizes)
        s = torch.zeros(1, len(priors))
        for i, v in self.scores.items():
            s[0, i] = v
        return torch.zeros(1, len(priors), 4), s, priors


def test_detect_faces_protocol():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (200, 320, 3), dtype=np.uint8)  # RGB, as run_pipeline converts BGR -> RGB
    # priors of the 0.25-scaled 50 x 80 input, first map (stride 4, 16 px): prior k sits at row k // 20, col k % 20
    net = _Scripted({0: 0.95, 1: 0.93, 45: 0.92, 60: 0.5, 3: 0.06})
    dets = s3fd_detect(net, frame, conf_th=0.9, scales=(0.25,))
    # the input: the frame resized by 0.25 (bilinear), minus the RGB means, channels first
    expected_in = cv2.resize(frame, (0, 0), fx=0.25, fy=0.25, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    expected_in = (expected_in - np.float32([123, 117, 104])).transpose(2, 0, 1)
    np.testing.assert_array_equal(net.seen[0].numpy(), expected_in)
    # prior 1 overlaps prior 0 (IoU 0.6 > 0.3): suppressed; 60 is under conf_th; 3 is under conf_th after NMS
    assert dets.shape == (2, 5)
    np.testing.assert_allclose(dets[:, 4], [0.95, 0.92], rtol=1e-6)
    # zero offsets: the box is the prior (centre (j + 0.5) * 4, side 16) in the scaled input, x4 back in the frame
    for (x0, y0, x1, y1, _), k in zip(dets, (0, 45)):
        cx, cy = (k % 20 + 0.5) * 4 * 4, (k // 20 + 0.5) * 4 * 4
        np.testing.assert_allclose([x0, y0, x1, y1], [cx - 32, cy - 32, cx + 32, cy + 32], atol=1e-3)
