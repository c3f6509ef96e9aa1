"""The VAE's formulas as plain compositions of primitive ops: each equation of docs/ once.

Reading one of these is reading the math; its gradient is whatever the primitive ops' backward
rules make of it.  The fast layer (scratchvae/fast/) registers a fused node against each of them,
tested equal to it; ``scratchvae.fast.disabled()`` runs these instead.
"""

from __future__ import annotations

import math

from ..fastpath import replaceable
from ..tensor import Tensor
from .arithmetic import mul, sub
from .common import constant
from .elementwise import abs, exp, expm1, log1p, square
from .select import maximum

__all__ = ["LOG_2PI", "bernoulli_log_prob", "normal_kl_standard", "reparameterize", "normal_log_density"]

#: log(2 pi), the normalizer of every Gaussian density.
LOG_2PI = math.log(2.0 * math.pi)


@replaceable
def bernoulli_log_prob(x, logits) -> Tensor:
    """log Bernoulli(x | l) = x l - softplus(l), computed as (x l - max(l, 0)) - log1p(e^-|l|).

    The grouping matters: at x = 1 and a large l the two large terms cancel exactly first, and the
    tiny log1p(e^-|l|) survives (x l - softplus(l) rounds -2e-9 to 0 in float32 at l = 20).
    Its gradient is x - sigmoid(l).  docs/elbo.md#the-bernoulli-likelihood.
    """
    x = constant(x, logits)
    return sub(mul(x, logits) - maximum(logits, 0.0), log1p(exp(-abs(logits))))


@replaceable
def normal_kl_standard(loc, log_scale) -> Tensor:
    """KL(N(m, sigma^2) || N(0, 1)) = (m^2 + sigma^2 - 1 - 2 log sigma) / 2 per element, written
    (m^2 + expm1(2t) - 2t) / 2 with t = log sigma so that it stays exact near sigma = 1.
    docs/elbo.md#two-diagonal-gaussians-step-by-step."""
    t = constant(log_scale, loc)
    return 0.5 * (square(loc) + expm1(2.0 * t) - 2.0 * t)


@replaceable
def reparameterize(loc, log_scale, eps) -> Tensor:
    """z = mu + sigma eps with sigma = e^t, t = log sigma, eps a constant draw of N(0, 1) noise:
    the reparameterization trick.  docs/elbo.md#reparameterization."""
    return loc + exp(constant(log_scale, loc)) * constant(eps, loc)


def normal_log_density(x, loc, scale, log_scale) -> Tensor:
    """log N(x; mu, sigma^2) = -((x - mu) / sigma)^2 / 2 - log sigma - log(2 pi) / 2, elementwise
    (sigma and log sigma both given, so neither is recomputed from the other).  docs/elbo.md#the-elbo."""
    return -0.5 * square((x - loc) / scale) - log_scale - 0.5 * LOG_2PI
