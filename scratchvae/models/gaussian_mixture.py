"""The Gaussian mixture: a VAE whose latent is one of K labels, so every expectation is a finite sum.

    z ~ Categorical(pi),    x | z = k ~ N(mu_k, Sigma_k)    (Sigma_k diagonal, or full)

* log p(x) = logsumexp_k (log pi_k + log N(x; mu_k, Sigma_k))          (exact);
* p(z | x) = the responsibilities r_k = softmax_k(log pi_k + log N(x; mu_k, Sigma_k));
* ELBO(x, q) = sum_k q_k log p(x, z = k) + H[q]   for any categorical q;
* EM alternates the two coordinate-ascent steps of that ELBO: the E-step sets q to the posterior
  (the bound becomes tight), the M-step maximizes it over the parameters with q fixed (closed form).
  ``fit_em`` records the ELBO and log p(x) after every half-step, so both claims can be checked.

docs/vae_and_gmm.md derives each formula and relates EM to the VAE's gradient ascent.

Collapse guard.  The likelihood of a mixture is unbounded: a component centred on one data point
whose variance shrinks to 0 sends log p(x) to +infinity.  The M-step therefore maximizes over
covariances whose eigenvalues are at least a floor, ``var_floor = rel_var_floor * (mean per-dimension
variance of the data)`` (default rel_var_floor = 1e-6).  For a diagonal covariance the constrained
maximizer is the weighted variance clipped at the floor; for a full one it is the weighted
covariance with its eigenvalues clipped at the floor.  Both are exact maximizers over the
constrained set, so EM's monotonicity is kept (docs/vae_and_gmm.md#the-variance-floor).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..autograd.tensor import tensor as _tensor
from ..backend import backend_of, host_array, namespace
from ..distributions import Categorical, Independent, Normal
from ..distributions.multivariate_normal import MultivariateNormal
from ..nn.module import Module, Parameter
from ..random import default_generator
from .linear_gaussian import _data, _place, _resolve_place

__all__ = ["EMHistory", "GaussianMixture"]

_COVARIANCE_TYPES = ("diag", "full")


@dataclass
class EMHistory:
    """What ``fit_em`` did, one entry per half-step: ``steps[i]`` is "init", "E" or "M".

    ``elbo[i]`` and ``log_px[i]`` are the ELBO and the exact log p(x), both averaged over the data
    (nats per example), right after step i, with ``iterations[i]`` its EM iteration (0 for "init",
    whose q is uniform over the components).  ``converged`` says whether the last M-step improved
    the mean log p(x) by less than ``tol``; ``var_floor`` is the absolute variance floor used.
    """

    steps: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    elbo: list = field(default_factory=list)
    log_px: list = field(default_factory=list)
    converged: bool = False
    var_floor: float = 0.0

    @property
    def n_iter(self) -> int:
        return self.iterations[-1] if self.iterations else 0

    def after(self, step: str) -> tuple:
        """(elbo values, log p(x) values) right after every ``step`` ("E" or "M")."""
        idx = [i for i, s in enumerate(self.steps) if s == step]
        return [self.elbo[i] for i in idx], [self.log_px[i] for i in idx]


class GaussianMixture(Module):
    """K Gaussian components in R^d with mixing weights softmax(logits).

    Parameters: ``logits`` (K,), ``means`` (K, d), and ``log_vars`` (K, d) for
    ``covariance_type="diag"`` or ``scale_tril`` (K, d, d), the Cholesky factors of the
    covariances, for ``"full"``.  A new mixture has equal weights, means drawn from N(0, I) with
    ``generator`` and unit covariances; ``from_params`` sets them, ``fit_em`` fits them.
    """

    def __init__(self, n_components: int, dim: int, covariance_type: str = "diag", *, dtype=None,
                 backend=None, generator=None):
        super().__init__()
        for what, n in (("n_components", n_components), ("dim", dim)):
            if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
                raise ValueError(f"GaussianMixture: {what} must be a positive integer, got {n!r}")
        if covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"GaussianMixture: covariance_type must be one of {_COVARIANCE_TYPES}, got {covariance_type!r}")
        K, d = int(n_components), int(dim)
        be, dt = _resolve_place([], backend, dtype)
        gen = generator or default_generator()
        self.n_components, self.dim, self.covariance_type = K, d, covariance_type
        means = gen.normal((K, d), dtype=dt, backend=be)  # the only draw; the rest is made next to it
        xp, like = namespace(means), {"dtype": means.dtype, "device": getattr(means, "device", None)}
        self.logits = Parameter(xp.zeros((K,), **like))
        self.means = Parameter(means)
        if covariance_type == "diag":
            self.log_vars = Parameter(xp.zeros((K, d), **like))
        else:
            self.scale_tril = Parameter(xp.asarray(xp.broadcast_to(xp.eye(d, **like), (K, d, d)), copy=True))

    @classmethod
    def from_params(cls, weights, means, variances=None, *, covariances=None, dtype=None,
                    backend=None) -> GaussianMixture:
        """A mixture with the given weights (K,), means (K, d), and ``variances`` (K, d) (diagonal) or
        ``covariances`` (K, d, d) (full).  Weights need not sum to 1 (they are normalized)."""
        if (variances is None) == (covariances is None):
            raise ValueError("GaussianMixture.from_params: pass exactly one of variances= (diagonal, (K, d)) or "
                             "covariances= (full, (K, d, d))")
        be, dt = _resolve_place([weights, means, variances, covariances], backend, dtype)
        w, mu = _place(weights, be, dt), _place(means, be, dt)
        if mu.ndim != 2 or tuple(w.shape) != (mu.shape[0],):
            raise ValueError(f"GaussianMixture.from_params: means must be (K, d) and weights (K,), got shapes "
                             f"{tuple(mu.shape)} and {tuple(w.shape)}")
        K, d = (int(s) for s in mu.shape)
        xp = namespace(mu)
        if not bool(be.to_numpy(xp.all(w > 0))):
            raise ValueError("GaussianMixture.from_params: weights must be > 0 (drop a component rather than give it "
                             "weight 0)")
        full = covariances is not None
        m = cls(K, d, "full" if full else "diag", dtype=dt, backend=be)
        m.logits.data = xp.log(w / xp.sum(w))
        m.means.data = xp.asarray(mu, copy=True)
        if full:
            cov = _place(covariances, be, dt)
            if tuple(cov.shape) != (K, d, d):
                raise ValueError(f"GaussianMixture.from_params: covariances must be ({K}, {d}, {d}), got {tuple(cov.shape)}")
            m.scale_tril.data = xp.linalg.cholesky(cov)
        else:
            var = _place(variances, be, dt)
            if tuple(var.shape) != (K, d):
                raise ValueError(f"GaussianMixture.from_params: variances must be ({K}, {d}), got {tuple(var.shape)}")
            if not bool(be.to_numpy(xp.all(var > 0))):
                raise ValueError("GaussianMixture.from_params: variances must be > 0")
            m.log_vars.data = xp.log(var)
        return m

    # -- parameters ----------------------------------------------------------------------------------
    @property
    def weights(self) -> Tensor:
        """pi = softmax(logits), shape (K,)."""
        return F.exp(self.log_weights())

    def log_weights(self) -> Tensor:
        return self.logits - F.logsumexp(self.logits, axis=-1, keepdims=True)

    @property
    def variances(self) -> Tensor:
        """The covariances' diagonals, shape (K, d)."""
        if self.covariance_type == "diag":
            return F.exp(self.log_vars)
        return F.sum(F.square(F.tril(self.scale_tril)), axis=-1)

    @property
    def covariances(self) -> Tensor:
        """Sigma_k, shape (K, d, d)."""
        if self.covariance_type == "full":
            return self.components().covariance_matrix
        return F.expand_dims(self.variances, -1) * _eye(self.dim, self.means)

    # -- the generative model ------------------------------------------------------------------------
    def prior(self) -> Categorical:
        """p(z) = Categorical(pi) over the K components."""
        return Categorical(logits=self.logits)

    def components(self):
        """The K components p(x | z = k) as one distribution with batch (K,), event (d,)."""
        if self.covariance_type == "diag":
            return Independent(Normal.from_log_var(self.means, self.log_vars), 1)
        # tril: only the lower triangle is a parameter, so gradient steps never fill the upper one
        return MultivariateNormal(self.means, scale_tril=F.tril(self.scale_tril))

    def decode(self, z) -> Independent | MultivariateNormal:
        """p(x | z) for integer labels z of shape (N,): batch (N,), event (d,)."""
        idx = z.data if isinstance(z, Tensor) else z
        if self.covariance_type == "diag":
            return Independent(Normal.from_log_var(F.getitem(self.means, idx), F.getitem(self.log_vars, idx)), 1)
        return MultivariateNormal(F.getitem(self.means, idx), scale_tril=F.tril(F.getitem(self.scale_tril, idx)))

    def log_joint(self, x) -> Tensor:
        """log p(x, z = k) = log pi_k + log N(x; mu_k, Sigma_k), shape (B, K)."""
        x = _data(x, self.means, self.dim, "GaussianMixture")
        return self.log_weights() + self.components().log_prob(F.expand_dims(x, 1))

    def log_marginal(self, x) -> Tensor:
        """log p(x) = logsumexp_k log p(x, z = k), shape (B,) (docs/vae_and_gmm.md#evidence-and-posterior)."""
        return F.logsumexp(self.log_joint(x), axis=-1)

    def posterior(self, x) -> Categorical:
        """p(z | x): the responsibilities softmax_k log p(x, z = k), batch (B,)."""
        return Categorical(logits=self.log_joint(x))

    encode = posterior

    def elbo(self, x, q: Categorical) -> Tensor:
        """ELBO(x, q) = sum_k q_k log p(x, z = k) + H[q], shape (B,) (docs/vae_and_gmm.md#the-elbo-of-a-mixture).

        ``q`` is any Categorical over the K components with batch (B,); components with q_k = 0
        contribute nothing (0 log 0 = 0), whatever their log p(x, k).
        """
        lj = self.log_joint(x)
        if not isinstance(q, Categorical):
            raise TypeError(f"GaussianMixture.elbo: q must be a Categorical over the {self.n_components} components, "
                            f"got {q!r}")
        if q.batch_shape != (lj.shape[0],) or q.num_categories != self.n_components:
            raise ValueError(
                f"GaussianMixture.elbo: q must have batch_shape ({lj.shape[0]},) and {self.n_components} categories, "
                f"got batch_shape {q.batch_shape} and {q.num_categories} categories"
            )
        return _elbo_from_joint(lj, q)

    def sample(self, n: int, generator=None, return_labels: bool = False):
        """n draws (no gradient): z ~ Categorical(pi), x ~ N(mu_z, Sigma_z); with ``return_labels`` also z."""
        with no_grad():
            z = self.prior().sample((n,), generator=generator)
            x = self.decode(z).sample(generator=generator)
        return (x, z) if return_labels else x

    # -- EM ------------------------------------------------------------------------------------------
    def fit_em(self, X, max_iter: int = 100, tol: float = 1e-8, init: str | None = "k-means++",
               rel_var_floor: float = 1e-6, generator=None) -> EMHistory:
        """Fit by expectation-maximization, in place; returns the ELBO / log p(x) after every half-step.

        ``init="k-means++"`` picks the means by k-means++ seeding (Arthur & Vassilvitskii 2007: the
        first uniformly from the data, each next one with probability proportional to its squared
        distance to the nearest mean chosen so far), sets every covariance to the data's
        per-dimension variance and the weights equal; ``init=None`` starts from the current
        parameters.  Stops after ``max_iter`` iterations or when an M-step improves the mean log p(x)
        by less than ``tol`` nats.  See the module docstring for the variance floor.
        """
        if init not in ("k-means++", None):
            raise ValueError(f'GaussianMixture.fit_em: init must be "k-means++" or None, got {init!r}')
        if not rel_var_floor > 0:
            raise ValueError(f"GaussianMixture.fit_em: rel_var_floor must be > 0 (it keeps components from "
                             f"collapsing onto single points), got {rel_var_floor}")
        X = _data(X, self.means, self.dim, "GaussianMixture.fit_em")
        x = X.data
        xp = namespace(x)
        be = backend_of(x)
        n = int(x.shape[0])
        if n < self.n_components:
            raise ValueError(f"GaussianMixture.fit_em: {n} examples cannot seed {self.n_components} components")
        data_var = xp.mean(xp.square(x - xp.mean(x, axis=0)), axis=0)
        floor = rel_var_floor * float(be.to_numpy(xp.mean(data_var)))  # one explicit host copy
        if floor <= 0:
            raise ValueError("GaussianMixture.fit_em: the data has zero variance (all examples equal)")
        hist = EMHistory(var_floor=floor)
        with no_grad():
            if init == "k-means++":
                self._init_kmeans_pp(x, xp.clip(data_var, min=floor), generator or default_generator())
            else:
                self._clip_to_floor(floor)
            uniform = Categorical(logits=_tensor(xp.zeros((n, self.n_components), dtype=x.dtype,
                                                          device=getattr(x, "device", None))))
            lj = self._record(hist, "init", 0, X, uniform)
            for it in range(1, max_iter + 1):
                q = Categorical(logits=lj)  # E-step: q = p(z | x) under the current parameters
                before = hist.log_px[-1]
                self._record(hist, "E", it, X, q, lj)
                self._m_step(x, q.probs.data, floor)
                lj = self._record(hist, "M", it, X, q)
                if hist.log_px[-1] - before < tol:
                    hist.converged = True
                    break
        return hist

    def _record(self, hist: EMHistory, step: str, it: int, X: Tensor, q: Categorical, lj=None) -> Tensor:
        """Append the mean ELBO(q) and mean log p(x) (host floats) and return log p(x, z) (B, K)."""
        lj = self.log_joint(X) if lj is None else lj
        elbo = _elbo_from_joint(lj, q)
        hist.steps.append(step)
        hist.iterations.append(it)
        hist.elbo.append(F.mean(elbo).item())
        hist.log_px.append(F.mean(F.logsumexp(lj, axis=-1)).item())
        return lj

    def _m_step(self, x, r, floor: float) -> None:
        """argmax over the parameters of sum_n ELBO(x_n, r_n), with covariance eigenvalues >= floor.

        N_k = sum_n r_nk,  pi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,
        Sigma_k = clip_eig(sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k, floor).
        N_k is floored at the smallest normal number: a component no example is responsible for
        keeps a negligible weight instead of log 0 = -inf (docs/vae_and_gmm.md#em-as-coordinate-ascent).
        """
        xp = namespace(x)
        n = x.shape[0]
        tiny = float(xp.finfo(x.dtype).smallest_normal)
        nk = xp.clip(xp.sum(r, axis=0), min=tiny)                      # (K,)
        mu = xp.matmul(xp.matrix_transpose(r), x) / nk[:, None]        # (K, d)
        diff = x[:, None, :] - mu[None, :, :]                          # (N, K, d)
        self.logits.data = xp.log(nk) - math.log(n)
        self.means.data = mu
        if self.covariance_type == "diag":
            var = xp.sum(r[:, :, None] * xp.square(diff), axis=0) / nk[:, None]
            self.log_vars.data = xp.log(xp.clip(var, min=floor))
        else:
            dk = xp.permute_dims(diff, (1, 0, 2))                       # (K, N, d)
            weighted = xp.matrix_transpose(xp.permute_dims(r, (1, 0))[:, :, None] * dk)  # (K, d, N)
            cov = xp.matmul(weighted, dk) / nk[:, None, None]
            self.scale_tril.data = xp.linalg.cholesky(_clip_eigenvalues(cov, floor))

    def _clip_to_floor(self, floor: float) -> None:
        xp = namespace(self.means.data)
        if self.covariance_type == "diag":
            self.log_vars.data = xp.clip(self.log_vars.data, min=math.log(floor))
        else:
            cov = self.covariances.data
            self.scale_tril.data = xp.linalg.cholesky(_clip_eigenvalues(cov, floor))

    def _init_kmeans_pp(self, x, var, generator) -> None:
        """k-means++ seeding of the means; covariances diag(var); equal weights.

        The draws proportional to D(x)^2 are made on the host from the squared distances (one
        explicit copy of N numbers per component).
        """
        xp = namespace(x)
        be = backend_of(x)
        rng = generator.numpy()
        n = int(x.shape[0])
        first = int(rng.integers(n))
        centers = [x[first:first + 1, :]]
        d2 = xp.sum(xp.square(x - centers[0]), axis=1)
        for _ in range(1, self.n_components):
            p = host_array(be.to_numpy(d2), "float64")
            total = p.sum()
            i = int(rng.integers(n)) if not total > 0 else int(rng.choice(n, p=p / total))
            centers.append(x[i:i + 1, :])
            d2 = xp.minimum(d2, xp.sum(xp.square(x - centers[-1]), axis=1))
        K, d = self.n_components, self.dim
        self.means.data = xp.concat(centers, axis=0)
        self.logits.data = xp.zeros((K,), dtype=x.dtype, device=getattr(x, "device", None))
        if self.covariance_type == "diag":
            self.log_vars.data = xp.broadcast_to(xp.log(var)[None, :], (K, d)) * 1.0
        else:
            std = xp.sqrt(var)
            eye = xp.eye(d, dtype=x.dtype, device=getattr(x, "device", None))
            self.scale_tril.data = xp.broadcast_to((std[:, None] * eye)[None, ...], (K, d, d)) * 1.0

    def extra_repr(self) -> str:
        return f"n_components={self.n_components}, dim={self.dim}, covariance_type={self.covariance_type!r}"


def _eye(n: int, like: Tensor):
    xp = namespace(like.data)
    return xp.eye(n, dtype=like.dtype, device=getattr(like.data, "device", None))


def _clip_eigenvalues(cov, floor: float):
    """U max(Lambda, floor) U^T for symmetric cov = U Lambda U^T (batched)."""
    xp = namespace(cov)
    cov = 0.5 * (cov + xp.matrix_transpose(cov))
    evals, evecs = xp.linalg.eigh(cov)
    evals = xp.clip(evals, min=floor)
    out = xp.matmul(evecs * evals[..., None, :], xp.matrix_transpose(evecs))
    return 0.5 * (out + xp.matrix_transpose(out))


def _elbo_from_joint(lj: Tensor, q) -> Tensor:
    """sum_k q_k log p(x, z = k) + H[q] from log p(x, z) of shape (B, K), with 0 log 0 = 0
    (docs/vae_and_gmm.md#the-elbo-of-a-mixture)."""
    probs = q.probs
    return F.sum(F.where(probs.data > 0, probs * lj, 0.0), axis=-1) + q.entropy()
