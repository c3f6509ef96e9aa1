"""Training objectives whose *value* is the bound and whose *gradient* is a chosen estimator of its
gradient: pathwise (plain reparameterization), STL ("sticking the landing", Roeder, Wu & Duvenaud
2017) and DReG (doubly reparameterized gradients, Tucker, Lawson, Gu & Maddison 2019).
Derivations in docs/math.md#gradient-estimators-for-the-elbo-and-iwae.

Each returns a per-example Tensor equal to the bound; calling backward on its negative mean gives
the estimator's gradient for every parameter (encoder, decoder, prior).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from . import functional as F
from .autograd import Function, Tensor, as_tensor
from .backend import namespace
from .distributions import Distribution, Independent, MultivariateNormal, Normal
from .elbo import ELBO, decode_log_prob, draw_latents, elbo, encode_batch

__all__ = ["GRAD_ESTIMATORS", "OBJECTIVES", "BoundTerms", "detach_parameters", "elbo_objective", "elbo_terms",
           "iwae_objective", "iwae_terms", "training_objective"]

GRAD_ESTIMATORS = ("pathwise", "stl", "dreg")
OBJECTIVES = ("elbo", "iwae")


def detach_parameters(q: Distribution) -> Distribution:
    """The same distribution with its parameters cut from the graph: log q_stop(z) still depends on z
    (so on the encoder through the reparameterized z) but not directly on the encoder's outputs.
    A distribution of another kind may say how, with a ``with_detached_parameters()`` method."""
    own = getattr(q, "with_detached_parameters", None)
    if own is not None:
        return own()
    if isinstance(q, Independent):
        return Independent(detach_parameters(q.base_dist), q.reinterpreted_batch_ndims)
    if isinstance(q, Normal):
        return Normal.from_log_scale(q.loc.detach(), q.log_scale.detach(), validate_args=False)
    if isinstance(q, MultivariateNormal):
        return MultivariateNormal(q.loc.detach(), scale_tril=q.scale_tril.detach(), validate_args=False)
    raise TypeError(f"stl and dreg need q's density with detached parameters; {type(q).__name__} is not one of "
                    "Normal, Independent(Normal), MultivariateNormal, and has no with_detached_parameters()")


def _check(grad_estimator: str, allowed=GRAD_ESTIMATORS) -> None:
    if grad_estimator not in allowed:
        raise ValueError(f"grad_estimator must be one of {allowed}, got {grad_estimator!r}")


def _value_with_gradient_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """``value`` in the forward, ``surrogate``'s gradient in the backward."""
    return value.detach() + (surrogate - surrogate.detach())


class BoundTerms(NamedTuple):
    """What one pass of :func:`elbo_terms` or :func:`iwae_terms` computes: ``bound`` (B,) valued at the
    bound with the chosen estimator's gradient, and the values (no gradient) of the log-weights log w_i (k, B) and of
    log p(x|z_i) (k, B), from which the same draws give the ELBO estimate mean_i log w_i."""

    bound: Tensor
    log_weights: Tensor
    log_likelihood: Tensor


def elbo_objective(x, encode, decode, prior: Distribution, n_samples: int = 1, grad_estimator: str = "pathwise",
                   generator=None) -> Tensor:
    """The Monte-Carlo ELBO (1/S) sum_s [log p(x, z_s) - log q(z_s|x)], per example.

    ``stl`` evaluates log q with its parameters detached: the score term E_q[d log q / d phi] = 0
    is dropped, unbiased, and its variance vanishes as q approaches the posterior.
    """
    return elbo_terms(x, encode, decode, prior, n_samples, grad_estimator, generator).bound


def elbo_terms(x, encode, decode, prior: Distribution, n_samples: int = 1, grad_estimator: str = "pathwise",
               generator=None) -> BoundTerms:
    """:func:`elbo_objective` together with its log-weights and log-likelihoods (one pass)."""
    _check(grad_estimator, ("pathwise", "stl"))
    x = as_tensor(x)
    q = encode_batch(encode, x)
    s = int(n_samples)
    z = draw_latents(q, s, generator)
    dq = q if grad_estimator == "pathwise" else detach_parameters(q)
    ll = decode_log_prob(decode, z, x, s)
    log_w = ll + prior.log_prob(z) - dq.log_prob(z)
    return BoundTerms(F.mean(log_w, axis=0), log_w.detach(), ll.detach())


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
    return iwae_terms(x, encode, decode, prior, k, grad_estimator, generator).bound


def iwae_terms(x, encode, decode, prior: Distribution, k: int, grad_estimator: str = "pathwise",
               generator=None) -> BoundTerms:
    """:func:`iwae_objective` together with its log-weights and log-likelihoods (one pass)."""
    _check(grad_estimator)
    k = int(k)
    if k < 1:
        raise ValueError(f"iwae_objective: k must be >= 1, got {k}")
    x = as_tensor(x)
    q = encode_batch(encode, x)
    z = draw_latents(q, k, generator)  # (k, B, latent...)

    def log_weights(dq, z):
        ll = decode_log_prob(decode, z, x, k)
        return ll + prior.log_prob(z) - dq.log_prob(z), ll.detach()

    if grad_estimator == "pathwise":
        lw, ll = log_weights(q, z)
        return BoundTerms(F.logsumexp(lw, axis=0) - math.log(k), lw.detach(), ll)
    dq = detach_parameters(q)
    if grad_estimator == "stl":
        lw, ll = log_weights(dq, z)
        return BoundTerms(F.logsumexp(lw, axis=0) - math.log(k), lw.detach(), ll)
    zs = ScaleGradient()(z)
    lw, ll = log_weights(dq, zs)  # (k, B)
    bound = F.logsumexp(lw, axis=0) - math.log(k)
    xp = namespace(lw.data)
    w = xp.exp(lw.data - xp.max(lw.data, axis=0, keepdims=True))
    w = w / xp.sum(w, axis=0, keepdims=True)  # normalized weights, constants of the surrogate
    if zs._ctx is not None:
        zs._ctx.saved = xp.reshape(w, tuple(w.shape) + (1,) * (z.ndim - 2))
    return BoundTerms(_value_with_gradient_of(bound, F.sum(as_tensor(w, lw) * lw, axis=0)), lw.detach(), ll)


def training_objective(x, encode, decode, prior: Distribution, objective: str = "elbo", k: int = 1,
                       grad_estimator: str = "pathwise", beta: float = 1.0, free_bits: float = 0.0,
                       generator=None) -> ELBO:
    """What training maximizes, per example, with the true bound's parts from the same k draws.

    ``elbo`` with ``pathwise`` is :func:`scratchvae.elbo.elbo` (analytic KL; beta and free bits
    apply); every other pair is :func:`elbo_terms` / :func:`iwae_terms`, whose ``elbo`` is
    mean_i log w_i, ``kl`` = ``reconstruction`` - ``elbo`` (sampled) and ``iwae`` =
    log (1/k) sum_i w_i (docs/math.md#gradient-estimators-for-the-elbo-and-iwae).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    _check(grad_estimator, GRAD_ESTIMATORS if objective == "iwae" else ("pathwise", "stl"))
    if objective == "elbo" and grad_estimator == "pathwise":
        return elbo(x, encode, decode, prior, n_samples=k, beta=beta, free_bits=free_bits, generator=generator)
    if beta != 1.0 or free_bits != 0:
        raise ValueError(f"beta and free bits weight the analytic KL of the pathwise ELBO; the {objective} objective "
                         f"with {grad_estimator} has no separate KL term (got beta={beta}, free_bits={free_bits})")
    terms = (elbo_terms if objective == "elbo" else iwae_terms)(x, encode, decode, prior, k, grad_estimator,
                                                                 generator)
    lw = terms.log_weights
    bound, rec = F.mean(lw, axis=0), F.mean(terms.log_likelihood, axis=0)
    return ELBO(elbo=bound, reconstruction=rec, kl=rec - bound, kl_per_dim=None, objective=terms.bound,
                iwae=F.logsumexp(lw, axis=0) - math.log(lw.shape[0]))
