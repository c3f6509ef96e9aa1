"""Categorical(p) over {0, ..., K-1}, the last axis of the parameter indexing the categories.

Stored as normalized logits l_k = a_k - logsumexp(a), so log p(k) = l_k exactly and the
probabilities are softmax(a) -- no log of a probability on the logits path.  Sampling uses the
Gumbel-max trick, argmax_k (l_k + g_k) with g = -log(-log u), which needs only the logits.
docs/elbo.md#categorical.
"""

from __future__ import annotations

from .. import functional as F
from ..autograd import Tensor
from ..autograd.tensor import tensor as _tensor
from ..backend import dtype_name
from ..random import default_generator
from . import constraints as C
from .distribution import Distribution, _backend_of, _float_params, _xp

__all__ = ["Categorical"]


class Categorical(Distribution):
    """Categorical(probs=p) or Categorical(logits=a), batch_shape = parameter shape[:-1], event_shape ().

    ``probs`` need not sum to 1: they are normalized along the last axis (like unnormalized weights);
    ``logits`` are normalized with a stable logsumexp.
    """

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(
                "Categorical: pass exactly one of probs= or logits=, got " + ("both" if probs is not None else "neither")
            )
        (param,) = _float_params(probs if logits is None else logits)
        if param.ndim < 1:
            raise ValueError(
                f"Categorical: {'probs' if logits is None else 'logits'} needs a last axis of categories, got a "
                f"tensor of shape {param.shape}"
            )
        super().__init__(batch_shape=param.shape[:-1], validate_args=validate_args)
        self.num_categories = param.shape[-1]
        if logits is None:
            if self._validate_args:
                C.check_nonnegative("Categorical", "probs", param.data)
                xp = _xp(param)
                C.check_positive("Categorical", "sum of probs over the categories", xp.sum(param.data, axis=-1))
            p = param / F.sum(param, axis=-1, keepdims=True)
            self._probs = p
            # Zero probabilities become the smallest normal number, so log is finite and its gradient
            # is not 0/0; their log-probability is then about -87 (float32) or -708 (float64).
            tiny = float(_xp(p).finfo(p.dtype).smallest_normal)
            self.logits = F.log(F.clip(p, tiny, None))
        else:
            if self._validate_args:
                C.check_not_nan("Categorical", "logits", param.data)
            self._probs = None
            self.logits = param - F.logsumexp(param, axis=-1, keepdims=True)

    @property
    def probs(self) -> Tensor:
        """softmax of the logits (or the normalized probs given)."""
        return self._probs if self._probs is not None else F.exp(self.logits)

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("Categorical has no mean: its values are labels, not numbers")

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        """Integer category indices of shape ``sample_shape + batch_shape`` (Gumbel-max, no gradient)."""
        shape = self._extended_shape(sample_shape) + (self.num_categories,)
        gen = generator or default_generator()
        xp = _xp(self.logits)
        u = gen.uniform(shape, dtype=dtype_name(self.logits.dtype), backend=_backend_of(self.logits))
        gumbel = -xp.log(-xp.log(u))  # u = 0 gives -inf: that draw never wins, no NaN
        return _tensor(xp.argmax(self.logits.data + gumbel, axis=-1))

    def _onehot(self, value: Tensor):
        """A boolean mask of shape value.shape + (K,) that is True at each value's category."""
        xp = _xp(self.logits)
        v = value.data
        if "float" in str(v.dtype):
            v = xp.astype(v, xp.int64)
        ks = xp.arange(self.num_categories, device=getattr(v, "device", None))
        return v[..., None] == ks

    def log_prob(self, value) -> Tensor:
        """log p(k) = l_k (the normalized logit of category k), shape ``value.shape``."""
        v = value if isinstance(value, Tensor) else _tensor(_backend_of(self.logits).asarray(value))
        if self._validate_args:
            C.check_integer_range("Categorical.log_prob", "value", v.data, self.num_categories)
        mask = self._onehot(v)
        # where (not multiply) so a -inf logit of an unchosen category never meets 0 * -inf.
        return F.sum(F.where(mask, self.logits, 0.0), axis=-1)

    def entropy(self) -> Tensor:
        """H = -sum_k p_k l_k, with 0 * log 0 taken as 0."""
        xp = _xp(self.logits)
        finite = xp.isfinite(self.logits.data)
        safe = F.where(finite, self.logits, 0.0)
        return -F.sum(self.probs * safe, axis=-1)

    def __repr__(self):
        return f"Categorical(batch_shape={self.batch_shape}, num_categories={self.num_categories})"
