"""The linear-Gaussian latent variable model (probabilistic PCA / factor analysis), exactly solvable.

    z ~ N(0, I_k),    x | z ~ N(W z + b, Psi),    Psi = diag(psi)   (psi = sigma^2 1: PPCA)

Everything a VAE can only estimate is exact here (docs/tractable.md#the-linear-gaussian-model):

* the evidence   log p(x) = log N(x; b, W W^T + Psi);
* the posterior  p(z | x) = N(M^-1 W^T Psi^-1 (x - b), M^-1),  M = W^T Psi^-1 W + I_k;
* the ELBO of any Gaussian q(z) = N(m, S), diagonal or full:
      E_q[log p(x|z)] - KL(q || p(z)),
      E_q[log p(x|z)] = -(d log 2 pi + sum log psi + |Psi^-1/2 (x - W m - b)|^2 + tr(W^T Psi^-1 W S)) / 2;
* the best diagonal q: mean = the posterior mean, variances 1 / M_jj;
* the maximum-likelihood PPCA fit from the sample covariance's eigendecomposition (Tipping & Bishop 1999).

``posterior``, ``decode`` and ``prior()`` plug into the generic ``scratchvae.elbo.elbo`` as encode,
decode and prior, so the Monte-Carlo machinery can be checked against the closed forms.
"""

from __future__ import annotations

import numbers

from .. import functional as F
from ..autograd import Tensor, as_tensor, no_grad
from ..autograd.tensor import tensor as _tensor
from ..backend import (
    Backend,
    backend_of,
    dtype_name,
    get_backend,
    get_default_dtype,
    host_array,
    is_floating,
    is_host_data,
    namespace,
    resolve_backend,
)
from ..distributions import Independent, MultivariateNormal, Normal, kl_divergence
from ..nn.module import Module, Parameter
from ..random import default_generator

__all__ = ["LinearGaussian"]

# --------------------------------------------------------------------------------------------------
# placing user-given parameters (shared by the tractable models)

def _resolve_place(values, backend=None, dtype=None):
    """(Backend, dtype name) for model parameters given as NumPy data, backend arrays or Tensors.

    The backend is ``backend`` if given, else that of the first backend array, else the current
    one; the dtype is ``dtype`` if given, else the widest floating dtype among the arrays, else the
    default dtype.
    """
    arrays = [v.data if isinstance(v, Tensor) else v for v in values if v is not None]
    if backend is not None:
        be = resolve_backend(backend)
    else:
        on_device = [a for a in arrays if not is_host_data(a)]
        be = backend_of(on_device[0]) if on_device else get_backend()
    if dtype is None:
        floats = [dtype_name(a.dtype) for a in arrays if hasattr(a, "dtype") and is_floating(a.dtype)]
        dtype = "float64" if "float64" in floats else (floats[0] if floats else get_default_dtype())
    return be, dtype_name(dtype)


def _place(value, be: Backend, dtype: str):
    """``value`` as a backend array on ``be`` in ``dtype``: host data is copied host -> device, and
    -- unlike ``as_tensor`` -- an array of another backend is moved, because ``backend=`` asked for it."""
    if isinstance(value, Tensor):
        value = value.data
    if is_host_data(value):
        return be.from_numpy(host_array(value, dtype))
    src = backend_of(value)
    if src.name != be.name or (be.name == "array_api_strict" and src.device != be.device):
        value = be.from_numpy(host_array(src.to_numpy(value), dtype))  # asked for: an explicit move
    xp = namespace(value)
    return value if dtype_name(value.dtype) == dtype else xp.astype(value, getattr(xp, dtype))


def _data(x, like: Tensor, dim: int, who: str) -> Tensor:
    """Data as a (B, dim) Tensor next to the parameter ``like`` (``as_tensor``: host data is copied
    to its backend in its dtype; Tensors and backend arrays are used where they are)."""
    x = as_tensor(x, like)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{who}: x must be a (batch, {dim}) matrix of examples, got shape {x.shape}")
    return x


def _check_q(q, batch: int, dim: int, who: str):
    if q.batch_shape != (batch,) or q.event_shape != (dim,):
        raise ValueError(
            f"{who}: q must have batch_shape ({batch},) and event_shape ({dim},) -- one distribution over the "
            f"{dim} latent dims per example -- got batch_shape {q.batch_shape} and event_shape {q.event_shape}"
        )


# --------------------------------------------------------------------------------------------------

class LinearGaussian(Module):
    """z ~ N(0, I_k), x | z ~ N(W z + b, diag(psi)): factor analysis, or PPCA when psi is one number.

    ``weight`` W has shape (d, k); ``bias`` b shape (d,) (default 0); ``noise_var`` psi is a number
    or a 0-d array (isotropic: PPCA) or shape (d,) (factor analysis).  The parameters are
    ``weight``, ``bias`` and ``log_noise_var`` (Parameters, so the model can also be trained by
    gradient), on ``backend`` in ``dtype`` (defaults: those of the arrays given, else the current
    backend and default dtype).
    """

    def __init__(self, weight, bias=None, noise_var=1.0, *, dtype=None, backend=None):
        super().__init__()
        be, dt = _resolve_place([weight, bias, noise_var], backend, dtype)
        w = _place(weight, be, dt)
        if w.ndim != 2:
            raise ValueError(f"LinearGaussian: weight must be a (d, k) matrix, got shape {tuple(w.shape)}")
        d, k = (int(s) for s in w.shape)
        xp = namespace(w)
        b = xp.zeros((d,), dtype=w.dtype, device=getattr(w, "device", None)) if bias is None else _place(bias, be, dt)
        if tuple(b.shape) != (d,):
            raise ValueError(f"LinearGaussian: bias must have shape ({d},) to match weight {tuple(w.shape)}, "
                             f"got {tuple(b.shape)}")
        psi = _place(noise_var, be, dt)
        if tuple(psi.shape) not in ((), (d,)):
            raise ValueError(f"LinearGaussian: noise_var must be a number (isotropic, PPCA) or of shape ({d},), "
                             f"got shape {tuple(psi.shape)}")
        if not bool(be.to_numpy(xp.all(psi > 0))):
            raise ValueError(f"LinearGaussian: noise_var must be > 0, got min {float(be.to_numpy(xp.min(psi))):.4g}")
        self.weight = Parameter(w)
        self.bias = Parameter(b)
        self.log_noise_var = Parameter(xp.log(psi))
        self.data_dim, self.latent_dim = d, k

    # -- parameters ----------------------------------------------------------------------------------
    @property
    def isotropic(self) -> bool:
        """True for PPCA (one noise variance shared by all d dims)."""
        return self.log_noise_var.ndim == 0

    def _log_psi(self) -> Tensor:
        lp = self.log_noise_var
        return F.broadcast_to(lp, (self.data_dim,)) if lp.ndim == 0 else lp

    @property
    def noise_var(self) -> Tensor:
        """psi, shape (d,)."""
        return F.exp(self._log_psi())

    def _eye(self, n):
        w = self.weight.data
        return namespace(w).eye(n, dtype=w.dtype, device=getattr(w, "device", None))

    # -- the generative model ------------------------------------------------------------------------
    def prior(self) -> Independent:
        """p(z) = N(0, I_k) as Independent(Normal, 1) (event (k,))."""
        return Independent(Normal.standard((self.latent_dim,), dtype=self.weight.dtype,
                                           backend=backend_of(self.weight.data)), 1)

    def decode(self, z) -> Independent:
        """p(x | z) = N(W z + b, diag(psi)) for z of shape (N, k): batch (N,), event (d,)."""
        loc = F.matmul(z, self.weight.T) + self.bias
        return Independent(Normal.from_log_var(loc, self._log_psi()), 1)

    def marginal(self) -> MultivariateNormal:
        """p(x) = N(b, W W^T + Psi)  (docs/tractable.md#evidence)."""
        cov = F.matmul(self.weight, self.weight.T) + _diag(self.noise_var, self._eye(self.data_dim))
        return MultivariateNormal(self.bias, covariance_matrix=cov)

    def log_marginal(self, x) -> Tensor:
        """log p(x) = log N(x; b, W W^T + Psi) per example, shape (B,) (docs/tractable.md#evidence)."""
        x = _data(x, self.weight, self.data_dim, "LinearGaussian.log_marginal")
        return self.marginal().log_prob(x)

    def posterior_precision(self) -> Tensor:
        """M = W^T Psi^-1 W + I_k, the posterior precision (the same for every x)."""
        return F.matmul(self._wt_psi_inv(), self.weight) + self._eye(self.latent_dim)

    def _wt_psi_inv(self) -> Tensor:
        """W^T Psi^-1, shape (k, d)."""
        return self.weight.T * F.exp(-self._log_psi())

    def posterior(self, x) -> MultivariateNormal:
        """p(z | x) = N(M^-1 W^T Psi^-1 (x - b), M^-1), batch (B,), event (k,) (docs/tractable.md#posterior).

        Usable as the exact encoder ``encode`` of ``scratchvae.elbo.elbo``.
        """
        x = _data(x, self.weight, self.data_dim, "LinearGaussian.posterior")
        # M = L L^T, so M^-1 = A^T A with A = L^-1: two triangular solves, and a covariance that
        # is symmetric by construction (as Cholesky assumes).
        A = F.solve_triangular(F.cholesky(self.posterior_precision()), self._eye(self.latent_dim))
        cov = F.matmul(A.T, A)
        mean = F.matmul(cov, F.matmul(self._wt_psi_inv(), (x - self.bias).T)).T
        return MultivariateNormal(mean, covariance_matrix=cov)

    encode = posterior

    def optimal_diagonal_q(self, x) -> Independent:
        """argmax over diagonal Gaussians q of ELBO(x, q): mean = posterior mean, variance_j = 1 / M_jj.

        (The ELBO of N(m, diag(v)) is, up to constants, -(m - mu)^T M (m - mu) / 2 - sum_j (M_jj v_j -
        log v_j) / 2; docs/tractable.md#the-best-diagonal-q.)  Batch (B,), event (k,).
        """
        post = self.posterior(x)
        log_var = -F.log(F.diagonal(self.posterior_precision()))
        return Independent(Normal.from_log_var(post.loc, log_var), 1)

    # -- the ELBO in closed form ---------------------------------------------------------------------
    def expected_log_likelihood(self, x, q) -> Tensor:
        """E_q[log p(x|z)] = -(d log 2 pi + sum log psi + |Psi^-1/2 (x - W m - b)|^2 + tr(W^T Psi^-1 W S)) / 2.

        ``q``: ``Independent(Normal, 1)`` (S = diag of its variances) or ``MultivariateNormal``
        (S = L L^T), batch (B,), event (k,).  Shape (B,).
        """
        x = _data(x, self.weight, self.data_dim, "LinearGaussian.elbo")
        full = isinstance(q, MultivariateNormal)
        if not (full or (isinstance(q, Independent) and isinstance(q.base_dist, Normal)
                         and q.reinterpreted_batch_ndims == 1)):
            raise TypeError(
                "LinearGaussian.elbo: the closed form needs a Gaussian q over the latent dims -- "
                f"Independent(Normal(...), 1) or MultivariateNormal -- got {q!r}; for other q use "
                "scratchvae.elbo.elbo(x, q_fn, model.decode, model.prior()) (Monte Carlo)"
            )
        _check_q(q, x.shape[0], self.latent_dim, "LinearGaussian.elbo")
        log_psi = self._log_psi()
        inv_psi = F.exp(-log_psi)
        if full:
            m = q.loc
            a = self.weight * F.reshape(F.exp(-0.5 * log_psi), (self.data_dim, 1))  # Psi^-1/2 W
            trace = F.sum(F.square(F.matmul(a, q.scale_tril)), axis=(-2, -1))  # |Psi^-1/2 W L|_F^2
        else:
            m = F.broadcast_to(q.mean, (x.shape[0], self.latent_dim))
            g = F.sum(F.square(self.weight) * F.reshape(inv_psi, (self.data_dim, 1)), axis=0)  # diag(W^T Psi^-1 W)
            trace = F.sum(q.variance * g, axis=-1)
        r = x - F.matmul(m, self.weight.T) - self.bias
        quad = F.sum(F.square(r) * inv_psi, axis=-1)
        return -0.5 * (self.data_dim * F.LOG_2PI + F.sum(log_psi) + quad + trace)

    def elbo(self, x, q) -> Tensor:
        """ELBO(x, q) = E_q[log p(x|z)] - KL(q || N(0, I)) in closed form, shape (B,) (docs/tractable.md#elbo)."""
        ell = self.expected_log_likelihood(x, q)
        return ell - kl_divergence(q, self.prior())

    # -- data and fitting ----------------------------------------------------------------------------
    def sample(self, n: int, generator=None, return_latents: bool = False):
        """n draws x = W z + b + Psi^1/2 eps (no gradient); with ``return_latents`` also z."""
        gen = generator or default_generator()
        be, dt = backend_of(self.weight.data), dtype_name(self.weight.dtype)
        with no_grad():
            z = _tensor(gen.normal((n, self.latent_dim), dtype=dt, backend=be))
            eps = _tensor(gen.normal((n, self.data_dim), dtype=dt, backend=be))
            x = F.matmul(z, self.weight.T) + self.bias + F.sqrt(self.noise_var) * eps
        return (x, z) if return_latents else x

    @classmethod
    def fit_mle(cls, X, k: int, min_noise_var: float | None = None) -> LinearGaussian:
        """The maximum-likelihood PPCA model with k latent dims (Tipping & Bishop 1999, docs/tractable.md#ppca-mle).

        With S = (1/N) sum_n (x_n - xbar)(x_n - xbar)^T = U diag(lambda) U^T (lambda descending):
        b = xbar,  sigma^2 = mean(lambda_{k+1..d}),  W = U_k (diag(lambda_1..k) - sigma^2 I)^1/2
        (up to a rotation of the latent space, which does not change p(x)).  Computed with the data's
        own namespace (``xp.linalg.eigh``), on its backend and in its dtype.

        sigma^2 is floored at ``min_noise_var`` (default: eps * lambda_1, i.e. rounding level): data
        lying exactly in a k-dimensional subspace would otherwise give sigma^2 = 0 and an infinite
        likelihood.
        """
        data = X.data if isinstance(X, Tensor) else X
        if is_host_data(data):
            data = get_backend().from_numpy(host_array(data, get_default_dtype()))
        xp = namespace(data)
        if data.ndim != 2:
            raise ValueError(f"LinearGaussian.fit_mle: X must be an (N, d) matrix of examples, got shape {tuple(data.shape)}")
        n, d = (int(s) for s in data.shape)
        if not (isinstance(k, numbers.Integral) and 1 <= k < d):
            raise ValueError(f"LinearGaussian.fit_mle: k must be an integer with 1 <= k < d = {d}, got {k!r} "
                             "(with k = d the noise variance is 0 and the likelihood unbounded)")
        if n < 2:
            raise ValueError(f"LinearGaussian.fit_mle: need at least 2 examples, got {n}")
        mean = xp.mean(data, axis=0)
        xc = data - mean
        cov = xp.matmul(xp.matrix_transpose(xc), xc) / n
        evals, evecs = xp.linalg.eigh(0.5 * (cov + xp.matrix_transpose(cov)))
        evals, evecs = xp.flip(evals), xp.flip(evecs, axis=1)  # descending
        sigma2 = xp.mean(evals[k:])
        floor = float(xp.finfo(data.dtype).eps) * evals[0] if min_noise_var is None else min_noise_var
        sigma2 = xp.maximum(sigma2, floor) if not isinstance(floor, float) else xp.clip(sigma2, min=floor)
        w = evecs[:, :k] * xp.sqrt(xp.clip(evals[:k] - sigma2, min=0.0))
        return cls(w, mean, sigma2)

    def extra_repr(self) -> str:
        kind = "PPCA (isotropic noise)" if self.isotropic else "factor analysis (diagonal noise)"
        return f"d={self.data_dim}, k={self.latent_dim}, {kind}"


def _diag(v: Tensor, eye) -> Tensor:
    """diag(v) for v of shape (n,), eye an (n, n) identity array."""
    return F.reshape(v, (v.shape[0], 1)) * eye
