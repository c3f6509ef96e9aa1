"""Independent: reinterpret the rightmost batch dimensions of a distribution as event dimensions.

This is the one place where the project's reduction contract lives (docs/elbo.md#reduction-contract):
``log_prob`` and ``entropy`` return *per-example* values, *summed* over the event dimensions -- the
log-density of a whole image is the sum over its pixels, never their mean (a mean would silently
rescale the likelihood against the KL by the number of pixels).
"""

from __future__ import annotations

import numbers

from .. import functional as F
from ..autograd import Tensor
from .distribution import Distribution

__all__ = ["Independent"]


def _sum_rightmost(t: Tensor, n: int) -> Tensor:
    if n == 0:
        return t
    return F.sum(t, axis=tuple(range(t.ndim - n, t.ndim)))


class Independent(Distribution):
    """``Independent(base, n)``: the last ``n`` batch dims of ``base`` become event dims.

    E.g. ``Independent(Normal(loc, scale), 1)`` with loc of shape (B, L) is a batch of B diagonal
    Gaussians over R^L whose log_prob has shape (B,).
    """

    def __init__(self, base_distribution: Distribution, reinterpreted_batch_ndims: int, validate_args=None):
        if not isinstance(base_distribution, Distribution):
            raise TypeError(f"Independent: the base must be a Distribution, got {type(base_distribution).__name__}")
        n = reinterpreted_batch_ndims
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"Independent: reinterpreted_batch_ndims must be a non-negative int, got {n!r} "
                            f"of type {type(n).__name__}")
        n = int(n)
        bs = base_distribution.batch_shape
        if not 0 <= n <= len(bs):
            raise ValueError(
                f"Independent: reinterpreted_batch_ndims={n} must be between 0 and the base's number of batch "
                f"dims, {len(bs)} (base batch_shape {bs})"
            )
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = n
        split = len(bs) - n
        super().__init__(
            batch_shape=bs[:split],
            event_shape=bs[split:] + base_distribution.event_shape,
            validate_args=base_distribution.validate_args if validate_args is None else validate_args,
        )

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    @property
    def mean(self) -> Tensor:
        return self.base_dist.mean

    @property
    def variance(self) -> Tensor:
        return self.base_dist.variance

    @property
    def stddev(self) -> Tensor:
        return self.base_dist.stddev

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        return self.base_dist.rsample(sample_shape, generator=generator)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        return self.base_dist.sample(sample_shape, generator=generator)

    def log_prob(self, value) -> Tensor:
        """sum over the reinterpreted dims of base.log_prob(value): shape sample_shape + batch_shape."""
        return _sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    def entropy(self) -> Tensor:
        """The entropy of independent parts is the sum of their entropies."""
        return _sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    def __repr__(self):
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"
