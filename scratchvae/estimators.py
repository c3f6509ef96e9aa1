"""Training objectives whose *value* is the bound and whose *gradient* is a chosen estimator of its
gradient: pathwise (plain reparameterization), STL ("sticking the landing", Roeder, Wu & Duvenaud
2017) and DReG (doubly reparameterized gradients, Tucker, Lawson, Gu & Maddison 2019).
Derivations in docs/math.md#gradient-estimators-for-the-elbo-and-iwae.

Each returns a per-example Tensor equal to the bound; calling backward on its negative mean gives
the estimator's gradient for every parameter (encoder, decoder, prior).
"""

from __future__ import annotations

import math

from . import functional as F
from .autograd import Function, Tensor, as_tensor
from .backend import namespace
from .distributions import Distribution, Independent, MultivariateNormal, Normal
from .elbo import decode_log_prob, draw_latents, encode_batch

__all__ = ["GRAD_ESTIMATORS", "elbo_objective", "iwae_objective", "detach_parameters"]

GRAD_ESTIMATORS = ("pathwise", "stl", "dreg")


def detach_parameters(q: Distribution) -> Distribution:
    """The same distribution with its parameters cut from the graph: log q_stop(z) still depends on z
    (so on the encoder through the reparameterized z) but not directly on the encoder's outputs."""
    if isinstance(q, Independent):
        return Independent(detach_parameters(q.base_dist), q.reinterpreted_batch_ndims)
    if isinstance(q, Normal):
        return Normal.from_log_scale(q.loc.detach(), q.log_scale.detach(), validate_args=False)
    if isinstance(q, MultivariateNormal):
        return MultivariateNormal(q.loc.detach(), scale_tril=q.scale_tril.detach(), validate_args=False)
    raise TypeError(f"stl and dreg need q's density with detached parameters; {type(q).__name__} is not one of "
                    "Normal, Independent(Normal), MultivariateNormal")


def _check(grad_estimator: str, allowed=GRAD_ESTIMATORS) -> None:
    if grad_estimator not in allowed:
        raise ValueError(f"grad_estimator must be one of {allowed}, got {grad_estimator!r}")


def _value_with_gradient_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """``value`` in the forward, ``surrogate``'s gradient in the backward."""
    return value.detach() + (surrogate - surrogate.detach())


def elbo_objective(x, encode, decode, prior: Distribution, n_samples: int = 1, grad_estimator: str = "pathwise",
                   generator=None) -> Tensor:
    """The Monte-Carlo ELBO (1/S) sum_s [log p(x, z_s) - log q(z_s|x)], per example.

    ``stl`` evaluates log q with its parameters detached: the score term E_q[d log q / d phi] = 0
    is dropped, unbiased, and its variance vanishes as q approaches the posterior.
    """
    _check(grad_estimator, ("pathwise", "stl"))
    x = as_tensor(x)
    q = encode_batch(encode, x)
    s = int(n_samples)
    z = draw_latents(q, s, generator)
    dq = q if grad_estimator == "pathwise" else detach_parameters(q)
    log_w = decode_log_prob(decode, z, x, s) + prior.log_prob(z) - dq.log_prob(z)
    return F.mean(log_w, axis=0)


class ScaleGradient(Function):
    """y = x in the forward; gx = gy * w in the backward, with w set in ``saved`` after the forward
    (DReG's second factor of the normalized weights, known only once the log-weights are)."""

    def forward(self, x):
        self.saved = None
        return x

    def backward(self, gy):
        return (gy * self.saved,)


def iwae_objective(x, encode, decode, prior: Distribution, k: int, grad_estimator: str = "pathwise",
                   generator=None) -> Tensor:
    """IWAE_k = log (1/k) sum_i w_i, w_i = p(x, z_i) / q(z_i|x), per example, with the gradient of
    ``grad_estimator``:

    * ``pathwise``: the gradient of the bound as written (its encoder signal fades as k grows);
    * ``stl``: log q with detached parameters in the weights (biased for k > 1: Tucker et al. 2019);
    * ``dreg``: encoder gradient sum_i w~_i^2 d log w_i / dz dz/dphi, decoder sum_i w~_i d log w_i /
      dtheta, w~ the normalized weights: unbiased, and exactly 0 when q is the posterior.
    """
    _check(grad_estimator)
    k = int(k)
    if k < 1:
        raise ValueError(f"iwae_objective: k must be >= 1, got {k}")
    x = as_tensor(x)
    q = encode_batch(encode, x)
    z = draw_latents(q, k, generator)  # (k, B, latent...)

    def log_weights(dq, z):
        return decode_log_prob(decode, z, x, k) + prior.log_prob(z) - dq.log_prob(z)

    if grad_estimator == "pathwise":
        return F.logsumexp(log_weights(q, z), axis=0) - math.log(k)
    dq = detach_parameters(q)
    if grad_estimator == "stl":
        return F.logsumexp(log_weights(dq, z), axis=0) - math.log(k)
    zs = ScaleGradient()(z)
    lw = log_weights(dq, zs)  # (k, B)
    bound = F.logsumexp(lw, axis=0) - math.log(k)
    xp = namespace(lw.data)
    w = xp.exp(lw.data - xp.max(lw.data, axis=0, keepdims=True))
    w = w / xp.sum(w, axis=0, keepdims=True)  # normalized weights, constants of the surrogate
    if zs._ctx is not None:
        zs._ctx.saved = xp.reshape(w, tuple(w.shape) + (1,) * (z.ndim - 2))
    return _value_with_gradient_of(bound, F.sum(as_tensor(w, lw) * lw, axis=0))
