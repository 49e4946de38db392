"""S3FD face detector as joonson/syncnet_python runs it (``detectors/s3fd``), in plain torch, weights by path.

syncnet_python's ``run_pipeline.py`` finds faces with ``S3FD.detect_faces(rgb_frame, conf_th=0.9,
scales=[0.25])``; :class:`S3FDDetector` reproduces that call:

* the RGB frame is resized by ``scale`` (``cv2.resize``, bilinear), the per-channel means 123 / 117 / 104 (R, G, B)
  are subtracted, and :class:`S3FDNet` (VGG16 trunk, fc6 dilated 6, L2-normalised conv3_3 / conv4_3 / conv5_3
  sources, 6 anchor scales 16..512 px at strides 4..128, the max-out background of the first head) runs in float32;
* boxes are decoded from the priors (variances 0.1 / 0.2), per image NMS at IoU 0.3 over the scores > 0.05 (at most
  750 kept), those above ``conf_th`` are scaled back to the frame, and a last NMS at IoU 0.1 removes overlaps.

Weights: syncnet_python's ``sfd_face.pth`` (keys ``vgg.0.weight``, ``L2Norm3_3.weight``, ``extras``, ``loc``,
``conf``) or the face-alignment / Wav2Lip ``s3fd.pth`` (keys ``conv1_1.weight`` ... ``conv7_2_mbox_loc.bias``):
the same parameters under other names, mapped here; either file runs syncnet_python's network and decoding.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["S3FDDetector", "S3FDNet", "load_s3fd", "s3fd_detect"]

MEAN_RGB = (123.0, 117.0, 104.0)
MIN_SIZES = (16, 32, 64, 128, 256, 512)
STEPS = (4, 8, 16, 32, 64, 128)
VARIANCES = (0.1, 0.2)
SCORE_MIN, NMS_IOU, NMS_TOP_K, KEEP_TOP_K = 0.05, 0.3, 5000, 750  # box_utils.Detect's defaults
FINAL_IOU = 0.1  # detect_faces' nms_
PIPELINE_CONF, PIPELINE_SCALE = 0.9, 0.25  # run_pipeline.py: conf_th=0.9, --facedet_scale 0.25

# vgg indices of the convolutions (the others are ReLU / max-pool) and their face-alignment names
_VGG_CONVS = dict(zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33),
                      ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
                       "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7")))
_SOURCES = ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2")


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnt per-channel scale."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) * self.weight.view(1, -1, 1, 1)


def _vgg() -> nn.ModuleList:
    layers: list[nn.Module] = []
    cin = 3
    for cout, n, ceil in ((64, 2, False), (128, 2, False), (256, 3, True), (512, 3, False), (512, 3, False)):
        for _ in range(n):
            layers += [nn.Conv2d(cin, cout, 3, 1, padding=1), nn.ReLU(inplace=True)]
            cin = cout
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil))
    layers += [nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6), nn.ReLU(inplace=True),
               nn.Conv2d(1024, 1024, 1, 1), nn.ReLU(inplace=True)]
    return nn.ModuleList(layers)


class S3FDNet(nn.Module):
    """``forward(x (B,3,H,W) mean-subtracted RGB float) -> (loc (B,P,4), scores (B,P), priors (P,4))``: the raw
    box offsets, the face probability and the priors (centre x, centre y, w, h, relative to the input)."""

    def __init__(self):
        super().__init__()
        self.vgg = _vgg()
        self.L2Norm3_3 = L2Norm(256, 10)
        self.L2Norm4_3 = L2Norm(512, 8)
        self.L2Norm5_3 = L2Norm(512, 5)
        self.extras = nn.ModuleList([nn.Conv2d(1024, 256, 1, 1), nn.Conv2d(256, 512, 3, 2, padding=1),
                                     nn.Conv2d(512, 128, 1, 1), nn.Conv2d(128, 256, 3, 2, padding=1)])
        chans = (256, 512, 512, 1024, 512, 256)
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, padding=1) for c in chans])
        # the first head has 3 background logits, max-pooled into one ("max-out background label")
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, padding=1) for i, c in enumerate(chans)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        sources = []
        # conv3_3, conv4_3 and conv5_3 (after their ReLU) feed the heads through their L2Norm
        for (start, end), norm in zip(((0, 16), (16, 23), (23, 30)), (self.L2Norm3_3, self.L2Norm4_3,
                                                                      self.L2Norm5_3)):
            for k in range(start, end):
                x = self.vgg[k](x)
            sources.append(norm(x))
        for k in range(30, len(self.vgg)):
            x = self.vgg[k](x)
        sources.append(x)
        for k, conv in enumerate(self.extras):
            x = F.relu(conv(x))
            if k % 2 == 1:
                sources.append(x)
        locs, confs = [], []
        for i, src in enumerate(sources):
            c = self.conf[i](src)
            if i == 0:
                c = torch.cat([c[:, :3].max(dim=1, keepdim=True)[0], c[:, 3:]], dim=1)
            locs.append(self.loc[i](src).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))
            confs.append(c.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 2))
        scores = torch.softmax(torch.cat(confs, 1), dim=-1)[..., 1]
        priors = _priors(tuple(size), [tuple(s.shape[-2:]) for s in sources]).to(x.device)
        return torch.cat(locs, 1), scores, priors


def _priors(size: tuple[int, int], fmaps: list[tuple[int, int]]) -> torch.Tensor:
    """box_utils.PriorBox: (P, 4) float32 (cx, cy, w, h) relative to the input, row-major per feature map."""
    imh, imw = size
    out = []
    for (fh, fw), step, min_size in zip(fmaps, STEPS, MIN_SIZES):
        i, j = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx, cy = (j + 0.5) / (imw / step), (i + 0.5) / (imh / step)
        wh = np.broadcast_to([min_size / imw, min_size / imh], (cx.size, 2))
        out.append(np.concatenate([cx.reshape(-1, 1), cy.reshape(-1, 1), wh], 1))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def _decode(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """box_utils.decode: (P, 4) offsets -> (P, 4) ``[x0, y0, x1, y1]`` relative to the input."""
    boxes = torch.cat([priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:],
                       priors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])], 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, top_k: int | None = None) -> np.ndarray:
    """Greedy NMS (highest score first; a box goes when its IoU with a kept one is above ``iou``); kept indices."""
    x0, y0, x1, y1 = boxes.T
    area = (x1 - x0) * (y1 - y0)
    order = np.argsort(-scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]))
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]))
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
    return np.asarray(keep, np.int64)


def s3fd_detect(net: S3FDNet, image: np.ndarray, *, conf_th: float = PIPELINE_CONF,
                scales=(PIPELINE_SCALE,)) -> np.ndarray:
    """syncnet_python's ``S3FD.detect_faces``: (K, 5) float32 ``[x0, y0, x1, y1, score]`` in the pixels of the
    (H, W, 3) uint8 RGB ``image``, best first (see the module docstring)."""
    h, w = image.shape[:2]
    device = next(net.parameters()).device
    found = []
    with torch.no_grad():
        for s in scales:
            scaled = cv2.resize(image, dsize=(0, 0), fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
            x = scaled.astype(np.float32).transpose(2, 0, 1) - np.asarray(MEAN_RGB, np.float32)[:, None, None]
            loc, scores, priors = net(torch.from_numpy(np.ascontiguousarray(x))[None].to(device))
            boxes = _decode(loc[0].float().cpu(), priors.cpu()).numpy()
            sc = scores[0].float().cpu().numpy()
            cand = np.flatnonzero(sc > SCORE_MIN)
            kept = cand[_nms(boxes[cand], sc[cand], NMS_IOU, NMS_TOP_K)][:KEEP_TOP_K]
            kept = kept[sc[kept] > conf_th]
            found.append(np.concatenate([boxes[kept] * np.float32([w, h, w, h]), sc[kept, None]], 1))
    dets = np.concatenate(found) if found else np.zeros((0, 5), np.float32)
    if len(dets):
        dets = dets[_nms(dets[:, :4], dets[:, 4], FINAL_IOU)]
    return dets.astype(np.float32).reshape(-1, 5)


def _from_face_alignment(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """face-alignment / Wav2Lip ``s3fd.pth`` names -> syncnet_python's."""
    names = {f"{v}.": f"vgg.{k}." for k, v in _VGG_CONVS.items()}
    names.update({"conv3_3_norm.": "L2Norm3_3.", "conv4_3_norm.": "L2Norm4_3.", "conv5_3_norm.": "L2Norm5_3."})
    names.update({f"{n}.": f"extras.{i}." for i, n in enumerate(("conv6_1", "conv6_2", "conv7_1", "conv7_2"))})
    for i, src in enumerate(_SOURCES):
        names[f"{src}_mbox_loc."] = f"loc.{i}."
        names[f"{src}_mbox_conf."] = f"conf.{i}."
    out = {}
    for key, value in state.items():
        prefix = max((p for p in names if key.startswith(p)), key=len, default=None)
        out[names[prefix] + key[len(prefix):] if prefix else key] = value
    return out


def load_s3fd(path: str | Path, *, map_location: str | torch.device = "cpu") -> S3FDNet:
    """:class:`S3FDNet` from syncnet_python's ``sfd_face.pth`` or face-alignment's ``s3fd.pth``, strictly."""
    from talkfreq.models._io import load_state_file, load_state_strict

    state = load_state_file(path, map_location=map_location)
    if "conv1_1.weight" in state:
        state = _from_face_alignment(state)
    return load_state_strict(S3FDNet(), state, source=f"{path} (S3FD)").requires_grad_(False)


class S3FDDetector:
    """A :class:`~talkfreq.face.detect.FaceDetector` running :func:`s3fd_detect` with run_pipeline.py's settings
    (``conf_th`` 0.9, ``scale`` 0.25 of the frame)."""

    def __init__(self, path: str | Path, *, scale: float = PIPELINE_SCALE, conf_th: float = PIPELINE_CONF,
                 device: str | torch.device = "cpu"):
        self.net = load_s3fd(path, map_location=device).to(device)
        self.scale, self.conf_th = float(scale), float(conf_th)

    def detect(self, frame: np.ndarray, *, index=None, near=None) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        return s3fd_detect(self.net, frame, conf_th=self.conf_th, scales=(self.scale,))
