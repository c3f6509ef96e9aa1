"""Bernoulli(p) over {0, 1}, parameterized by logits l = log(p / (1 - p)) or by probs p.

Everything is computed from the logits with the stable softplus, never from log of a (clipped)
probability:  log p(x) = x l - softplus(l).  For x in {0, 1} this is x log p + (1 - x) log(1 - p)
because log p = -softplus(-l) = l - softplus(l) and log(1 - p) = -softplus(l).  It is exact and
finite for any finite logit (|l| = 1e4 in float32 gives exactly 0 or -1e4), and so is its gradient
x - sigmoid(l).  docs/elbo.md#the-bernoulli-likelihood.
"""

from __future__ import annotations

from .. import functional as F
from ..autograd import Tensor
from ..autograd.tensor import tensor as _tensor
from ..backend import dtype_name
from ..random import default_generator
from . import constraints as C
from .distribution import Distribution, _backend_of, _float_params, _xp

__all__ = ["Bernoulli"]

_GREY_HINT = (
    ". Grey levels are not in the support of a Bernoulli: binarize the data (e.g. x > 0.5, or sample "
    "x ~ Bernoulli(x) once), or opt out explicitly with validate_args=False -- x*l - softplus(l) is "
    "then a cross-entropy, not a normalized likelihood (its exp does not sum to 1 over [0, 1]), so "
    "ELBOs and log-likelihoods computed with it are not comparable to binary-data results "
    "(docs/elbo.md#the-bernoulli-likelihood)"
)


def _probs_to_logits(p: Tensor) -> Tensor:
    """l = log p - log(1 - p), with p = 0 or 1 moved to the nearest representable value inside (0, 1).

    Only exact 0 and 1 are moved (they would give infinite logits and then inf - inf = NaN in
    log_prob); pass logits instead of probs when that matters.
    """
    xp = _xp(p)
    fi = xp.finfo(p.dtype)
    p = F.clip(p, float(fi.smallest_normal), 1.0 - float(fi.eps) / 2.0)
    return F.log(p) - F.log1p(-p)


class Bernoulli(Distribution):
    """Bernoulli(probs=p) or Bernoulli(logits=l); elementwise over ``batch_shape``, event_shape ()."""

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(
                "Bernoulli: pass exactly one of probs= or logits=, got "
                + ("both" if probs is not None else "neither")
            )
        (param,) = _float_params(probs if logits is None else logits)
        super().__init__(batch_shape=param.shape, validate_args=validate_args)
        if logits is None:
            if self._validate_args:
                C.check_unit_interval("Bernoulli", "probs", param.data)
            self._probs = param
            self.logits = _probs_to_logits(param)
        else:
            if self._validate_args:
                C.check_not_nan("Bernoulli", "logits", param.data)
            self._probs = None
            self.logits = param

    @property
    def probs(self) -> Tensor:
        """p = sigmoid(l) (or the probs given)."""
        return self._probs if self._probs is not None else F.sigmoid(self.logits)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        p = self.probs
        return p * (1.0 - p)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        """x = 1 where u < p, else 0, u ~ U[0, 1), in the parameters' dtype (no gradient)."""
        shape = self._extended_shape(sample_shape)
        gen = generator or default_generator()
        u = gen.uniform(shape, dtype=dtype_name(self.logits.dtype), backend=_backend_of(self.logits))
        xp = _xp(self.logits)
        return _tensor(xp.astype(u < self.probs.data, self.logits.dtype))

    def log_prob(self, value) -> Tensor:
        """log p(x) = x l - softplus(l); validated to x in {0, 1} unless validate_args=False."""
        x = self._value(value, self.logits)
        if self._validate_args:
            C.check_binary("Bernoulli.log_prob", "value", x.data, hint=_GREY_HINT)
        return F.bernoulli_log_prob(x, self.logits)  # x l - softplus(l) as one fused op

    def entropy(self) -> Tensor:
        """H = softplus(l) - p l  (= -p log p - (1 - p) log(1 - p))."""
        return F.softplus(self.logits) - F.sigmoid(self.logits) * self.logits

    def __repr__(self):
        return f"Bernoulli(batch_shape={self.batch_shape}, dtype={dtype_name(self.logits.dtype)})"
