"""KL(p || q) = E_p[log p(z) - log q(z)]: a registry of closed forms, and an explicit Monte-Carlo fallback.

``register_kl(P, Q)`` decorates a function ``fn(p, q)``; ``kl_divergence(p, q)`` finds the rule for
the most specific pair of classes along both method resolution orders (so a subclass of Normal uses
the Normal rule unless it registers its own).  Where no rule exists it raises -- unless the caller
asks for a Monte-Carlo estimate with ``n_samples=`` -- so an estimate is never silently substituted
for an exact value.  docs/elbo.md#kl-divergences.
"""

from __future__ import annotations

import warnings

from .. import functional as F
from ..autograd import Tensor
from .bernoulli import Bernoulli
from .categorical import Categorical
from .distribution import Distribution
from .independent import Independent, _sum_rightmost
from .normal import Normal

__all__ = ["register_kl", "kl_divergence", "kl_monte_carlo"]

_REGISTRY: dict = {}
_CACHE: dict = {}


def register_kl(type_p, type_q):
    """Decorator registering ``fn(p, q) -> KL(p || q)`` for distributions of types ``type_p``, ``type_q``.

    >>> @register_kl(MyDist, Normal)
    ... def _kl_mine_normal(p, q): ...
    """
    for t in (type_p, type_q):
        if not (isinstance(t, type) and issubclass(t, Distribution)):
            raise TypeError(f"register_kl: expected subclasses of Distribution, got {t!r}")

    def decorator(fn):
        _REGISTRY[type_p, type_q] = fn
        _CACHE.clear()
        return fn

    return decorator


def _lookup(type_p, type_q):
    """The rule for the most specific registered pair: smallest (MRO index of P, MRO index of Q)."""
    key = (type_p, type_q)
    if key in _CACHE:
        return _CACHE[key]
    mro_p, mro_q = type_p.__mro__, type_q.__mro__
    matches = [(mro_p.index(a), mro_q.index(b), fn) for (a, b), fn in _REGISTRY.items()
               if a in mro_p and b in mro_q]
    fn = None
    if matches:
        left = min(matches, key=lambda m: (m[0], m[1]))
        right = min(matches, key=lambda m: (m[1], m[0]))
        if left[2] is not right[2]:
            warnings.warn(
                f"kl_divergence: ambiguous rules for ({type_p.__name__}, {type_q.__name__}): "
                f"{left[2].__name__} (most specific in p) and {right[2].__name__} (most specific in q); "
                f"using {left[2].__name__}. Register a rule for this exact pair to resolve it",
                RuntimeWarning,
                stacklevel=3,
            )
        fn = left[2]
    _CACHE[key] = fn
    return fn


def kl_divergence(p: Distribution, q: Distribution, n_samples: int | None = None, generator=None) -> Tensor:
    """KL(p || q), elementwise over the (broadcast) batch shape, summed over event dimensions.

    Closed form where a rule is registered for (type(p), type(q)).  Without one, pass ``n_samples``
    for the Monte-Carlo estimate ``kl_monte_carlo``; otherwise NotImplementedError.
    """
    result = closed_form_kl(p, q)
    if result is not NotImplemented:
        return result
    if n_samples is not None:
        return kl_monte_carlo(p, q, n_samples, generator=generator)
    raise NotImplementedError(
        f"kl_divergence: no closed form is registered for KL({_describe(p)} || {_describe(q)}). "
        f"Pass n_samples= (e.g. kl_divergence(p, q, n_samples=1000)) for a Monte-Carlo estimate, or "
        f"register one with @register_kl({_innermost(p)}, {_innermost(q)})"
    )


def _describe(d) -> str:
    if isinstance(d, Independent):
        return f"Independent({_describe(d.base_dist)}, {d.reinterpreted_batch_ndims})"
    return type(d).__name__


def _innermost(d) -> str:
    return _innermost(d.base_dist) if isinstance(d, Independent) else type(d).__name__


def closed_form_kl(p, q):
    """The registered closed form of KL(p || q), or NotImplemented where there is none."""
    fn = _lookup(type(p), type(q))
    return NotImplemented if fn is None else fn(p, q)


def kl_monte_carlo(p: Distribution, q: Distribution, n_samples: int, generator=None) -> Tensor:
    """(1/S) sum_s [log p(z_s) - log q(z_s)], z_s ~ p: unbiased, standard error ~ std / sqrt(S).

    Uses ``rsample`` (so gradients flow to p's parameters) when p has one, else ``sample``.
    """
    n = int(n_samples)
    if n < 1:
        raise ValueError(f"kl_divergence: n_samples must be >= 1, got {n_samples}")
    z = p.rsample((n,), generator=generator) if p.has_rsample else p.sample((n,), generator=generator)
    return F.mean(p.log_prob(z) - q.log_prob(z), axis=0)


# --------------------------------------------------------------------------------------------------
# Closed forms (derivations in docs/elbo.md#kl-divergences)

@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    """KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2, per element.

    Written with t = log s1 - log s2 as (expm1(2t) - 2t)/2 + ((m1 - m2)/s2)^2/2, which is exactly 0
    for p = q and keeps its precision when the scales are close (expm1 has no cancellation).
    """
    if q.is_standard:
        return _kl_normal_standard(p)
    t = p.log_scale - q.log_scale
    d = (p.loc - q.loc) / q.scale
    return 0.5 * (F.expm1(2.0 * t) - 2.0 * t) + 0.5 * F.square(d)


def _kl_normal_standard(p: Normal) -> Tensor:
    """KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1)/2 - log s: the VAE formula, no division by q's scale."""
    return F.normal_kl_standard(p.loc, p.log_scale)  # one fused op, same formula


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """KL = p1 (log p1 - log p2) + (1 - p1)(log(1 - p1) - log(1 - p2)), from logits.

    With log p = -softplus(-l) and log(1 - p) = -softplus(l) this is
    sigmoid(l1)(l1 - l2) + softplus(l2) - softplus(l1): no log of a probability, finite for any logits.
    """
    l1, l2 = p.logits, q.logits
    return F.sigmoid(l1) * (l1 - l2) + F.softplus(l2) - F.softplus(l1)


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    """KL = sum_k p_k (log p_k - log q_k), with 0 log 0 = 0; infinite where q_k = 0 < p_k."""
    if p.num_categories != q.num_categories:
        raise ValueError(
            f"kl_divergence: Categoricals over different numbers of categories ({p.num_categories} and "
            f"{q.num_categories})"
        )
    mask = p.probs.data > 0  # terms with p_k = 0 contribute 0 (also keeps -inf - -inf out)
    diff = F.where(mask, p.logits - q.logits, 0.0)
    return F.sum(p.probs * diff, axis=-1)


@register_kl(Independent, Independent)
def _kl_independent_independent(p: Independent, q: Independent) -> Tensor:
    """KL of products of independent parts = the sum of the parts' KLs over the reinterpreted dims."""
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"kl_divergence: Independent distributions over different event shapes {p.event_shape} and "
            f"{q.event_shape}"
        )
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        return NotImplemented  # the parts do not line up one to one
    parts = closed_form_kl(p.base_dist, q.base_dist)
    if parts is NotImplemented:  # lets kl_divergence(..., n_samples=) fall back to Monte Carlo
        return NotImplemented
    return _sum_rightmost(parts, p.reinterpreted_batch_ndims)
