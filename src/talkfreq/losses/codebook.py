"""Codebook regularisation and "space optimisation" for the SOVQAE refiner. OUR design: LaDTalk names a codebook
regularisation loss that serves its Noise Robustness Upper Bound (NRoUB) but publishes no details.

Why these terms. A latent ``z`` whose nearest code is ``c1`` (distance ``d1``; second nearest ``d2``) keeps ``c1`` under
any shift ``s < (d2 - d1) / 2`` (triangle inequality; :mod:`talkfreq.metrics.robustness` tests it). So the bound at a
position is its *margin* ``(d2 - d1) / 2``, and a degradation is undone where the encoder moves the latent less than
that. To enlarge the bound we (a) enlarge margins and code gaps and (b) limit how far the encoder moves latents:

- :func:`code_margin_loss` - squared hinge ``relu(m - (d2 - d1) / 2)^2`` per latent position: pulls ``z`` to its code
  and pushes it from the runner-up. This is the NRoUB quantity itself, and the main term.
- :func:`code_separation_loss` - squared hinge ``relu(2m - ||c_i - c_j||)^2`` on pairs of used codes (a margin ``m``
  needs a gap ``>= 2m``: ``d2 - d1 <= ||c1 - c2||``).
- :func:`soft_code_usage_loss` - spread code usage (fewer codes means coarser detail and larger jumps when a code
  does flip) as a negative *mutual information*: plain negative entropy of the usage histogram is also maximised by
  putting latents midway between codes, which shrinks margins; :func:`code_usage_loss` is the hard histogram's
  negative entropy, for monitoring.
- :func:`lipschitz_penalty` - finite-difference bound on the encoder's Lipschitz ratio (alternative to spectral norm).

What gets gradients (read from vector-quantize-pytorch 1.32): with the default EMA codebook the code vectors are
*buffers* (``Codebook.embed``, updated as running means of the latents assigned to them; ``forward`` uses
``embed.detach()``), so a loss on ``model.codebook`` has no effect. The library's learnable codebook
(``learnable_codebook=True, ema_update=False``) would make them parameters, but it is incompatible with cosine
codebooks, loses the stable EMA + k-means init, and trains the codes only through the commitment weight. We keep EMA
and put every term on the encoder outputs instead: the margin term acts on ``z`` directly, and the separation term on
the *batch centroids* of the latents assigned to each used code - exactly what the EMA moves the codes towards, so
the codebook follows within ``~1 / (1 - decay)`` steps. If a codebook does require grad (a learnable one), the
separation term acts on it directly.

Scale. Margins and shifts both scale with the latent, so an absolute hinge is trivially met by inflating ``z``
(and an absolute Lipschitz target by shrinking it). For euclidean codebooks all distances here are divided by the
batch *spread* of the latents ``s = sqrt(mean ||z - mean z||^2)`` (kept in the graph, so the gradient is scale-free):
``margin`` is in units of that spread. Cosine codebooks live on the unit sphere and need no scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


@dataclass
class CodebookRegConfig:
    """Weights of the codebook regulariser (0 switches a term off). ``margin`` is the target NRoUB radius ``m``,
    in units of the latent spread (euclidean) or of the unit sphere (cosine)."""

    margin_weight: float = 1.0
    separation_weight: float = 1.0
    margin: float = 0.25
    usage_weight: float = 0.1
    usage_temperature: float = 0.1  # softmax temperature on squared relative distances for the soft usage term
    lipschitz_weight: float = 0.0
    lipschitz_target: float = 1.0  # target for lipschitz_ratio (relative units, see there)
    lipschitz_eps: float = 0.05  # std of the finite-difference perturbation, in image units ([-1, 1])
    pairs_max: int = 4096  # code pairs per separation evaluation (random subset above this; bounds memory)


@dataclass
class CodebookRegOutput:
    """The weighted total and each unweighted term (scalars)."""

    loss: Tensor
    margin: Tensor
    separation: Tensor
    usage: Tensor


def _flat(z: Tensor) -> Tensor:
    """(B, D, h, w) or (N, D) -> (N, D)."""
    return rearrange(z, "b d h w -> (b h w) d") if z.ndim == 4 else z


def latent_spread(z: Tensor) -> Tensor:
    """sqrt(mean ||z_n - mean z||^2) over all positions of ``z`` (B, D, h, w) or (N, D); scalar, differentiable."""
    flat = _flat(z).float()
    return (flat - flat.mean(dim=0, keepdim=True)).pow(2).sum(dim=1).mean().clamp_min(1e-12).sqrt()


def _pair_dist(a: Tensor, b: Tensor) -> Tensor:
    # sqrt with an epsilon inside: the gradient of ||.|| at 0 (duplicated codes after k-means init) is NaN otherwise
    return ((a - b).pow(2).sum(dim=-1) + 1e-12).sqrt()


def code_separation_loss(
    codebook: Tensor,
    *,
    used: Tensor | None = None,
    margin: float,
    pairs_max: int = 4096,
    scale: Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean over code pairs of ``relu(margin - d_ij / scale)^2``.

    ``codebook`` (K, D); ``used`` optional bool mask (K,) selecting the codes that take part; ``margin`` the wanted
    minimum distance (callers pass ``2 m`` for an NRoUB radius ``m``). All pairs when there are at most ``pairs_max``,
    else ``pairs_max`` random pairs (memory stays O(pairs_max * D)). Returns a scalar (0 with fewer than two codes).
    """
    codes = codebook[used] if used is not None else codebook
    k = codes.shape[0]
    if k < 2:
        return codebook.sum() * 0.0
    if k * (k - 1) // 2 <= pairs_max:
        i, j = torch.triu_indices(k, k, offset=1, device=codes.device)
    else:
        i = torch.randint(0, k, (pairs_max,), device=codes.device, generator=generator)
        j = (i + torch.randint(1, k, (pairs_max,), device=codes.device, generator=generator)) % k  # j != i
    d = _pair_dist(codes[i].float(), codes[j].float())
    if scale is not None:
        d = d / scale
    return F.relu(margin - d).pow(2).mean()


def code_margin_loss(z: Tensor, codebook: Tensor, *, margin: float, scale: Tensor | float | None = None) -> Tensor:
    """Mean over positions of ``relu(margin - (d2 - d1) / (2 scale))^2``.

    ``z`` (B, D, h, w) or (N, D) in the quantiser's space (see ``SOVQAE.quantizer_space``), ``codebook`` (K, D),
    K >= 2. Equivalent to a triplet hinge ``relu(d1 - d2 + 2 m)``: grows each position's NRoUB margin directly.
    """
    flat = _flat(z).float()
    d = torch.cdist(flat, codebook.float())
    d12 = d.topk(2, dim=1, largest=False).values
    half_gap = (d12[:, 1] - d12[:, 0]) / 2
    if scale is not None:
        half_gap = half_gap / scale
    return F.relu(margin - half_gap).pow(2).mean()


def code_usage_loss(indices: Tensor, *, codebook_size: int) -> Tensor:
    """Negative entropy (nats) of the hard code-usage histogram of ``indices`` (any shape, values in [0, K)).

    In [-log K, 0]; -log K is uniform usage. Integer indices carry no gradient: use it to monitor, and
    :func:`soft_code_usage_loss` to train.
    """
    counts = torch.bincount(indices.reshape(-1).long(), minlength=codebook_size).float()
    p = counts / counts.sum().clamp_min(1.0)
    return (p * torch.log(p.clamp_min(1e-12))).sum()


def soft_code_usage_loss(
    z: Tensor, codebook: Tensor, *, temperature: float, scale: Tensor | float | None = None
) -> Tensor:
    """Negative mutual information between position and code under soft assignments, divided by log K:
    ``(mean_n H(p_n) - H(mean_n p_n)) / log K`` with ``p_n = softmax(-(d_n / scale)^2 / T)``.

    ``z`` (B, D, h, w) or (N, D), ``codebook`` (K, D); scalar in [-1, 1], gradients reach ``z`` (and a learnable
    codebook). Why not just ``-H(mean p)``: that is also maximised by making every position equidistant from all
    codes, i.e. by *shrinking* margins - it fought the margin term in our tiny runs. The ``mean H(p_n)`` part keeps
    each assignment confident, so spreading usage and keeping margins pull the same way.
    """
    flat = _flat(z).float()
    d = torch.cdist(flat, codebook.float())
    if scale is not None:
        d = d / scale
    logp = torch.log_softmax(-d.pow(2) / temperature, dim=1)
    p = logp.exp()
    per_position = -(p * logp).sum(dim=1).mean()
    avg = p.mean(dim=0)
    marginal = -(avg * torch.log(avg.clamp_min(1e-12))).sum()
    return (per_position - marginal) / math.log(max(codebook.shape[0], 2))


def code_centroids(z: Tensor, indices: Tensor, *, codebook_size: int) -> tuple[Tensor, Tensor]:
    """Mean latent per code: ``z`` (B, D, h, w) or (N, D), ``indices`` (B, h, w) or (N,) ->
    (centroids (K, D), used (K,) bool). Differentiable w.r.t. ``z``; rows of unused codes are zero."""
    flat = _flat(z).float()
    idx = indices.reshape(-1).long()
    sums = flat.new_zeros(codebook_size, flat.shape[1]).index_add(0, idx, flat)
    counts = torch.bincount(idx, minlength=codebook_size)
    return sums / counts.clamp_min(1).unsqueeze(1).to(flat), counts > 0


def lipschitz_ratio(
    encoder: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    eps: float,
    z_clean: Tensor | None = None,
    scale: Tensor | float | None = None,
) -> Tensor:
    """Finite-difference Lipschitz ratio per sample, (B,).

    ``x`` (B, C, H, W); ``delta ~ N(0, eps^2)``; ratio = RMS over latent positions of ``||E(x + delta) - E(x)||``
    (L2 over channels, like the NRoUB shift) divided by the RMS over pixels of ``||delta||`` (L2 over channels), so
    it does not depend on resolution and ``E(x) = a x`` gives ``a``; divided by ``scale`` if given
    (the latent spread, making it relative like the margins). ``z_clean`` = ``E(x)`` if already computed.

    Caveat: the relative ratio can also be lowered by inflating the spread with a few far-out latents (seen in tiny
    runs); judge Lipschitz control by ``RobustnessReport.inside_bound_fraction`` and ``flip_rate``, where shift and
    margin are in the same units and no scale can be gamed.
    """
    delta = torch.randn_like(x) * eps
    z0 = encoder(x) if z_clean is None else z_clean
    z1 = encoder(x + delta)
    positions = z0.shape[-2] * z0.shape[-1]
    shift = (z1 - z0).flatten(1).norm(dim=1) / math.sqrt(positions)
    pixels = x.shape[-2] * x.shape[-1]
    ratio = shift / (delta.flatten(1).norm(dim=1) / math.sqrt(pixels)).clamp_min(1e-12)
    return ratio / scale if scale is not None else ratio


def lipschitz_penalty(
    encoder: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    eps: float,
    target: float,
    z_clean: Tensor | None = None,
    scale: Tensor | float | None = None,
) -> Tensor:
    """``mean(relu(lipschitz_ratio - target)^2)``: penalises the encoder only above ``target``. Scalar."""
    ratio = lipschitz_ratio(encoder, x, eps=eps, z_clean=z_clean, scale=scale)
    return F.relu(ratio - target).pow(2).mean()


def codebook_regularization(
    z: Tensor,
    codebook: Tensor,
    indices: Tensor,
    *,
    config: CodebookRegConfig,
    relative: bool = True,
    generator: torch.Generator | None = None,
) -> CodebookRegOutput:
    """Margin + separation + usage terms (not the Lipschitz one: it needs the encoder and the images).

    ``z`` (B, D, h, w) latents in the quantiser's space, ``codebook`` (K, D) in the same space, ``indices``
    (B, h, w) the codes the quantiser chose. ``relative``: divide distances by the latent spread (euclidean
    codebooks); pass False for cosine codebooks. The separation term acts on ``codebook`` when it requires grad,
    otherwise (EMA codebook) on the per-code centroids of ``z`` that the EMA follows.
    """
    zero = z.sum() * 0.0
    scale = latent_spread(z) if relative else None
    m = config.margin
    margin = code_margin_loss(z, codebook, margin=m, scale=scale) if config.margin_weight else zero
    separation = zero
    if config.separation_weight:
        k = codebook.shape[0]
        centroids, used = code_centroids(z, indices, codebook_size=k)
        codes = codebook if codebook.requires_grad else centroids
        separation = code_separation_loss(
            codes, used=used, margin=2 * m, pairs_max=config.pairs_max, scale=scale, generator=generator
        )
    usage = zero
    if config.usage_weight:
        usage = soft_code_usage_loss(z, codebook, temperature=config.usage_temperature, scale=scale)
    loss = config.margin_weight * margin + config.separation_weight * separation + config.usage_weight * usage
    return CodebookRegOutput(loss=loss, margin=margin.detach(), separation=separation.detach(), usage=usage.detach())


def sovqae_codebook_regularization(
    model, z_e: Tensor, indices: Tensor, *, config: CodebookRegConfig
) -> CodebookRegOutput:
    """:func:`codebook_regularization` for a ``talkfreq.models.sovqae.SOVQAE``: maps ``z_e`` (B, D, h, w) into the
    quantiser's space, uses its (first-stage) codebook and indices, relative units unless the codebook is cosine.
    FSQ's grid is fixed and evenly spaced, so only its margin and usage terms apply (separation is switched off)."""
    if model.config.quantizer == "fsq":
        config = replace(config, separation_weight=0.0)
    return codebook_regularization(
        model.quantizer_space(z_e),
        model.codebook,
        model.primary_indices(indices),
        config=config,
        relative=not model.is_cosine,
    )
