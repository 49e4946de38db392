"""Noise Robustness Upper Bound (NRoUB) diagnostics for a VQ autoencoder: pure functions on tensors, plus a report.

LaDTalk's claim (arXiv 2410.00990): a Lipschitz encoder moves a degraded frame's latent less than the margin to the
next codebook entry, so quantisation snaps it back to the clean code. Made measurable here (our formulation):

- margin of a position: half the gap between its nearest and second-nearest code distance, ``(d2 - d1) / 2``;
- shift: the L2 distance between the clean and the degraded latent at that position;
- if ``shift < margin`` the code cannot flip: for any other code ``c_j``,
  ``||z' - c_j|| >= ||z - c_j|| - s >= d2 - s > d1 + s >= ||z' - c1||``. The report counts flips inside the bound,
  which must be zero; a non-zero count means the diagnostics and the quantiser disagree on the geometry.

Everything is computed where the quantiser takes its nearest neighbour: on L2-normalised vectors for a cosine
codebook (there, euclidean order equals cosine order), in FSQ's bounded grid space for FSQ, on the first stage for
residual VQ (``SOVQAE.quantizer_space`` / ``SOVQAE.codebook``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def _prepare(z: Tensor, codebook: Tensor, cosine: bool) -> tuple[Tensor, Tensor]:
    z, codebook = z.float(), codebook.float()
    if cosine:
        z, codebook = F.normalize(z, dim=1, eps=1e-6), F.normalize(codebook, dim=-1, eps=1e-6)
    return rearrange(z, "b d h w -> b (h w) d"), codebook


def code_distances(z: Tensor, codebook: Tensor, *, cosine: bool = False) -> Tensor:
    """Euclidean distance of every position to every code: ``z`` (B, D, h, w), ``codebook`` (K, D) -> (B, h, w, K)."""
    flat, cb = _prepare(z, codebook, cosine)
    d = torch.cdist(flat, cb.unsqueeze(0).expand(flat.shape[0], -1, -1))
    return rearrange(d, "b (h w) k -> b h w k", h=z.shape[-2])


def nearest_codes(z: Tensor, codebook: Tensor, *, cosine: bool = False) -> Tensor:
    """Index of the nearest code per position: (B, D, h, w), (K, D) -> (B, h, w) long."""
    return code_distances(z, codebook, cosine=cosine).argmin(dim=-1)


def code_margins(z: Tensor, codebook: Tensor, *, cosine: bool = False) -> Tensor:
    """NRoUB margin per position, ``(d2 - d1) / 2``: ``z`` (B, D, h, w), ``codebook`` (K >= 2, D) -> (B, h, w)."""
    d12 = code_distances(z, codebook, cosine=cosine).topk(2, dim=-1, largest=False).values
    return (d12[..., 1] - d12[..., 0]) / 2


def latent_shift(z_clean: Tensor, z_noisy: Tensor, *, cosine: bool = False) -> Tensor:
    """L2 distance per position between two latents (B, D, h, w) -> (B, h, w); on unit vectors if ``cosine``."""
    a, b = z_clean.float(), z_noisy.float()
    if cosine:
        a, b = F.normalize(a, dim=1, eps=1e-6), F.normalize(b, dim=1, eps=1e-6)
    return (a - b).norm(dim=1)


def code_flip_rate(idx_a: Tensor, idx_b: Tensor) -> float:
    """Fraction of positions whose code differs, in [0, 1] (residual VQ: any stage differing counts)."""
    differ = idx_a != idx_b
    if differ.ndim == 4:
        differ = differ.any(dim=-1)
    return float(differ.float().mean()) if differ.numel() else 0.0


def inside_bound_fraction(shift: Tensor, margin: Tensor) -> float:
    """Fraction of positions with ``shift < margin`` (strictly: inside, the code provably cannot flip)."""
    return float((shift < margin).float().mean()) if shift.numel() else 0.0


def temporal_flip_rate(indices: Tensor) -> float:
    """Code-flip rate between consecutive frames of ``indices`` (T, h, w) or (T, h, w, Q); 0 for T < 2."""
    if indices.shape[0] < 2:
        return 0.0
    return code_flip_rate(indices[1:], indices[:-1])


@dataclass
class RobustnessReport:
    """NRoUB diagnostic of one (clean, degraded) set through a model. Distances are in the quantiser's space.

    ``relative_*`` divide by the spread of the clean latents (``sqrt(mean ||z - mean z||^2)``), which makes runs with
    differently scaled latents comparable (cosine codebooks: the unit sphere, no division). ``flips_inside_bound``
    must be 0. ``temporal_flip_rate`` is between consecutive clean frames, when the batch is a clip.
    """

    positions: int
    margin_mean: float
    margin_median: float
    shift_mean: float
    shift_median: float
    relative_margin_mean: float
    relative_shift_mean: float
    flip_rate: float
    inside_bound_fraction: float
    flips_inside_bound: int
    flip_rate_outside_bound: float
    temporal_flip_rate: float | None = None
    margins: Tensor = field(default_factory=lambda: torch.empty(0), repr=False)  # (N,) for histograms
    shifts: Tensor = field(default_factory=lambda: torch.empty(0), repr=False)  # (N,)

    def as_dict(self) -> dict[str, float | int | None]:
        """Scalar fields only (for tables and JSON)."""
        return {k: v for k, v in vars(self).items() if not isinstance(v, Tensor)}


@torch.no_grad()
def robustness_report(
    model, clean: Tensor, degraded: Tensor, *, consecutive: bool = False, batch_size: int = 16
) -> RobustnessReport:
    """Run ``clean`` and ``degraded`` (B, 3, H, W) in [-1, 1] through a ``SOVQAE``'s encoder and quantiser (in eval
    mode, so no EMA step; the mode is restored) and summarise margins, shifts and flips. Flips use the quantiser's
    own (first-stage) indices; ``consecutive``: the clean batch is a clip, also report its temporal flip rate."""
    if clean.shape != degraded.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and degraded {tuple(degraded.shape)} differ in shape")
    was_training = model.training
    model.eval()
    try:
        zc_all, zd_all, ic_all, id_all = [], [], [], []
        for start in range(0, clean.shape[0], batch_size):
            for x, zs, idx in ((clean, zc_all, ic_all), (degraded, zd_all, id_all)):
                z_e = model.encode(x[start : start + batch_size])
                zs.append(model.quantizer_space(z_e))
                idx.append(model.primary_indices(model.quantize(z_e).indices))
        zc, zd, ic, idd = (torch.cat(t) for t in (zc_all, zd_all, ic_all, id_all))
    finally:
        model.train(was_training)
    codebook = model.codebook
    cosine = model.is_cosine  # quantizer_space already normalised the latents; this normalises the codebook too
    margins = code_margins(zc, codebook, cosine=cosine)
    shifts = latent_shift(zc, zd, cosine=cosine)
    flipped = ic != idd
    inside = shifts < margins
    outside = ~inside
    if cosine:
        spread = 1.0
    else:
        flat = rearrange(zc.float(), "b d h w -> (b h w) d")
        spread = float((flat - flat.mean(0, keepdim=True)).pow(2).sum(1).mean().clamp_min(1e-12).sqrt())
    return RobustnessReport(
        positions=int(margins.numel()),
        margin_mean=float(margins.mean()),
        margin_median=float(margins.median()),
        shift_mean=float(shifts.mean()),
        shift_median=float(shifts.median()),
        relative_margin_mean=float(margins.mean()) / spread,
        relative_shift_mean=float(shifts.mean()) / spread,
        flip_rate=float(flipped.float().mean()),
        inside_bound_fraction=float(inside.float().mean()),
        flips_inside_bound=int((flipped & inside).sum()),
        flip_rate_outside_bound=float(flipped[outside].float().mean()) if outside.any() else 0.0,
        temporal_flip_rate=temporal_flip_rate(ic) if consecutive else None,
        margins=margins.flatten().cpu(),
        shifts=shifts.flatten().cpu(),
    )
