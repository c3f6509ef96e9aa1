"""Property-testing helpers for variational inference: hypothesis strategies and the ELBO identity.

The one identity every variational method rests on (docs/tractable.md#the-elbo-identity):

    log p(x) = ELBO(x, q) + KL(q(z) || p(z | x))     for every q,

so ``log p(x) - ELBO`` must equal a KL divergence computed by entirely different code.  On a model
whose evidence and posterior are exact (``scratchvae.models.LinearGaussian``, ``GaussianMixture``,
``NormalNormal``) this checks the ELBO, the KL registry and the posterior against each other for
any q a test cares to draw::

    from hypothesis import given, strategies as st
    from scratchvae.testing import assert_elbo_identity, linear_gaussian_models, data_batches, full_normals

    @given(st.data())
    def test_identity(data):
        model = data.draw(linear_gaussian_models())
        x = data.draw(data_batches(model.data_dim, batch_size=3))
        q = data.draw(full_normals(batch_shape=(3,), dim=model.latent_dim))
        assert_elbo_identity(model, x, q)

Strategies build models and distributions on the *current* backend (``scratchvae.set_backend``)
unless given ``backend=``, in float64 unless given ``dtype=``.  Arguments documented as "int or
strategy" accept either a fixed value or a hypothesis strategy to draw it from.

Hypothesis is a test-time dependency (the ``test`` extra): it is imported when a strategy is
built, never by ``import scratchvae``; ``assert_elbo_identity`` works without it.

Stochastic estimators (a Monte-Carlo ELBO, an IWAE bound, a reparameterized gradient) are checked
against exact targets with a stated false-alarm probability (defined in ``scratchvae.testing_stats``)::

    assert_unbiased(estimator, exact)              # E[estimate] == exact
    assert_lower_bound(estimator, log_px)          # E[estimate] <= log p(x)
    assert_monotone_in_k(iwae_for_k, [1, 4, 16])   # E[IWAE_k] increases with k
    assert_gradient_unbiased(grad_estimator, exact_grad)

``estimator()`` returns fresh draws per call (one draw, or a batch with a leading axis); each check
fails a correct estimator with probability at most ``alpha`` (default 1e-6).  The exact targets --
``exact_elbo``, ``exact_log_marginal``, ``exact_iwae`` (k = 1) and ``exact_elbo_gradient`` -- come
from the tractable models' closed forms (``scratchvae.testing_targets``).
"""

from __future__ import annotations

import numpy as np

from .testing_stats import (
    EstimatorCheck,
    assert_gradient_unbiased,
    assert_lower_bound,
    assert_monotone_in_k,
    assert_unbiased,
    z_threshold,
)
from .testing_targets import exact_elbo, exact_elbo_gradient, exact_iwae, exact_log_marginal

__all__ = [
    "EstimatorCheck",
    "assert_elbo_identity",
    "assert_gradient_unbiased",
    "assert_lower_bound",
    "assert_monotone_in_k",
    "assert_unbiased",
    "batches_for",
    "broadcastable_shape_pairs",
    "categoricals",
    "data_batches",
    "diagonal_normals",
    "exact_elbo",
    "exact_elbo_gradient",
    "exact_iwae",
    "exact_log_marginal",
    "full_normals",
    "gaussian_mixtures",
    "linear_gaussian_models",
    "normal_normal_models",
    "small_vaes",
    "z_threshold",
]


# --------------------------------------------------------------------------------------------------
# the identity

def _host(t):
    from .backend import to_numpy

    return np.asarray(to_numpy(t), dtype=np.float64)


def assert_elbo_identity(model, x, q, rtol: float | None = None) -> dict:
    """Assert log p(x) - ELBO(x, q) == KL(q || p(z|x)) per example, and KL >= 0.

    ``model`` needs ``log_marginal(x)``, ``elbo(x, q)`` and ``posterior(x)`` (the tractable models
    have them); ``kl_divergence(q, model.posterior(x))`` must have a closed form.  The tolerance is
    ``rtol * (1 + |log p(x)| + |ELBO| + |KL|)`` per example: each of the three terms is computed to
    about ``rtol`` relative to its size, so their combination is accurate to ``rtol`` relative to the
    largest of them (default rtol: 1e-9 in float64, 1e-4 in float32 -- a few thousand ulps, room for
    Cholesky factors and solves of moderately conditioned matrices).

    Returns the host arrays {"log_px", "elbo", "kl", "residual"} for further checks; raises
    AssertionError naming the worst examples and what the mismatch suggests.
    """
    __tracebackhide__ = True
    from .distributions import kl_divergence

    log_px = model.log_marginal(x)
    if rtol is None:
        rtol = 1e-4 if "float32" in str(log_px.dtype) else 1e-9
    elbo = model.elbo(x, q)
    kl = kl_divergence(q, model.posterior(x))
    lp, el, k = _host(log_px), _host(elbo), _host(kl)
    if not lp.shape == el.shape == k.shape:
        raise AssertionError(
            f"assert_elbo_identity: log p(x), ELBO and KL must have one value per example, got shapes "
            f"{lp.shape}, {el.shape}, {k.shape} (model {type(model).__name__}, q {q!r})"
        )
    resid = lp - el - k
    tol = rtol * (1.0 + np.abs(lp) + np.abs(el) + np.abs(k))
    bad = ~np.isfinite(resid) | (np.abs(resid) > tol) | (k < -tol)
    out = {"log_px": lp, "elbo": el, "kl": k, "residual": resid}
    if not bad.any():
        return out
    order = np.argsort(-np.where(np.isfinite(resid), np.abs(resid), np.inf).ravel())
    rows = [f"  {'example':>7} {'log p(x)':>14} {'ELBO':>14} {'KL(q||post)':>14} {'residual':>11} {'tolerance':>10}"]
    for i in order[:5]:
        rows.append(f"  {i:>7} {lp.ravel()[i]:>14.8g} {el.ravel()[i]:>14.8g} {k.ravel()[i]:>14.8g} "
                    f"{resid.ravel()[i]:>11.3g} {tol.ravel()[i]:>10.2g}")
    hints = []
    if (k < -tol).any():
        hints.append("KL(q || posterior) is negative: the KL closed form or the posterior is wrong")
    if (el > lp + tol).any():
        hints.append("the ELBO exceeds log p(x): the ELBO (or log p(x)) is wrong, a bound cannot pass the evidence")
    if not np.isfinite(resid).all():
        hints.append("non-finite values: check the parameters (scales > 0) and the dtype")
    if not hints:
        hints.append("log p(x) - ELBO differs from KL(q || posterior): one of log_marginal, elbo, posterior or the "
                     "KL rule is wrong (or the dtype is too narrow for rtol)")
    raise AssertionError(
        f"ELBO identity log p(x) = ELBO(q) + KL(q || p(z|x)) fails for {int(bad.sum())} of {bad.size} examples "
        f"(rtol={rtol:g}) -- model {model!r}, q {q!r}:\n" + "\n".join(rows) + "\n" + "; ".join(hints)
    )


# --------------------------------------------------------------------------------------------------
# strategies

def _hyp():
    try:
        import hypothesis.extra.numpy as hnp
        from hypothesis import strategies as st
    except ImportError as e:  # pragma: no cover - hypothesis is in the test extra
        raise ImportError(
            "scratchvae.testing strategies need hypothesis (a test dependency): pip install hypothesis "
            "(or scratchvae[test])"
        ) from e
    return st, hnp


def _draw(draw, v):
    """A fixed value, or a draw when ``v`` is a strategy."""
    st, _ = _hyp()
    return draw(v) if isinstance(v, st.SearchStrategy) else v


def _shape(draw, v) -> tuple:
    s = _draw(draw, v)
    return (int(s),) if isinstance(s, (int, np.integer)) else tuple(int(n) for n in s)


def _array(draw, shape, lo, hi):
    """A float64 host array of ``shape`` with elements in [lo, hi] (shrinks towards 0 / lo)."""
    st, hnp = _hyp()
    return draw(hnp.arrays(np.float64, tuple(shape), elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False)))


def _backend(backend):
    from .backend import resolve_backend

    return resolve_backend(backend)


def _t(be, a, dtype):
    from .autograd.tensor import tensor

    return tensor(be.from_numpy(np.asarray(a, dtype=dtype)))


def _tril(draw, shape, n, log_diag=(-1.5, 1.0), off=(-1.0, 1.0)):
    """Lower-triangular matrices (shape + (n, n)) with diagonal exp(U[log_diag]) and off-diagonals in ``off``."""
    a = np.tril(_array(draw, tuple(shape) + (n, n), *off), -1)
    d = np.exp(_array(draw, tuple(shape) + (n,), *log_diag))
    return a + d[..., None] * np.eye(n)


def linear_gaussian_models(data_dim=None, latent_dim=None, isotropic=None, weight=(-2.0, 2.0),
                           noise_var=(0.05, 4.0), bias=(-3.0, 3.0), dtype="float64", backend=None):
    """Strategy for ``LinearGaussian`` models (PPCA when isotropic, else factor analysis).

    ``data_dim`` d (int or strategy, default 1..4), ``latent_dim`` k (default 1..3), ``isotropic``
    (bool or strategy, default both); entries of W, b and psi are drawn from the given ranges.
    """
    st, _ = _hyp()
    from .models.linear_gaussian import LinearGaussian

    data_dim = st.integers(1, 4) if data_dim is None else data_dim
    latent_dim = st.integers(1, 3) if latent_dim is None else latent_dim
    isotropic = st.booleans() if isotropic is None else isotropic

    @st.composite
    def build(draw):
        d, k, iso = int(_draw(draw, data_dim)), int(_draw(draw, latent_dim)), bool(_draw(draw, isotropic))
        w = _array(draw, (d, k), *weight)
        b = _array(draw, (d,), *bias)
        psi = _array(draw, () if iso else (d,), *noise_var)
        return LinearGaussian(w, b, psi, dtype=dtype, backend=_backend(backend))

    return build()


def gaussian_mixtures(n_components=None, dim=None, covariance_type=None, means=(-4.0, 4.0),
                      variances=(0.05, 4.0), weights=(0.05, 1.0), dtype="float64", backend=None):
    """Strategy for ``GaussianMixture`` models: K (default 1..4) components in d (default 1..3) dims,
    ``covariance_type`` "diag" or "full" (default both)."""
    st, _ = _hyp()
    from .models.gaussian_mixture import GaussianMixture

    n_components = st.integers(1, 4) if n_components is None else n_components
    dim = st.integers(1, 3) if dim is None else dim
    covariance_type = st.sampled_from(["diag", "full"]) if covariance_type is None else covariance_type

    @st.composite
    def build(draw):
        K, d, ct = int(_draw(draw, n_components)), int(_draw(draw, dim)), _draw(draw, covariance_type)
        w = _array(draw, (K,), *weights)
        mu = _array(draw, (K, d), *means)
        be = _backend(backend)
        if ct == "diag":
            return GaussianMixture.from_params(w, mu, _array(draw, (K, d), *variances), dtype=dtype, backend=be)
        lo, hi = np.log(variances[0]) / 2, np.log(variances[1]) / 2
        L = _tril(draw, (K,), d, log_diag=(lo, hi))
        return GaussianMixture.from_params(w, mu, covariances=L @ np.swapaxes(L, -1, -2), dtype=dtype, backend=be)

    return build()


def normal_normal_models(prior_loc=(-3.0, 3.0), prior_scale=(0.1, 5.0), noise_scale=(0.1, 5.0),
                         dtype="float64", backend=None):
    """Strategy for ``NormalNormal`` models with parameters drawn from the given ranges."""
    st, _ = _hyp()
    from .models.normal_normal import NormalNormal

    @st.composite
    def build(draw):
        f = lambda r: draw(st.floats(*r, allow_nan=False))
        return NormalNormal(f(prior_loc), f(prior_scale), f(noise_scale), dtype=dtype, backend=_backend(backend))

    return build()


def diagonal_normals(batch_shape=(), event_shape=(), loc=(-3.0, 3.0), log_scale=(-2.0, 1.5),
                     dtype="float64", backend=None):
    """Strategy for diagonal Gaussians: ``Independent(Normal, len(event_shape))`` (a plain ``Normal``
    when event_shape is ()).  Shapes are tuples, ints or strategies of them."""
    st, _ = _hyp()
    from .distributions import Independent, Normal

    @st.composite
    def build(draw):
        bs, es = _shape(draw, batch_shape), _shape(draw, event_shape)
        be = _backend(backend)
        base = Normal.from_log_scale(_t(be, _array(draw, bs + es, *loc), dtype),
                                     _t(be, _array(draw, bs + es, *log_scale), dtype))
        return Independent(base, len(es)) if es else base

    return build()


def full_normals(batch_shape=(), dim=2, loc=(-3.0, 3.0), log_diag=(-1.5, 1.0), off_diag=(-1.0, 1.0),
                 dtype="float64", backend=None):
    """Strategy for full-covariance ``MultivariateNormal`` over R^dim: scale_tril with diagonal
    exp(U[log_diag]) and off-diagonal entries in ``off_diag``."""
    st, _ = _hyp()
    from .distributions.multivariate_normal import MultivariateNormal

    @st.composite
    def build(draw):
        bs, n = _shape(draw, batch_shape), int(_draw(draw, dim))
        be = _backend(backend)
        L = _tril(draw, bs, n, log_diag, off_diag)
        return MultivariateNormal(_t(be, _array(draw, bs + (n,), *loc), dtype), scale_tril=_t(be, L, dtype))

    return build()


def categoricals(batch_shape=(), num_categories=None, logits=(-6.0, 6.0), allow_zeros: bool = False,
                 dtype="float64", backend=None):
    """Strategy for ``Categorical`` distributions (default 1..5 categories) from logits in the range;
    with ``allow_zeros`` some categories (never all) get probability exactly 0."""
    st, _ = _hyp()
    from .distributions import Categorical

    num_categories = st.integers(1, 5) if num_categories is None else num_categories

    @st.composite
    def build(draw):
        bs, K = _shape(draw, batch_shape), int(_draw(draw, num_categories))
        be = _backend(backend)
        lg = _array(draw, bs + (K,), *logits)
        if not allow_zeros:
            return Categorical(logits=_t(be, lg, dtype))
        p = np.exp(lg - lg.max(axis=-1, keepdims=True))
        zero = draw(st.lists(st.booleans(), min_size=p.size, max_size=p.size))
        zero = np.asarray(zero, dtype=bool).reshape(p.shape)
        zero &= p < 1.0  # the largest stays positive: never all zero
        return Categorical(probs=_t(be, np.where(zero, 0.0, p), dtype))

    return build()


def data_batches(dim, batch_size=None, elements=(-5.0, 5.0)):
    """Strategy for (batch_size, dim) float64 NumPy arrays of examples (default batch 1..5)."""
    st, _ = _hyp()
    batch_size = st.integers(1, 5) if batch_size is None else batch_size

    @st.composite
    def build(draw):
        return _array(draw, (int(_draw(draw, batch_size)), int(_draw(draw, dim))), *elements)

    return build()


def small_vaes(input_dim=None, latent_dim=None, hidden=None, likelihood="bernoulli", activation="tanh",
               dtype="float64", backend=None):
    """Strategy for small random VAEs (``VAE.mlp``): their ``encode`` and ``decode`` are the
    encoder q(z|x) and decoder p(x|z) a user's ELBO code takes.  ``input_dim`` (default 2..8),
    ``latent_dim`` (1..3) and ``hidden`` (a tuple of widths; default 1 or 2 layers of 2..6) are
    values or strategies; the weights come from a drawn seed, on ``backend`` in ``dtype``."""
    st, _ = _hyp()
    from .models import VAE
    from .random import Generator

    input_dim = st.integers(2, 8) if input_dim is None else input_dim
    latent_dim = st.integers(1, 3) if latent_dim is None else latent_dim
    hidden = st.lists(st.integers(2, 6), min_size=1, max_size=2).map(tuple) if hidden is None else hidden

    @st.composite
    def build(draw):
        seed = draw(st.integers(0, 2**31 - 1))
        return VAE.mlp(int(_draw(draw, input_dim)), tuple(_draw(draw, hidden)), int(_draw(draw, latent_dim)),
                       activation, likelihood=likelihood, dtype=dtype, backend=_backend(backend),
                       generator=Generator(seed))

    return build()


def batches_for(model, batch_size=None):
    """Strategy for a data batch that fits ``model`` (a VAE): binary (B, input_dim) images for a
    Bernoulli likelihood, values in [-3, 3] for a Gaussian one, as float64 NumPy arrays."""
    st, _ = _hyp()
    batch_size = st.integers(1, 5) if batch_size is None else batch_size
    d = int(model.config["input_dim"])
    binary = model.config["likelihood"] == "bernoulli"

    @st.composite
    def build(draw):
        b = int(_draw(draw, batch_size))
        if binary:
            bits = draw(st.lists(st.booleans(), min_size=b * d, max_size=b * d))
            return np.asarray(bits, dtype=np.float64).reshape(b, d)
        return _array(draw, (b, d), -3.0, 3.0)

    return build()


def broadcastable_shape_pairs(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Strategy for pairs of shapes (a, b) that broadcast together (for testing binary ops)."""
    _st, hnp = _hyp()
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(lambda r: r.input_shapes)
