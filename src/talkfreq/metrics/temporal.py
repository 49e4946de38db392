"""Temporal flicker: the high-pass energy of frame-to-frame differences, and its ratio to the real video's.

Definition (ours): with frame differences ``d_t = x_{t+1} - x_t``, the high-pass part is their own difference over
time, ``a_t = d_t - d_{t-1} = x_{t+1} - 2 x_t + x_{t-1}`` (a second difference). Flicker = mean of ``a_t^2`` over
every pixel, channel and t (frames in [0, 1]). Steady motion has a nearly constant ``d_t`` and contributes little;
frame-to-frame jitter, popping texture and brightness flicker alternate sign and dominate. Real speech still moves
the face, so the number is read relative to the real video's (:func:`flicker_ratio`: 1 = as steady as real, > 1 =
more flicker); a static video scores 0.

:class:`FlickerAccumulator` keeps only the last two frames, so a long video streams through in chunks with exactly
the one-shot result.
"""

from __future__ import annotations

import math

import torch

from talkfreq.metrics.fidelity import Box, as_frames, crop_box

__all__ = ["FlickerAccumulator", "flicker_ratio", "temporal_flicker"]


class FlickerAccumulator:
    """Streaming :func:`temporal_flicker`: ``add`` consecutive (B, 3, H, W) chunks of one video, read ``value``."""

    def __init__(self, *, region: Box | None = None):
        self.region = region
        self._tail: torch.Tensor | None = None  # last <= 2 frames, float64
        self._sum = 0.0
        self._count = 0  # number of second-difference elements summed

    def add(self, frames) -> FlickerAccumulator:
        x = crop_box(as_frames(frames), self.region).double()
        if self._tail is not None:
            if x.shape[1:] != self._tail.shape[1:]:
                raise ValueError(
                    f"frame size changed mid-stream: {tuple(x.shape[1:])} vs {tuple(self._tail.shape[1:])}"
                )
            x = torch.cat([self._tail, x.to(self._tail.device)], 0)
        if x.shape[0] >= 3:
            a = x[2:] - 2 * x[1:-1] + x[:-2]
            self._sum += float(a.square().sum())
            self._count += a.numel()
        self._tail = x[-2:].clone()
        return self

    def break_sequence(self) -> FlickerAccumulator:
        """The next frame does not follow the last one (frames were skipped): no difference spans the gap."""
        self._tail = None
        return self

    @property
    def value(self) -> float:
        """Mean squared second temporal difference; NaN with fewer than 3 frames."""
        return self._sum / self._count if self._count else math.nan


def temporal_flicker(frames, *, region: Box | None = None) -> float:
    """Flicker of a (T, 3, H, W) video (T >= 3): mean ``(x_{t+1} - 2 x_t + x_{t-1})^2``; 0 for a static video."""
    acc = FlickerAccumulator(region=region).add(frames)
    if math.isnan(acc.value):
        raise ValueError("temporal flicker needs at least 3 frames")
    return acc.value


def flicker_ratio(candidate, reference, *, region: Box | None = None) -> float:
    """Candidate flicker / reference flicker. Each argument is a (T, 3, H, W) video or an already computed flicker.

    Both static: 1.0; reference static but candidate not: ``inf``.
    """
    fc = float(candidate) if isinstance(candidate, (int, float)) else temporal_flicker(candidate, region=region)
    fr = float(reference) if isinstance(reference, (int, float)) else temporal_flicker(reference, region=region)
    if fr == 0.0:
        return 1.0 if fc == 0.0 else math.inf
    return fc / fr
