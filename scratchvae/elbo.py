"""The evidence lower bound and its relatives, for any encoder/decoder pair (docs/elbo.md).

``encode(x)`` returns q(z|x): one distribution per example, batch_shape (B,), the latent dims as
event dims (e.g. ``Independent(Normal.from_log_var(mu, log_var), 1)``).  ``decode(z)`` returns
p(x|z) for a batch of latents: batch_shape (N,), the pixels as event dims (e.g.
``bernoulli_likelihood(logits)``).  ``prior`` is p(z) with the latent dims as event dims.

With S samples per example, ``decode`` is called once on all S * B latents, stacked sample-major
as a (S * B, latent...) tensor, so any decoder that maps a batch of latents works.

* ``elbo``: log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)), per example, plus the training
  objective with beta and free bits, from its terms ``reconstruction`` (the Monte-Carlo average of
  log p(x|z)), ``kl_per_dim`` (the KL of each latent dimension) and ``free_bits_kl``;
* ``iwae_bound``: E[log (1/k) sum_i p(x, z_i) / q(z_i|x)], tighter as k grows;
* ``log_likelihood``: the importance-sampled estimate of log p(x) (k = 5000 in chunks) and its ESS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import functional as F
from .autograd import Tensor, as_tensor, no_grad
from .backend import namespace
from .distributions import Distribution, Independent, kl_divergence
from .distributions.kl import closed_form_kl

__all__ = ["ELBO", "elbo", "reconstruction", "kl_per_dim", "free_bits_kl", "iwae_bound", "LogLikelihood",
           "log_likelihood", "encode_batch", "draw_latents", "decode_log_prob"]


@dataclass(eq=False)
class ELBO:
    """The parts of the ELBO, each a per-example Tensor of shape (B,) (``kl_per_dim``: (B, latent)).

    ``elbo`` = ``reconstruction`` - ``kl`` is always the true bound (beta = 1, no free bits);
    ``objective`` is what training maximizes (beta and free bits applied), so it is the one to
    differentiate: ``loss = -result.objective.mean()`` (or ``result.loss()``).
    """

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None
    objective: Tensor
    iwae: Tensor | None = None  # IWAE_k from the same draws, where the objective computed it

    def loss(self) -> Tensor:
        """-mean over the batch of the objective (a scalar to call backward() on)."""
        return -F.mean(self.objective)


# --------------------------------------------------------------------------------------------------
# helpers

def encode_batch(encode, x: Tensor) -> Distribution:
    """q(z|x) = encode(x), checked to hold one distribution per example (batch_shape (B,))."""
    q = encode(x)
    if not isinstance(q, Distribution):
        raise TypeError(f"encode(x) must return a Distribution q(z|x), got {type(q).__name__}")
    b = x.shape[0]
    if q.batch_shape != (b,):
        raise ValueError(
            f"encode(x) returned a {type(q).__name__} with batch_shape {q.batch_shape} for a batch of {b}; "
            f"q(z|x) needs batch_shape ({b},) with the latent dims as event dims, so that log_prob sums over "
            "them -- wrap it, e.g. Independent(Normal(...), 1) (docs/elbo.md#reduction-contract)"
        )
    return q


def _log_px(decode, z: Tensor, x: Tensor) -> Tensor:
    """log p(x | z), one value per row of z: decode(z) checked to be a Distribution, and its
    log_prob checked to have summed over the pixels."""
    px = decode(z)
    if not isinstance(px, Distribution):
        raise TypeError(f"decode(z) must return a Distribution p(x|z), got {type(px).__name__}")
    lp = px.log_prob(x)
    n = z.shape[0]
    if lp.shape != (n,):
        raise ValueError(
            f"decode(z).log_prob(x) has shape {lp.shape} for {n} latents; p(x|z) must give one value per "
            "example, summed over the pixels -- wrap it, e.g. Independent(Bernoulli(logits=...), 1) or use "
            "bernoulli_likelihood / gaussian_likelihood (docs/elbo.md#reduction-contract)"
        )
    return lp


def decode_log_prob(decode, z: Tensor, x: Tensor, s: int) -> Tensor:
    """log p(x | z_s) of shape (S, B): decode the S*B latents at once, x repeated for each sample."""
    b = x.shape[0]
    zf = F.reshape(z, (s * b,) + tuple(z.shape[2:]))
    xs = x if s == 1 else F.reshape(F.broadcast_to(F.expand_dims(x, 0), (s,) + x.shape), (s * b,) + x.shape[1:])
    return F.reshape(_log_px(decode, zf, xs), (s, b))


def draw_latents(q: Distribution, s: int | None, generator) -> Tensor:
    """s reparameterized draws, (s, B, latent...); s=None: one draw without the sample axis."""
    if not q.has_rsample:
        raise ValueError(
            f"q(z|x) is a {type(q).__name__}, which has no reparameterized rsample; the ELBO's gradient "
            "through z needs one (use a Normal-based q, or a score-function estimator)"
        )
    return q.rsample(() if s is None else (s,), generator=generator)


def _mc_average(t: Tensor, d: Distribution) -> Tensor:
    """The Monte-Carlo average over the draws: the mean over axis 0 where t has a sample axis in
    front of d's batch dims (S > 1), else t itself (one draw, taken without the axis)."""
    return F.mean(t, axis=0) if t.ndim > len(d.batch_shape) else t


def _factorized(q: Distribution, prior: Distribution):
    """(q_base, p_base) when both are Independent over scalar-event bases with the same event shape."""
    if (isinstance(q, Independent) and isinstance(prior, Independent)
            and q.base_dist.event_shape == () and prior.base_dist.event_shape == ()
            and q.event_shape == prior.event_shape):
        return q.base_dist, prior.base_dist
    return None


def _flat_dims(t: Tensor, q: Distribution) -> Tensor:
    """(B, d1, d2, ...) -> (B, d1 * d2 * ...): one column per latent dimension of q."""
    return t if t.ndim == len(q.batch_shape) + 1 else F.reshape(t, q.batch_shape + (math.prod(q.event_shape),))


def _kl_whole(q: Distribution, prior: Distribution, z: Tensor | None) -> Tensor:
    """KL(q || p) per example when it does not split by dimension: the registered closed form, or
    given the draws z the Monte-Carlo average of log q(z_s|x) - log p(z_s)."""
    if z is not None:
        kl = _mc_average(q.log_prob(z) - prior.log_prob(z), q)
    else:
        try:
            kl = kl_divergence(q, prior)
        except NotImplementedError as e:
            raise NotImplementedError(f"{e}; or use elbo(..., kl='mc') for the sampled KL") from e
    if kl.shape != q.batch_shape:
        raise ValueError(f"elbo: the KL has shape {kl.shape}, expected one value per example {q.batch_shape}")
    return kl


def _checked(n_samples, kl: str, free_bits: float) -> int:
    """elbo's arguments checked; returns the number of samples S as an int."""
    if kl not in ("analytic", "mc"):
        raise ValueError(f'elbo: kl must be "analytic" or "mc", got {kl!r}')
    s = int(n_samples)
    if s < 1:
        raise ValueError(f"elbo: n_samples must be >= 1, got {n_samples}")
    if free_bits < 0:
        raise ValueError(f"elbo: free_bits must be >= 0 (nats per latent dimension), got {free_bits}")
    return s


# --------------------------------------------------------------------------------------------------
# the terms of the ELBO

def reconstruction(x, decode, z: Tensor, n_samples: int = 1) -> Tensor:
    """E_q[log p(x|z)] ~ (1/S) sum_s log p(x|z_s), per example (B,)  (docs/elbo.md#the-elbo).

    ``z`` holds the S = ``n_samples`` draws, (S, B, latent...), or (B, latent...) without the sample
    axis when S = 1; all S * B latents are decoded in one call.
    """
    x = as_tensor(x)
    if n_samples == 1:  # one draw is its own average: no reshapes, no mean (the same numbers, fewer nodes)
        return _log_px(decode, z, x)
    return F.mean(decode_log_prob(decode, z, x, n_samples), axis=0)


def kl_per_dim(q: Distribution, prior: Distribution, z: Tensor | None = None) -> Tensor | None:
    """KL(q_j || p_j) per example and latent dimension j, (B, latent)  (docs/elbo.md#the-kl-per-latent-dimension).

    The closed form or, given the draws z (as in ``reconstruction``), the Monte-Carlo average of
    log q_j(z_j) - log p_j(z_j).  None unless q and the prior are Independent over scalar-event bases
    with the same event shape (and, for the closed form, a rule for the bases is registered).
    """
    bases = _factorized(q, prior)
    if bases is None:
        return None
    qb, pb = bases
    if z is not None:
        return _flat_dims(_mc_average(qb.log_prob(z) - pb.log_prob(z), qb), q)
    per = closed_form_kl(qb, pb)
    if per is NotImplemented:
        return None
    return _flat_dims(per if per.shape == qb.batch_shape else F.broadcast_to(per, qb.batch_shape), q)


def free_bits_kl(per_dim: Tensor | None, nats: float) -> Tensor:
    """KL_fb[i] = sum_j (lambda if mean_i KL[i, j] < lambda else KL[i, j]), lambda = ``nats``, for the
    per-dimension KL (B, latent)  (docs/elbo.md#beta-and-free-bits).

    Its batch mean is sum_j max(lambda, mean_i KL[i, j]); a dimension below lambda is a constant, so
    it passes no gradient.
    """
    if per_dim is None:
        raise ValueError(
            "free_bits needs the KL per latent dimension (kl_per_dim is None), which is only available when "
            "q(z|x) and the prior are Independent over factorized (per-dimension) distributions"
        )
    if nats < 0:
        raise ValueError(f"free_bits_kl: nats must be >= 0 (nats per latent dimension), got {nats}")
    below = namespace(per_dim.data).mean(per_dim.data, axis=0) < nats  # (latent,), a plain mask: no gradient
    return F.sum(F.where(below, float(nats), per_dim), axis=-1)


# --------------------------------------------------------------------------------------------------
# the ELBO

def elbo(x, encode, decode, prior: Distribution, n_samples: int = 1, kl: str = "analytic",
         beta: float = 1.0, free_bits: float = 0.0, generator=None) -> ELBO:
    """Per-example ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))  (docs/elbo.md#the-elbo).

    ``reconstruction`` averages log p(x|z_s) over ``n_samples`` reparameterized draws z_s.
    ``kl="analytic"`` uses the registered closed form (raises where none exists); ``kl="mc"`` uses
    (1/S) sum_s log q(z_s|x) - log p(z_s) with the same draws.  ``kl_per_dim`` is that KL per latent
    dimension where q and the prior factorize (``kl_per_dim``), else None.

    ``objective`` = reconstruction - beta * KL, with free bits applied to the KL when ``free_bits`` > 0
    (``free_bits_kl``).  ``elbo`` is never affected by beta or free bits.
    """
    s = _checked(n_samples, kl, free_bits)
    x = as_tensor(x)
    q = encode_batch(encode, x)
    z = draw_latents(q, None if s == 1 else s, generator)  # (B, latent...) for one draw, else (S, B, latent...)
    rec = reconstruction(x, decode, z, s)
    z_kl = z if kl == "mc" else None  # the sampled KL reuses the reconstruction's draws
    per_dim = kl_per_dim(q, prior, z_kl)
    kl_total = F.sum(per_dim, axis=-1) if per_dim is not None else _kl_whole(q, prior, z_kl)
    bound = rec - kl_total
    if beta == 1.0 and free_bits == 0:
        objective = bound  # training maximizes the bound itself
    else:
        objective = rec - beta * (free_bits_kl(per_dim, free_bits) if free_bits > 0 else kl_total)
    return ELBO(elbo=bound, reconstruction=rec, kl=kl_total, kl_per_dim=per_dim, objective=objective)


# --------------------------------------------------------------------------------------------------
# importance weighting

def _log_weights(x: Tensor, q: Distribution, decode, prior: Distribution, z: Tensor) -> Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), shape (k, B)."""
    k = z.shape[0]
    return decode_log_prob(decode, z, x, k) + prior.log_prob(z) - q.log_prob(z)


def iwae_bound(x, encode, decode, prior: Distribution, k: int, generator=None) -> Tensor:
    """Per-example IWAE bound log (1/k) sum_i w_i, w_i = p(x, z_i) / q(z_i|x), z_i ~ q (docs/elbo.md#iwae).

    Computed as logsumexp(log w) - log k, so no weight is ever exponentiated on its own.  k = 1 is
    the single-sample MC ELBO (with the same noise); E[bound] increases with k towards log p(x).
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"iwae_bound: k must be >= 1, got {k}")
    x = as_tensor(x)
    q = encode_batch(encode, x)
    z = draw_latents(q, k, generator)
    return F.logsumexp(_log_weights(x, q, decode, prior, z), axis=0) - math.log(k)


@dataclass(eq=False)
class LogLikelihood:
    """``log_px``: per-example estimate of log p(x); ``ess``: effective sample size of the weights."""

    log_px: Tensor
    ess: Tensor


def log_likelihood(x, encode, decode, prior: Distribution, k: int = 5000, chunk: int = 100,
                   generator=None) -> LogLikelihood:
    """log p(x) ~ log (1/k) sum_i w_i with k importance samples from q(z|x) (docs/elbo.md#log-likelihood).

    The k samples are drawn ``chunk`` at a time (memory ~ chunk * batch * pixels); each chunk's
    logsumexp of the log-weights is folded into a running logsumexp, so the result equals the
    one-shot estimate.  Runs under no_grad.  ESS = (sum w)^2 / sum w^2, in log space:
    exp(2 logsumexp(log w) - logsumexp(2 log w)), between 1 (one weight dominates: q is a poor
    proposal and the estimate unreliable) and k (all weights equal).
    """
    k, chunk = int(k), int(chunk)
    if k < 1 or chunk < 1:
        raise ValueError(f"log_likelihood: k and chunk must be >= 1, got k={k}, chunk={chunk}")
    x = as_tensor(x)
    with no_grad():
        q = encode_batch(encode, x)
        lse_w = lse_w2 = None
        done = 0
        while done < k:
            c = min(chunk, k - done)
            z = q.sample((c,), generator=generator)
            lw = _log_weights(x, q, decode, prior, z)
            a, a2 = F.logsumexp(lw, axis=0), F.logsumexp(2.0 * lw, axis=0)
            if lse_w is None:
                lse_w, lse_w2 = a, a2
            else:
                lse_w = F.logsumexp(F.stack([lse_w, a]), axis=0)
                lse_w2 = F.logsumexp(F.stack([lse_w2, a2]), axis=0)
            done += c
        return LogLikelihood(log_px=lse_w - math.log(k), ess=F.exp(2.0 * lse_w - lse_w2))
