"""The Normal-Normal conjugate model: one scalar latent, n noisy observations of it.

    z ~ N(mu0, s0^2),    x_i | z ~ N(z, s^2),  i = 1..n

The smallest model with a continuous latent where every quantity has a closed form
(docs/tractable.md#the-normal-normal-model):

* posterior  p(z | x) = N(m_n, v_n),  1/v_n = 1/s0^2 + n/s^2,  m_n = v_n (mu0/s0^2 + sum_i x_i / s^2);
* evidence   log p(x) = log N(x; mu0 1, s^2 I + s0^2 1 1^T), written with the determinant lemma and
  Sherman-Morrison so it never touches the posterior (the identity tests compare the two);
* the ELBO of q = N(m, v) and its exact gradients with respect to (m, sqrt(v)).

A batch of data sets is a (B, n) matrix: row b is one set of n observations of its own z_b.
"""

from __future__ import annotations


from .. import functional as F
from ..autograd import Tensor, as_tensor, no_grad
from ..autograd.tensor import tensor as _tensor
from ..backend import backend_of, dtype_name, namespace
from ..distributions import Independent, Normal, kl_divergence
from ..nn.module import Module, Parameter
from ..random import default_generator
from .linear_gaussian import _place, _resolve_place

__all__ = ["NormalNormal"]

class NormalNormal(Module):
    """z ~ N(prior_loc, prior_scale^2), x_i | z ~ N(z, noise_scale^2).

    Parameters (0-d): ``prior_loc``, ``log_prior_scale``, ``log_noise_scale``; on ``backend`` in
    ``dtype`` (defaults: those of the arrays given, else the current backend and default dtype).
    """

    def __init__(self, prior_loc=0.0, prior_scale=1.0, noise_scale=1.0, *, dtype=None, backend=None):
        super().__init__()
        be, dt = _resolve_place([prior_loc, prior_scale, noise_scale], backend, dtype)
        loc, s0, s = (_place(v, be, dt) for v in (prior_loc, prior_scale, noise_scale))
        for name, v in (("prior_loc", loc), ("prior_scale", s0), ("noise_scale", s)):
            if v.ndim != 0:
                raise ValueError(f"NormalNormal: {name} must be a number, got shape {tuple(v.shape)}")
        xp = namespace(loc)
        for name, v in (("prior_scale", s0), ("noise_scale", s)):
            if not bool(be.to_numpy(v > 0)):
                raise ValueError(f"NormalNormal: {name} must be > 0, got {float(be.to_numpy(v)):.4g}")
        self.prior_loc = Parameter(loc)
        self.log_prior_scale = Parameter(xp.log(s0))
        self.log_noise_scale = Parameter(xp.log(s))

    @property
    def prior_scale(self) -> Tensor:
        return F.exp(self.log_prior_scale)

    @property
    def noise_scale(self) -> Tensor:
        return F.exp(self.log_noise_scale)

    def _x(self, x, who: str) -> Tensor:
        x = as_tensor(x, self.prior_loc)  # host data goes to the parameters' backend and dtype
        if x.ndim != 2:
            raise ValueError(f"NormalNormal.{who}: x must be a (B, n) matrix -- B data sets of n observations -- "
                             f"got shape {x.shape}; use x[None, :] for a single data set")
        return x

    # -- the generative model ------------------------------------------------------------------------
    def prior(self) -> Normal:
        """p(z) = N(mu0, s0^2), batch ()."""
        return Normal.from_log_scale(self.prior_loc, self.log_prior_scale)

    def decode(self, z) -> Independent:
        """p(x | z) = prod_i N(x_i; z, s^2) for z of shape (N,): batch (N,), the observations as the event.

        The event axis has size 1 and broadcasts against the n observations of x in ``log_prob``,
        which sums over them.
        """
        loc = F.expand_dims(z, -1)
        return Independent(Normal.from_log_scale(loc, F.broadcast_to(self.log_noise_scale, loc.shape)), 1)

    def posterior(self, x) -> Normal:
        """p(z | x) = N(m_n, v_n) per data set, batch (B,) (docs/tractable.md#the-normal-normal-model)."""
        x = self._x(x, "posterior")
        n = x.shape[1]
        prec0 = F.exp(-2.0 * self.log_prior_scale)
        prec = F.exp(-2.0 * self.log_noise_scale)
        post_prec = prec0 + n * prec
        mean = (self.prior_loc * prec0 + F.sum(x, axis=-1) * prec) / post_prec
        log_scale = -0.5 * F.log(post_prec)
        return Normal.from_log_scale(mean, F.broadcast_to(log_scale, mean.shape))

    encode = posterior

    def log_marginal(self, x) -> Tensor:
        """log p(x) = log N(x; mu0 1, s^2 I + s0^2 1 1^T), shape (B,).

        With r = x - mu0 and rho = s0^2 / s^2: det = s^(2n) (1 + n rho), and by Sherman-Morrison
        r^T C^-1 r = (|r|^2 - s0^2 (sum r)^2 / (s^2 + n s0^2)) / s^2.
        """
        x = self._x(x, "log_marginal")
        n = x.shape[1]
        s2 = F.exp(2.0 * self.log_noise_scale)
        s02 = F.exp(2.0 * self.log_prior_scale)
        r = x - self.prior_loc
        quad = (F.sum(F.square(r), axis=-1) - s02 * F.square(F.sum(r, axis=-1)) / (s2 + n * s02)) / s2
        logdet = 2.0 * n * self.log_noise_scale + F.log1p(n * s02 / s2)
        return -0.5 * (n * F.LOG_2PI + logdet + quad)

    # -- the ELBO ------------------------------------------------------------------------------------
    def elbo(self, x, q: Normal) -> Tensor:
        """ELBO(x, q) for q = N(m, v) (batch (B,)): E_q[log p(x|z)] - KL(q || p(z)), with
        E_q[log p(x|z)] = -sum_i ((x_i - m)^2 + v) / (2 s^2) - n log s - (n/2) log 2 pi.  Shape (B,)."""
        x = self._x(x, "elbo")
        if not isinstance(q, Normal) or q.batch_shape != (x.shape[0],):
            raise TypeError(f"NormalNormal.elbo: q must be a Normal with batch_shape ({x.shape[0]},) (one scalar "
                            f"latent per data set), got {q!r}")
        n = x.shape[1]
        s2 = F.exp(2.0 * self.log_noise_scale)
        sq = F.sum(F.square(x - F.expand_dims(q.loc, -1)), axis=-1)
        ell = -(sq + n * q.variance) / (2.0 * s2) - n * self.log_noise_scale - 0.5 * n * F.LOG_2PI
        return ell - kl_divergence(q, self.prior())

    def elbo_gradients(self, x, q: Normal) -> tuple:
        """(dELBO/dm, dELBO/dsigma) for q = N(m, sigma^2), in closed form, each of shape (B,):

        dELBO/dm = sum_i (x_i - m) / s^2 - (m - mu0) / s0^2,
        dELBO/dsigma = 1/sigma - sigma (n / s^2 + 1 / s0^2)   (docs/tractable.md#pathwise-gradients).
        """
        x = self._x(x, "elbo_gradients")
        n = x.shape[1]
        with no_grad():
            prec = F.exp(-2.0 * self.log_noise_scale)
            prec0 = F.exp(-2.0 * self.log_prior_scale)
            m, sigma = q.loc, q.scale
            dm = F.sum(x - F.expand_dims(m, -1), axis=-1) * prec - (m - self.prior_loc) * prec0
            dsigma = 1.0 / sigma - sigma * (n * prec + prec0)
        return dm, dsigma

    def sample(self, n_sets: int, n_obs: int, generator=None, return_latents: bool = False):
        """``n_sets`` data sets of ``n_obs`` observations each, shape (n_sets, n_obs); no gradient."""
        gen = generator or default_generator()
        be, dt = backend_of(self.prior_loc.data), dtype_name(self.prior_loc.dtype)
        with no_grad():
            z = self.prior_loc + self.prior_scale * _tensor(gen.normal((n_sets,), dtype=dt, backend=be))
            x = F.expand_dims(z, -1) + self.noise_scale * _tensor(gen.normal((n_sets, n_obs), dtype=dt, backend=be))
        return (x, z) if return_latents else x
