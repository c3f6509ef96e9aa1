"""The full-covariance Gaussian N(mu, Sigma), held by the lower Cholesky factor L of Sigma = L L^T.

Every computation goes through L, never through Sigma^-1 or det Sigma (docs/tractable.md#the-full-covariance-gaussian):

    log N(x; mu, Sigma) = -|L^-1 (x - mu)|^2 / 2 - sum_i log L_ii - (n / 2) log(2 pi)
    z = mu + L eps,  eps ~ N(0, I)                (the reparameterized draw)
    H = (n / 2)(1 + log(2 pi)) + sum_i log L_ii

Solving L y = x - mu costs as much as one matrix-vector product with Sigma^-1 would, and it keeps
the condition number of L (the square root of Sigma's), so half as many digits are lost.

This module also registers the closed-form KL divergences between full-covariance Gaussians, and
between a full-covariance Gaussian and a diagonal one (``Independent(Normal(...), 1)``), both ways.
"""

from __future__ import annotations


from .. import functional as F
from ..autograd import Tensor
from ..autograd.tensor import tensor as _tensor
from ..backend import backend_of, dtype_name, namespace
from ..random import default_generator
from . import constraints as C
from .constraints import ValidationError
from .distribution import Distribution, _backend_of, _broadcast_shape, _float_params
from .independent import Independent
from .kl import register_kl
from .normal import Normal

__all__ = ["MultivariateNormal"]

# --------------------------------------------------------------------------------------------------
# small matrix helpers (graph ops, so gradients flow through them)

def _mT(t: Tensor) -> Tensor:
    """Swap the last two axes."""
    axes = tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2)
    return F.transpose(t, axes)


def _eye(n: int, like: Tensor):
    """The n x n identity as a backend array on ``like``'s device, in its dtype (a graph constant)."""
    xp = namespace(like.data)
    return xp.eye(n, dtype=like.dtype, device=getattr(like.data, "device", None))


def _diag_embed(d: Tensor) -> Tensor:
    """(..., n) -> (..., n, n) with d on the diagonal."""
    return F.expand_dims(d, -1) * _eye(d.shape[-1], d)


def _tril_solve(L: Tensor, v: Tensor) -> Tensor:
    """y = L^-1 v for v of shape (..., n), broadcasting L's batch dims (..., n, n) against v's.

    An unbatched L solves every right-hand side at once as the columns of one (n, N) matrix.
    """
    n = L.shape[-1]
    if L.ndim == 2:
        flat = F.reshape(v, (-1, n))
        y = F.solve_triangular(L, F.transpose(flat))
        return F.reshape(F.transpose(y), v.shape)
    batch = _broadcast_shape(v.shape[:-1], L.shape[:-2])
    vb = v if v.shape[:-1] == batch else F.broadcast_to(v, batch + (n,))
    Lb = L if L.shape[:-2] == batch else F.broadcast_to(L, batch + (n, n))
    return F.squeeze(F.solve_triangular(Lb, F.expand_dims(vb, -1)), -1)


def _tril_matvec(L: Tensor, v: Tensor) -> Tensor:
    """L v for v of shape (..., n), broadcasting batch dims."""
    if L.ndim == 2:
        return F.matmul(v, F.transpose(L))
    return F.squeeze(F.matmul(L, F.expand_dims(v, -1)), -1)


def _half_logdet(L: Tensor) -> Tensor:
    """log det(L L^T) / 2 = sum_i log L_ii, shape L.shape[:-2]."""
    return F.sum(F.log(F.diagonal(L)), axis=-1)


# --------------------------------------------------------------------------------------------------

class MultivariateNormal(Distribution):
    """N(loc, Sigma) over R^n, given by ``covariance_matrix=Sigma`` or ``scale_tril=L`` (Sigma = L L^T).

    ``loc`` has shape (..., n) and the matrix (..., n, n); ``batch_shape`` is their broadcast batch
    shape and ``event_shape`` is (n,), so ``log_prob`` returns one value per batch element.
    A covariance matrix is factorized once with ``F.cholesky`` (differentiable); a ``scale_tril``
    must be lower triangular with a positive diagonal; only its lower triangle is read, so the
    gradient on the upper triangle is exactly 0.  docs/tractable.md#the-full-covariance-gaussian.
    """

    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, scale_tril=None, validate_args=None):
        if (covariance_matrix is None) == (scale_tril is None):
            raise ValueError(
                "MultivariateNormal: pass exactly one of covariance_matrix= or scale_tril=, got "
                + ("both" if scale_tril is not None else "neither")
            )
        name = "covariance_matrix" if scale_tril is None else "scale_tril"
        loc, mat = _float_params(loc, covariance_matrix if scale_tril is None else scale_tril)
        if loc.ndim < 1:
            raise ValueError(f"MultivariateNormal: loc needs a last axis of size n (the event), got shape {loc.shape}")
        if mat.ndim < 2 or mat.shape[-1] != mat.shape[-2]:
            raise ValueError(f"MultivariateNormal: {name} must be a (..., n, n) matrix, got shape {mat.shape}")
        n = loc.shape[-1]
        if mat.shape[-1] != n:
            raise ValueError(
                f"MultivariateNormal: loc has event size {n} (shape {loc.shape}) but {name} is "
                f"{mat.shape[-1]} x {mat.shape[-1]} (shape {mat.shape})"
            )
        batch = _broadcast_shape(loc.shape[:-1], mat.shape[:-2])
        super().__init__(batch_shape=batch, event_shape=(n,), validate_args=validate_args)
        self._covariance = None
        if scale_tril is None:
            if self._validate_args:
                C.check_finite("MultivariateNormal", "covariance_matrix", mat.data)
                _check_symmetric(mat)
            try:
                L = F.cholesky(mat)
            except ValueError as e:
                raise ValidationError(
                    f"MultivariateNormal: covariance_matrix of shape {mat.shape} is not positive definite ({e}); "
                    "if it is a sample covariance or a difference of nearly equal matrices, add a small multiple "
                    "of the identity, or pass scale_tril= directly"
                ) from None
            if self._validate_args:  # CuPy's cholesky returns NaNs instead of raising
                xp = namespace(L.data)
                if not bool(_host(xp.all(xp.isfinite(L.data)))):
                    raise ValidationError(
                        f"MultivariateNormal: covariance_matrix of shape {mat.shape} is not positive definite "
                        "(its Cholesky factor has NaNs)"
                    )
            self._covariance = mat
        else:
            L = mat
            if self._validate_args:
                C.check_finite("MultivariateNormal", "scale_tril", L.data)
                C.check_positive("MultivariateNormal", "the diagonal of scale_tril", F.diagonal(L).data)
                _check_lower_triangular(L)
            # Only the lower triangle is the parameter: reading it through tril gives the (zero)
            # upper triangle an exactly zero gradient wherever L is used, so SGD keeps L triangular.
            L = F.tril(L)
        self.loc = loc if loc.shape == batch + (n,) else F.broadcast_to(loc, batch + (n,))
        self.scale_tril = L
        if self._validate_args:
            C.check_finite("MultivariateNormal", "loc", self.loc.data)

    # -- moments -------------------------------------------------------------------------------------
    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def covariance_matrix(self) -> Tensor:
        """Sigma (as given, or L L^T), broadcast to batch_shape + (n, n)."""
        cov = self._covariance if self._covariance is not None else F.matmul(self.scale_tril, _mT(self.scale_tril))
        shape = self.batch_shape + self.event_shape * 2
        return cov if cov.shape == shape else F.broadcast_to(cov, shape)

    @property
    def variance(self) -> Tensor:
        """diag(Sigma)_i = sum_j L_ij^2, shape batch_shape + (n,)."""
        v = F.sum(F.square(self.scale_tril), axis=-1)
        shape = self.batch_shape + self.event_shape
        return v if v.shape == shape else F.broadcast_to(v, shape)

    # -- sampling ------------------------------------------------------------------------------------
    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        """z = loc + L eps, eps ~ N(0, I) drawn in loc's dtype on loc's backend; differentiable in loc and L."""
        shape = self._extended_shape(sample_shape)
        gen = generator or default_generator()
        eps = gen.normal(shape, dtype=dtype_name(self.loc.dtype), backend=_backend_of(self.loc))
        return self.loc + _tril_matvec(self.scale_tril, _tensor(eps))

    # -- densities -----------------------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """log N(x; mu, L L^T) = -|L^-1 (x - mu)|^2 / 2 - sum log L_ii - (n/2) log 2 pi; shape sample + batch."""
        x = self._value(value, self.loc)
        n = self.event_shape[0]
        if x.ndim < 1 or x.shape[-1] != n:
            raise ValueError(
                f"MultivariateNormal.log_prob: the value's last axis must be the event of size {n}, got shape {x.shape}"
            )
        if self._validate_args:
            C.check_not_nan("MultivariateNormal.log_prob", "value", x.data)
        y = _tril_solve(self.scale_tril, x - self.loc)
        return -0.5 * F.sum(F.square(y), axis=-1) - _half_logdet(self.scale_tril) - 0.5 * n * F.LOG_2PI

    def entropy(self) -> Tensor:
        """H = (n/2)(1 + log 2 pi) + sum_i log L_ii, shape batch_shape."""
        n = self.event_shape[0]
        h = _half_logdet(self.scale_tril) + 0.5 * n * (1.0 + F.LOG_2PI)
        return h if h.shape == self.batch_shape else F.broadcast_to(h, self.batch_shape)

    def __repr__(self):
        return (f"MultivariateNormal(batch_shape={self.batch_shape}, event_shape={self.event_shape}, "
                f"dtype={dtype_name(self.loc.dtype)}, device={self.loc.device})")


def _host(a):
    """A 0-d result copied to the host explicitly (the only device -> host traffic of validation)."""
    return backend_of(a).to_numpy(a)


def _check_symmetric(mat: Tensor) -> None:
    """Cholesky reads one triangle only, so a non-symmetric "covariance" would be silently wrong."""
    xp = namespace(mat.data)
    a = mat.data
    at = xp.matrix_transpose(a)
    scale = xp.max(xp.abs(a))
    tol = float(xp.finfo(a.dtype).eps) ** 0.5
    if bool(_host(xp.all(xp.abs(a - at) <= tol * scale))):
        return
    worst = float(_host(xp.max(xp.abs(a - at))))
    raise ValidationError(
        f"MultivariateNormal: covariance_matrix must be symmetric, got max |S - S^T| = {worst:.3g} "
        f"(max |S| = {float(_host(scale)):.3g}) in a tensor of shape {mat.shape}; symmetrize it with "
        "(S + S^T) / 2 if the asymmetry is rounding"
    )


def _check_lower_triangular(L: Tensor) -> None:
    xp = namespace(L.data)
    upper = xp.triu(L.data, k=1)
    if bool(_host(xp.all(upper == 0))):
        return
    worst = float(_host(xp.max(xp.abs(upper))))
    raise ValidationError(
        f"MultivariateNormal: scale_tril must be lower triangular, got an entry of size {worst:.3g} above the "
        f"diagonal in a tensor of shape {L.shape}; build it with F.tril(...) or pass covariance_matrix="
    )


# --------------------------------------------------------------------------------------------------
# KL divergences (docs/tractable.md#kl-between-gaussians)

def _as_diagonal(d):
    """The Normal base of ``Independent(Normal, 1)`` (a diagonal Gaussian over a vector), else None."""
    if isinstance(d, Independent) and isinstance(d.base_dist, Normal) and d.reinterpreted_batch_ndims == 1:
        return d.base_dist
    return None


def _check_event(p, q):
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"kl_divergence: Gaussians over different event shapes {p.event_shape} and {q.event_shape}"
        )


def _kl_gaussians(loc_p, L_p, hld_p, loc_q, L_q, hld_q) -> Tensor:
    """KL(N(mu_p, L_p L_p^T) || N(mu_q, L_q L_q^T)) =
    (|L_q^-1 L_p|_F^2 + |L_q^-1 (mu_q - mu_p)|^2 - n) / 2 + sum log diag L_q - sum log diag L_p."""
    n = loc_p.shape[-1]
    if L_q.ndim == 2 and L_p.ndim == 2:
        M = F.solve_triangular(L_q, L_p)
    else:
        batch = _broadcast_shape(L_p.shape[:-2], L_q.shape[:-2])
        full = batch + (n, n)
        M = F.solve_triangular(L_q if L_q.shape == full else F.broadcast_to(L_q, full),
                    L_p if L_p.shape == full else F.broadcast_to(L_p, full))
    trace = F.sum(F.square(M), axis=(-2, -1))
    maha = F.sum(F.square(_tril_solve(L_q, loc_q - loc_p)), axis=-1)
    return 0.5 * (trace + maha - n) + (hld_q - hld_p)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p: MultivariateNormal, q: MultivariateNormal) -> Tensor:
    _check_event(p, q)
    return _kl_gaussians(p.loc, p.scale_tril, _half_logdet(p.scale_tril),
                         q.loc, q.scale_tril, _half_logdet(q.scale_tril))


@register_kl(Independent, MultivariateNormal)
def _kl_diagonal_mvn(p: Independent, q: MultivariateNormal) -> Tensor:
    """KL(N(m, diag(s^2)) || N(mu, L L^T)): the diagonal Gaussian's factor is diag(s)."""
    base = _as_diagonal(p)
    if base is None:
        return NotImplemented
    _check_event(p, q)
    L_p = _diag_embed(base.scale)
    return _kl_gaussians(base.loc, L_p, F.sum(base.log_scale, axis=-1),
                         q.loc, q.scale_tril, _half_logdet(q.scale_tril))


@register_kl(MultivariateNormal, Independent)
def _kl_mvn_diagonal(p: MultivariateNormal, q: Independent) -> Tensor:
    """KL(N(mu, L L^T) || N(m, diag(s^2))) = (sum_i Sigma_ii / s_i^2 + |(m - mu) / s|^2 - n) / 2
    + sum log s - sum log L_ii: a diagonal q needs no solve, Sigma_ii = sum_j L_ij^2."""
    base = _as_diagonal(q)
    if base is None:
        return NotImplemented
    _check_event(p, q)
    n = p.event_shape[0]
    var_p = F.sum(F.square(p.scale_tril), axis=-1)
    log_s = base.log_scale
    trace = F.sum(var_p * F.exp(-2.0 * log_s), axis=-1)
    maha = F.sum(F.square((base.loc - p.loc) / base.scale), axis=-1)
    return 0.5 * (trace + maha - n) + (F.sum(log_s, axis=-1) - _half_logdet(p.scale_tril))
