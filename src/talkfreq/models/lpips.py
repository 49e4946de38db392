"""LPIPS (VGG variant) without the ``lpips`` package or torchvision.

The pieces, each matching the LPIPS reference code (richzhang/PerceptualSimilarity, as vendored by torchmetrics):

* :class:`VGG16Features` - torchvision's ``vgg16().features`` stack with the same layer indices, so a torchvision
  ``vgg16-397923af.pth`` state dict loads key for key (``features.0.weight`` ...). It returns the five LPIPS taps
  relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (indices 3, 8, 15, 22, 29). ImageNet weights are *user-supplied*:
  we never download and never score with random weights (:func:`load_vgg16`).
* the LPIPS linear heads (five 1x1 convs, ``lin{k}.model.1.weight``) from the ``vgg.pth`` file torchmetrics ships in
  its wheel (:func:`lpips_heads_path`).
* :class:`LPIPS`: scaling layer (shift/scale constants of the LPIPS code), channel unit-normalisation, squared
  difference, 1x1 head, spatial mean, sum over the five layers. Frozen and always in eval mode.

The training loss built on it is :class:`talkfreq.losses.perceptual.PerceptualLoss`; the metric is
:func:`talkfreq.metrics.fidelity.lpips_score`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from talkfreq.errors import TalkfreqError

__all__ = [
    "LPIPS",
    "VGG16_ENV",
    "LPIPS_TAPS",
    "VGG16Features",
    "load_vgg16",
    "lpips_heads_path",
    "perceptual_available",
    "resolve_vgg16_path",
]

VGG16_ENV = "TALKFREQ_VGG16"
# torchvision's VGG16 configuration "D": conv widths, "M" = 2x2 max-pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
LPIPS_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in ``features``
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS ScalingLayer: maps [-1, 1] input to roughly ImageNet-normalised input.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _missing_msg(where: str) -> str:
    return (
        f"VGG16 weights not found ({where}): LPIPS / the perceptual loss need torchvision's ImageNet VGG16 file "
        f"vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth, downloaded elsewhere); "
        f"pass --vgg16 PATH or set {VGG16_ENV}=PATH"
    )


class VGG16Features(nn.Module):
    """torchvision's VGG16 ``features`` (31 layers, same indices); forward returns the 5 LPIPS taps.

    Input (N, 3, H, W), ImageNet-normalised (LPIPS's scaling layer does that); H, W >= 16. Output: a list of
    (N, 64, H, W), (N, 128, H/2, W/2), (N, 256, H/4, W/4), (N, 512, H/8, W/8), (N, 512, H/16, W/16).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(c_in, int(v), kernel_size=3, padding=1))
                # Not in-place (torchvision's is): the tapped activations must stay intact for the caller.
                layers.append(nn.ReLU(inplace=False))
                c_in = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in LPIPS_TAPS:
                taps.append(x)
                if i == LPIPS_TAPS[-1]:
                    break  # the last max-pool is not needed
        return taps


def resolve_vgg16_path(path: str | Path | None = None) -> Path | None:
    """The VGG16 weights path: ``path`` if given, else ``$TALKFREQ_VGG16``, else None."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    env = os.environ.get(VGG16_ENV, "")
    return Path(env).expanduser() if env else None


def load_vgg16(path: str | Path | None = None) -> VGG16Features:
    """Build :class:`VGG16Features` from a torchvision-format VGG16 state dict (frozen, eval mode).

    ``path`` defaults to ``$TALKFREQ_VGG16``. Keys must be exactly ``features.{i}.weight/bias`` of the 13 convs; the
    ``classifier.*`` keys of a full torchvision checkpoint are dropped explicitly; anything else is an error.
    """
    p = resolve_vgg16_path(path)
    if p is None:
        raise TalkfreqError(_missing_msg("no path given"))
    if not p.is_file():
        raise TalkfreqError(_missing_msg(f"{p} does not exist"))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download, an HTML error page, a pickle with code...
        from talkfreq.models._io import load_failure

        raise TalkfreqError(f"{p}: cannot read VGG16 weights: {load_failure(exc)}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TalkfreqError(f"{p}: expected a torchvision VGG16 state dict, got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    model = VGG16Features()
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise TalkfreqError(
            f"{p}: not a torchvision VGG16 state dict (missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected keys {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}); use vgg16-397923af.pth"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # right keys, wrong shapes
        raise TalkfreqError(f"{p}: VGG16 weights have the wrong shapes ({str(exc).splitlines()[-1].strip()})") from exc
    model.requires_grad_(False)
    return model.eval()


def lpips_heads_path() -> Path:
    """Path of the LPIPS VGG linear heads (``vgg.pth``) inside the installed torchmetrics wheel."""
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise TalkfreqError("torchmetrics is not installed; it ships the LPIPS linear heads (pip install torchmetrics)")
    root = Path(list(spec.submodule_search_locations)[0])
    p = root / "functional" / "image" / "lpips_models" / "vgg.pth"
    if not p.is_file():
        raise TalkfreqError(f"{p}: LPIPS heads missing from the torchmetrics install; reinstall torchmetrics")
    return p


def perceptual_available(path: str | Path | None = None) -> bool:
    """True when VGG16 weights (``path`` or ``$TALKFREQ_VGG16``) and the torchmetrics LPIPS heads are both present."""
    p = resolve_vgg16_path(path)
    if p is None or not p.is_file():
        return False
    try:
        lpips_heads_path()
    except TalkfreqError:
        return False
    return True


def _unit_normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    # LPIPS's normalize_tensor: divide by the channel-vector norm at each pixel. eps inside the sqrt as in
    # torchmetrics (LPIPS PR #114): an all-zero ReLU vector would otherwise give an infinite sqrt gradient -> NaN.
    return x / torch.sqrt(torch.sum(x * x, dim=1, keepdim=True) + eps)


class LPIPS(nn.Module):
    """LPIPS-VGG distance, frozen and always in eval mode. Gradients flow to the inputs only.

    Inputs: two (N, 3, H, W) batches, in [-1, 1] (``normalize=False``, the LPIPS convention) or in [0, 1]
    (``normalize=True``, as torchmetrics' flag). Output: (N,) distances.
    """

    def __init__(self, vgg: VGG16Features, *, heads_path: str | Path | None = None, normalize: bool = False):
        super().__init__()
        self.net = vgg
        self.normalize = normalize
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _LPIPS_CHANNELS)
        heads = torch.load(heads_path or lpips_heads_path(), map_location="cpu", weights_only=True)
        for k, lin in enumerate(self.lins):
            key = f"lin{k}.model.1.weight"  # model.0 is a Dropout in the LPIPS training code
            if key not in heads:
                raise TalkfreqError(f"{heads_path or lpips_heads_path()}: LPIPS heads file lacks {key}")
            lin.weight.data.copy_(heads[key])
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_path(cls, vgg16_path: str | Path | None = None, *, normalize: bool = False) -> LPIPS:
        """LPIPS with VGG16 weights from ``vgg16_path`` (or ``$TALKFREQ_VGG16``); a one-line error when missing."""
        return cls(load_vgg16(vgg16_path), normalize=normalize)

    def train(self, mode: bool = True) -> LPIPS:  # noqa: ARG002 - frozen metric: never leave eval mode
        return super().train(False)

    def forward(
        self, in0: torch.Tensor, in1: torch.Tensor, *, normalize: bool | None = None, per_layer: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """(N,) LPIPS distances; ``normalize`` overrides the constructor's flag for this call."""
        if in0.shape != in1.shape or in0.ndim != 4 or in0.shape[1] != 3:
            raise ValueError(
                f"expected two (N, 3, H, W) batches of equal shape, got {tuple(in0.shape)}, {tuple(in1.shape)}"
            )
        if self.normalize if normalize is None else normalize:
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        x = torch.cat([in0, in1], 0)  # one backbone pass for both
        feats = self.net((x - self.shift) / self.scale)
        n = in0.shape[0]
        layers = []
        for lin, f in zip(self.lins, feats):
            f0, f1 = _unit_normalize(f[:n]), _unit_normalize(f[n:])
            layers.append(lin((f0 - f1) ** 2).mean(dim=(2, 3)).flatten())
        val = torch.stack(layers, 0).sum(0)
        return (val, layers) if per_layer else val
