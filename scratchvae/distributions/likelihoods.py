"""Decoder likelihoods p(x | z): a whole example per batch element, log_prob summed over its pixels.

``bernoulli_likelihood(logits)`` is for binary data; ``gaussian_likelihood(loc, ...)`` for
continuous data, with one of three scales:

* fixed:           ``gaussian_likelihood(loc, scale=0.1)``           (a number or a Tensor, used as is);
* learned scalar:  ``gaussian_likelihood(loc, log_scale=s)``          with ``s`` a 0-d parameter Tensor;
* per pixel:       ``gaussian_likelihood(loc, log_scale=s)``          with ``s`` shaped like ``loc`` (the
  decoder's second head).

A learned scale can shrink towards 0 wherever the decoder fits the training pixels exactly, which
sends log p(x|z) to +infinity (variance collapse).  Learned scales therefore get a smooth floor:

    sigma = sqrt(min_scale^2 + exp(2 s)),   log sigma = log(min_scale) + softplus(2 (s - log min_scale)) / 2

so sigma >= min_scale always, sigma ~ exp(s) once exp(s) >> min_scale, and the gradient never
stops (unlike a hard clip).  The default ``min_scale = 1e-3`` is a thousandth of the [0, 1] pixel
range: below any real noise level of 8-bit images (1/255 ~ 4e-3).  ``min_scale=0`` disables it.
docs/elbo.md#the-gaussian-likelihood.
"""

from __future__ import annotations

import math

from .. import functional as F
from .bernoulli import Bernoulli
from .distribution import _float_params
from .independent import Independent
from .normal import Normal

__all__ = ["gaussian_likelihood", "bernoulli_likelihood", "floored_log_scale", "DEFAULT_MIN_SCALE"]

#: Default floor on a learned Gaussian likelihood scale (pixels in [0, 1]).
DEFAULT_MIN_SCALE = 1e-3


def _event_ndims(ndim: int, event_ndims) -> int:
    if event_ndims is None:
        return max(ndim - 1, 0)  # everything but the batch axis is the example
    return int(event_ndims)


def floored_log_scale(log_scale, min_scale: float = DEFAULT_MIN_SCALE):
    """log sqrt(min_scale^2 + exp(2 s)) computed stably: log m + softplus(2 (s - log m)) / 2."""
    if min_scale < 0:
        raise ValueError(f"gaussian_likelihood: min_scale must be >= 0, got {min_scale}")
    if min_scale == 0:
        return log_scale
    log_m = math.log(min_scale)
    return log_m + 0.5 * F.softplus(2.0 * (log_scale - log_m))


def gaussian_likelihood(loc, scale=None, *, log_scale=None, min_scale: float = DEFAULT_MIN_SCALE,
                        event_ndims=None, validate_args=None) -> Independent:
    """p(x | z) = prod_pixels N(x; loc, sigma^2) as ``Independent(Normal, event_ndims)``.

    Give exactly one of ``scale`` (fixed, used as is) or ``log_scale`` (learned: scalar or per pixel,
    floored smoothly at ``min_scale``, see the module docstring).  ``event_ndims`` defaults to every
    axis but the first (one example per row).
    """
    if (scale is None) == (log_scale is None):
        raise ValueError(
            "gaussian_likelihood: pass exactly one of scale= (a fixed standard deviation) or log_scale= "
            "(a learned log standard deviation, scalar or per pixel), got " + ("both" if scale is not None else "neither")
        )
    if scale is not None:
        base = Normal(loc, scale, validate_args=validate_args)
    else:
        loc, log_scale = _float_params(loc, log_scale)
        base = Normal.from_log_scale(loc, floored_log_scale(log_scale, min_scale), validate_args=validate_args)
    return Independent(base, _event_ndims(len(base.batch_shape), event_ndims))


def bernoulli_likelihood(logits, event_ndims=None, validate_args=None) -> Independent:
    """p(x | z) = prod_pixels Bernoulli(x; sigmoid(logits)) as ``Independent(Bernoulli, event_ndims)``."""
    base = Bernoulli(logits=logits, validate_args=validate_args)
    return Independent(base, _event_ndims(len(base.batch_shape), event_ndims))
