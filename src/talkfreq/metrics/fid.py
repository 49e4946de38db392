"""FID as pytorch-fid computes it: Inception pool3 features (:class:`~talkfreq.models.inception_fid.FIDInceptionV3`),
their mean and unbiased covariance, and the Frechet distance of the two Gaussians.

Two ways to use it:

* **per video** (``talkfreq evaluate``'s ``fid`` column): the face crops of one video against the reference's crops of
  the same frames. With fewer frames than the 2048 feature dimensions the covariances are rank-deficient and FID is
  biased upwards; such values rank the rows of one report (same frame count, same reference) but are not the
  numbers of a paper's test set;
* **pooled** over a test set: one :class:`FeatureStats` for all real crops and one per method, fed video after
  video (or merged with ``+``), then :func:`fid_from_stats` - pytorch-fid's number for those two image sets.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

__all__ = ["FeatureStats", "fid_from_stats", "frechet_distance", "inception_features"]


def _one_blas_thread():
    """One BLAS thread for the eigendecompositions: OpenBLAS's threaded ``eigh`` of 2048 x 2048 runs an order of
    magnitude slower than one thread on a busy machine with few cores. A no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``: pytorch-fid's ``calculate_frechet_distance``.

    pytorch-fid takes ``Tr(sqrtm(S1 S2))`` with ``scipy.linalg.sqrtm`` (a complex Schur decomposition of a
    non-symmetric 2048 x 2048 matrix). For covariances (symmetric, positive semi-definite) the eigenvalues of
    ``S1 S2`` are those of the symmetric ``S1^(1/2) S2 S1^(1/2)``, so the trace is the sum of their square roots:
    the same number from two symmetric eigendecompositions, faster and without pytorch-fid's complex round-off
    (round-off negatives are clipped to 0, which is what taking the real part does there). Equal to the sqrtm
    formula within 1e-4 (tests/test_fid.py).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"Frechet distance: shapes differ: mean {mu1.shape} vs {mu2.shape}, "
                         f"covariance {s1.shape} vs {s2.shape}")
    if not all(np.isfinite(x).all() for x in (mu1, mu2, s1, s2)):
        raise ValueError("Frechet distance: the features are not finite")
    with _one_blas_thread():
        w, v = np.linalg.eigh((s1 + s1.T) / 2)
        root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        inner = root @ s2 @ root
        tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


class FeatureStats:
    """Running mean and unbiased covariance of (N, D) feature rows, in float64, memory O(D^2) whatever N.

    Rows are centred on the first batch's mean before they are summed, so the covariance does not lose digits to a
    large common offset (Inception features are all positive).
    """

    def __init__(self, dim: int):
        self.dim, self.n = int(dim), 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(self.dim)
        self._outer = np.zeros((self.dim, self.dim))

    def add(self, feats: np.ndarray | torch.Tensor) -> FeatureStats:
        a = feats.detach().double().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
        a = a.reshape(-1, self.dim)
        if not len(a):
            return self
        if self._shift is None:
            self._shift = a.mean(0)
        c = a - self._shift
        self.n += len(a)
        self._sum += c.sum(0)
        self._outer += c.T @ c
        return self

    def __add__(self, other: FeatureStats) -> FeatureStats:
        if other.dim != self.dim:
            raise ValueError(f"cannot pool features of {self.dim} and {other.dim} dimensions")
        out = FeatureStats(self.dim)
        for s in (self, other):
            if s.n:
                out.add_moments(s)
        return out

    def add_moments(self, other: FeatureStats) -> None:
        """Pool ``other``'s rows into this accumulator (re-centred on this one's shift)."""
        if self._shift is None:
            self._shift = other._shift.copy()
        d = other._shift - self._shift
        # sum over other's rows of (x - s_self) = sum_c + n d ; outer = O + d sum_c^T + sum_c d^T + n d d^T
        self._outer += other._outer + np.outer(d, other._sum) + np.outer(other._sum, d) + other.n * np.outer(d, d)
        self._sum += other._sum + other.n * d
        self.n += other.n

    @property
    def mean(self) -> np.ndarray:
        return self._shift + self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (``np.cov(rowvar=False)``), as pytorch-fid."""
        if self.n < 2:
            raise ValueError("a covariance needs at least 2 feature vectors")
        m = self._sum / self.n
        return (self._outer - self.n * np.outer(m, m)) / (self.n - 1)


def fid_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    """FID of two accumulated feature sets (pytorch-fid's formula)."""
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)


def inception_features(model, frames: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """(B, 2048) float32 pool3 features of (B, 3, H, W) RGB frames in [0, 1], on the model's device."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, frames.shape[0], batch_size):
            out.append(model(frames[i:i + batch_size].to(device).float()).float().cpu())
    return torch.cat(out)
