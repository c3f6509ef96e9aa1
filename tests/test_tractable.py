"""The ELBO identity on models where everything is exact, the full-covariance Gaussian it needs, and
the NormalNormal model.

log p(x) = ELBO(x, q) + KL(q || p(z|x)) for every q (docs/tractable.md#the-elbo-identity) is checked
by hypothesis on random models and random q: the three terms are computed by three unrelated code
paths (the marginal density, the closed-form ELBO, the KL registry against the exact posterior), so
any error in one of them breaks it.

Tolerances (float64, eps = 2.2e-16):
* identity and exactness checks: 1e-9 relative to the size of the terms (``assert_elbo_identity``).
  Every term goes through a Cholesky factor or a solve of a matrix whose condition number the
  strategies keep below ~1e4 (noise variance >= 0.05, |W| <= 2), which costs at most ~1e4 ulps;
  1e-9 leaves two orders of magnitude of margin and still catches any wrong term (a wrong formula
  is off by O(1)).
* comparisons with NumPy reference formulas: 1e-10 relative (same argument, fewer steps).
* Monte-Carlo checks: 5 standard errors (estimated from the draws or known in closed form) with
  fixed seeds -- a false failure would need a 5-sigma event, ~6e-7 per comparison.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.distributions import (
    Categorical,
    Independent,
    Normal,
    ValidationError,
    kl_divergence,
)
from scratchvae.distributions.kl import kl_monte_carlo
from scratchvae.distributions.multivariate_normal import MultivariateNormal
from scratchvae.elbo import elbo, iwae_bound, log_likelihood
from scratchvae.models.gaussian_mixture import GaussianMixture
from scratchvae.models.linear_gaussian import LinearGaussian
from scratchvae.models.normal_normal import NormalNormal
from scratchvae.testing import (
    assert_elbo_identity,
    broadcastable_shape_pairs,
    categoricals,
    data_batches,
    diagonal_normals,
    full_normals,
    gaussian_mixtures,
    linear_gaussian_models,
    normal_normal_models,
)

LOG2PI = math.log(2 * math.pi)
pytestmark = pytest.mark.usefixtures("float64")


def _np(t):
    return sv.to_numpy(t)


def np_mvn_logpdf(x, mu, cov):
    """Reference: log N(x; mu, cov) through the inverse and slogdet (not the code's Cholesky path)."""
    r = x - mu
    quad = np.einsum("...i,...ij,...j->...", r, np.linalg.inv(cov), r)
    return -0.5 * quad - 0.5 * np.linalg.slogdet(cov)[1] - 0.5 * mu.shape[-1] * LOG2PI


def np_kl_gauss(m1, c1, m2, c2):
    """Reference KL(N(m1, c1) || N(m2, c2)) = (tr(c2^-1 c1) + d^T c2^-1 d - n + log|c2| - log|c1|) / 2."""
    inv2 = np.linalg.inv(c2)
    d = m2 - m1
    return 0.5 * (np.trace(inv2 @ c1, axis1=-2, axis2=-1) + np.einsum("...i,...ij,...j->...", d, inv2, d)
                  - m1.shape[-1] + np.linalg.slogdet(c2)[1] - np.linalg.slogdet(c1)[1])


def lg_reference(model):
    """W, b, psi as NumPy arrays."""
    return _np(model.weight), _np(model.bias), _np(model.noise_var)


# ==================================================================================================
# MultivariateNormal

@given(data=st.data(), batch=st.sampled_from([(), (3,)]), n=st.integers(1, 4))
def test_mvn_log_prob_entropy_against_numpy(bk, data, batch, n):
    p = data.draw(full_normals(batch_shape=batch, dim=n))
    x = data.draw(data_batches(n, batch_size=2))[:, None, :] if batch else data.draw(data_batches(n, batch_size=2))
    L, mu = _np(p.scale_tril), _np(p.loc)
    cov = L @ np.swapaxes(L, -1, -2)
    np.testing.assert_allclose(_np(p.log_prob(bk.tensor(x))), np_mvn_logpdf(x, mu, cov), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(_np(p.entropy()), 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1] * np.ones(batch),
                               rtol=1e-10, atol=1e-12)
    # the covariance parameterization is the same distribution
    q = MultivariateNormal(p.loc, covariance_matrix=bk.tensor(cov))
    np.testing.assert_allclose(_np(q.log_prob(bk.tensor(x))), _np(p.log_prob(bk.tensor(x))), rtol=1e-10)
    np.testing.assert_allclose(_np(q.covariance_matrix), np.broadcast_to(cov, batch + (n, n)), rtol=1e-12)
    np.testing.assert_allclose(_np(p.variance), np.broadcast_to(np.diagonal(cov, axis1=-2, axis2=-1), batch + (n,)),
                               rtol=1e-12)
    assert p.batch_shape == batch and p.event_shape == (n,)


def test_mvn_rsample_moments_backend_dtype_and_gradient(bk):
    rng = np.random.default_rng(0)
    n = 3
    A = rng.normal(size=(n, n))
    cov = A @ A.T + 0.5 * np.eye(n)
    mu = rng.normal(size=n)
    p = MultivariateNormal(bk.tensor(mu), covariance_matrix=bk.tensor(cov))
    S = 20000
    z = p.rsample((S,), generator=sv.Generator(0))
    assert z.shape == (S, n) and z.device == p.loc.device and z.dtype == p.loc.dtype
    zn = _np(z)
    se = np.sqrt(np.diag(cov) / S)
    assert np.all(np.abs(zn.mean(0) - mu) < 5 * se)
    # sample covariance: each entry's standard error is sqrt((c_ii c_jj + c_ij^2) / S)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / S)
    assert np.all(np.abs(np.cov(zn.T, bias=True) - cov) < 5 * se_cov)
    # pathwise gradients through loc and the Cholesky factor: a fixed noise draw makes fn deterministic
    loc = bk.tensor(mu, requires_grad=True)
    cov_t = bk.tensor(cov, requires_grad=True)

    def f(loc, c):
        c = 0.5 * (c + F.transpose(c))
        return F.sum(F.square(MultivariateNormal(loc, covariance_matrix=c).rsample((4,), generator=sv.Generator(1))))

    sv.gradcheck(f, [loc, cov_t])
    # float32 parameters draw float32 noise
    p32 = MultivariateNormal(bk.tensor(mu.astype(np.float32)), scale_tril=bk.tensor(np.eye(n, dtype=np.float32)))
    assert sv.backend.dtype_name(p32.rsample((2,)).dtype) == "float32"


def test_mvn_log_prob_gradcheck(bk):
    rng = np.random.default_rng(1)
    n = 3
    L0 = np.tril(rng.normal(size=(2, n, n)), -1) + np.eye(n) * 1.3
    loc = bk.tensor(rng.normal(size=(2, n)), requires_grad=True)
    L = bk.tensor(L0, requires_grad=True)
    x = bk.tensor(rng.normal(size=(4, 2, n)), requires_grad=True)
    sv.gradcheck(lambda loc, L, x: MultivariateNormal(loc, scale_tril=F.tril(L)).log_prob(x), [loc, L, x])
    sv.gradcheck(lambda L: MultivariateNormal(loc.detach(), scale_tril=F.tril(L)).entropy(), [L])


@given(data=st.data(), n=st.integers(1, 3), batch=st.sampled_from([(), (2,)]))
def test_mvn_kl_rules_against_numpy(bk, data, n, batch):
    p = data.draw(full_normals(batch_shape=batch, dim=n))
    q = data.draw(full_normals(batch_shape=(), dim=n))
    cp, cq = (_np(F.matmul(d.scale_tril, F.transpose(d.scale_tril, tuple(range(d.scale_tril.ndim - 2))
                                                    + (d.scale_tril.ndim - 1, d.scale_tril.ndim - 2))))
              for d in (p, q))
    np.testing.assert_allclose(_np(kl_divergence(p, q)), np_kl_gauss(_np(p.loc), cp, _np(q.loc), cq),
                               rtol=1e-9, atol=1e-10)
    # against a diagonal Gaussian, both ways, equal to the same Gaussian written as a full one
    dg = data.draw(diagonal_normals(batch_shape=batch, event_shape=(n,)))
    dfull = MultivariateNormal(dg.mean, scale_tril=F.expand_dims(dg.stddev, -1) * bk.array(np.eye(n)))
    np.testing.assert_allclose(_np(kl_divergence(dg, q)), _np(kl_divergence(dfull, q)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(kl_divergence(p, dg)), _np(kl_divergence(p, dfull)), rtol=1e-10, atol=1e-12)
    # KL(p || p) = 0
    np.testing.assert_allclose(_np(kl_divergence(p, p)), 0.0, atol=1e-12)


def test_mvn_kl_matches_monte_carlo_and_gradcheck(bk):
    rng = np.random.default_rng(2)
    n = 3
    Lp = np.tril(rng.normal(size=(n, n)) * 0.5, -1) + np.diag(rng.uniform(0.5, 1.5, n))
    Lq = np.tril(rng.normal(size=(n, n)) * 0.5, -1) + np.diag(rng.uniform(0.5, 1.5, n))
    p = MultivariateNormal(bk.tensor(rng.normal(size=n)), scale_tril=bk.tensor(Lp))
    q = MultivariateNormal(bk.tensor(rng.normal(size=n)), scale_tril=bk.tensor(Lq))
    S = 20000
    z = p.sample((S,), generator=sv.Generator(5))
    ratio = _np(p.log_prob(z) - q.log_prob(z))
    mc = _np(kl_monte_carlo(p, q, S, generator=sv.Generator(5)))
    np.testing.assert_allclose(mc, ratio.mean(), rtol=1e-10)
    assert abs(_np(kl_divergence(p, q)) - mc) < 5 * ratio.std() / math.sqrt(S)
    lp = bk.tensor(Lp, requires_grad=True)
    mq = bk.tensor(_np(q.loc), requires_grad=True)
    sv.gradcheck(lambda L, m: kl_divergence(MultivariateNormal(p.loc, scale_tril=F.tril(L)),
                                            MultivariateNormal(m, scale_tril=q.scale_tril)), [lp, mq])


def test_mvn_errors_are_clear(bk):
    eye = bk.tensor(np.eye(2))
    loc = bk.tensor(np.zeros(2))
    with pytest.raises(ValueError, match="exactly one of covariance_matrix= or scale_tril="):
        MultivariateNormal(loc)
    with pytest.raises(ValueError, match="exactly one"):
        MultivariateNormal(loc, covariance_matrix=eye, scale_tril=eye)
    with pytest.raises(ValidationError, match="not positive definite"):
        MultivariateNormal(loc, covariance_matrix=bk.tensor(np.array([[1.0, 2.0], [2.0, 1.0]])))
    with pytest.raises(ValidationError, match="must be symmetric"):
        MultivariateNormal(loc, covariance_matrix=bk.tensor(np.array([[1.0, 0.5], [0.0, 1.0]])))
    with pytest.raises(ValidationError, match="lower triangular"):
        MultivariateNormal(loc, scale_tril=bk.tensor(np.array([[1.0, 0.5], [0.0, 1.0]])))
    with pytest.raises(ValidationError, match="diagonal of scale_tril must be > 0"):
        MultivariateNormal(loc, scale_tril=bk.tensor(np.array([[1.0, 0.0], [0.3, -1.0]])))
    with pytest.raises(ValueError, match="event size 2 .* 3 x 3"):
        MultivariateNormal(loc, scale_tril=bk.tensor(np.eye(3)))
    with pytest.raises(ValueError, match="last axis must be the event of size 2"):
        MultivariateNormal(loc, scale_tril=eye).log_prob(bk.tensor(np.zeros((4, 3))))
    with pytest.raises(ValueError, match="different event shapes"):
        kl_divergence(MultivariateNormal(loc, scale_tril=eye),
                      MultivariateNormal(bk.tensor(np.zeros(3)), scale_tril=bk.tensor(np.eye(3))))


# ==================================================================================================
# The ELBO identity, for random models and random q

@given(data=st.data())
def test_identity_linear_gaussian_diagonal_q(bk, data):
    model = data.draw(linear_gaussian_models())
    x = data.draw(data_batches(model.data_dim))
    q = data.draw(diagonal_normals(batch_shape=(x.shape[0],), event_shape=(model.latent_dim,)))
    out = assert_elbo_identity(model, bk.tensor(x), q)
    assert np.all(out["elbo"] <= out["log_px"] + 1e-9 * (1 + np.abs(out["log_px"])))


@given(data=st.data())
def test_identity_linear_gaussian_full_q(bk, data):
    model = data.draw(linear_gaussian_models())
    x = data.draw(data_batches(model.data_dim))
    batch = data.draw(st.sampled_from([(x.shape[0],), ()]))  # one q per example, or one shared L
    q = data.draw(full_normals(batch_shape=batch, dim=model.latent_dim))
    if batch == ():
        q = MultivariateNormal(F.broadcast_to(q.loc, (x.shape[0], model.latent_dim)), scale_tril=q.scale_tril)
    assert_elbo_identity(model, bk.tensor(x), q)


@given(data=st.data(), allow_zeros=st.booleans())
def test_identity_gaussian_mixture_categorical_q(bk, data, allow_zeros):
    model = data.draw(gaussian_mixtures())
    x = data.draw(data_batches(model.dim))
    q = data.draw(categoricals(batch_shape=(x.shape[0],), num_categories=model.n_components, allow_zeros=allow_zeros))
    assert_elbo_identity(model, bk.tensor(x), q)


@given(data=st.data(), n_obs=st.integers(1, 6))
def test_identity_normal_normal(bk, data, n_obs):
    model = data.draw(normal_normal_models())
    x = data.draw(data_batches(n_obs))
    q = data.draw(diagonal_normals(batch_shape=(x.shape[0],)))
    assert_elbo_identity(model, bk.tensor(x), q)


def test_identity_holds_in_float32_to_float32_precision(bk):
    """The models run in float32 too (the dtype a GPU trains in); the identity then holds to ~1e-4
    relative, assert_elbo_identity's float32 default (eps = 1.2e-7, a few hundred ulps of slack)."""
    rng = np.random.default_rng(11)
    f32 = np.float32
    lg = LinearGaussian(rng.normal(size=(4, 2)).astype(f32), rng.normal(size=4).astype(f32), f32(0.5))
    x = bk.tensor(rng.normal(size=(3, 4)).astype(f32))
    gmm = GaussianMixture.from_params(np.ones(3, f32), rng.normal(size=(3, 4)).astype(f32),
                                      covariances=np.broadcast_to(np.eye(4, dtype=f32), (3, 4, 4)))
    nn = NormalNormal(f32(0.2), f32(1.5), f32(0.7))
    q_cat = Categorical(logits=bk.tensor(rng.normal(size=(3, 3)).astype(f32)))
    for model, q in ((lg, lg.optimal_diagonal_q(x)), (gmm, q_cat), (nn, Normal(x[:, 0], bk.tensor(np.ones(3, f32))))):
        assert sv.backend.dtype_name(model.log_marginal(x).dtype) == "float32"
        assert_elbo_identity(model, x, q)


# ==================================================================================================
# The exact quantities themselves, against NumPy formulas written independently

@given(data=st.data())
def test_linear_gaussian_marginal_and_posterior_against_numpy(bk, data):
    model = data.draw(linear_gaussian_models())
    x = data.draw(data_batches(model.data_dim))
    W, b, psi = lg_reference(model)
    C = W @ W.T + np.diag(psi)
    np.testing.assert_allclose(_np(model.log_marginal(bk.tensor(x))), np_mvn_logpdf(x, b, C), rtol=1e-10)
    # posterior by Gaussian conditioning of the joint (z, x): mean W^T C^-1 (x - b), cov I - W^T C^-1 W
    post = model.posterior(bk.tensor(x))
    k = model.latent_dim
    np.testing.assert_allclose(_np(post.loc), (x - b) @ np.linalg.solve(C, W), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(_np(post.covariance_matrix), np.broadcast_to(np.eye(k) - W.T @ np.linalg.solve(C, W),
                                                                           (x.shape[0], k, k)), rtol=1e-9, atol=1e-10)


@given(data=st.data(), n_obs=st.integers(1, 6))
def test_normal_normal_against_numpy(bk, data, n_obs):
    model = data.draw(normal_normal_models())
    x = data.draw(data_batches(n_obs))
    mu0, s0, s = _np(model.prior_loc), _np(model.prior_scale), _np(model.noise_scale)
    C = s**2 * np.eye(n_obs) + s0**2
    np.testing.assert_allclose(_np(model.log_marginal(bk.tensor(x))), np_mvn_logpdf(x, np.full(n_obs, mu0), C),
                               rtol=1e-10)
    # conditioning the joint Gaussian (z, x): cov(z, x) = s0^2 1^T
    c_zx = np.full(n_obs, s0**2)
    post = model.posterior(bk.tensor(x))
    np.testing.assert_allclose(_np(post.loc), mu0 + (x - mu0) @ np.linalg.solve(C, c_zx), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(_np(post.variance), np.full(x.shape[0], s0**2 - c_zx @ np.linalg.solve(C, c_zx)),
                               rtol=1e-9)


def test_gaussian_mixture_against_numpy(bk):
    rng = np.random.default_rng(3)
    K, d = 3, 2
    w, mu = np.array([0.2, 0.5, 0.3]), rng.normal(size=(K, d)) * 2
    A = rng.normal(size=(K, d, d))
    cov = A @ np.swapaxes(A, -1, -2) + 0.3 * np.eye(d)
    x = rng.normal(size=(6, d)) * 2
    full = GaussianMixture.from_params(w, mu, covariances=cov)
    comp = np.stack([np_mvn_logpdf(x, mu[k], cov[k]) for k in range(K)], axis=1) + np.log(w)
    ref = np.log(np.exp(comp).sum(1))
    np.testing.assert_allclose(_np(full.log_marginal(bk.tensor(x))), ref, rtol=1e-10)
    np.testing.assert_allclose(_np(full.posterior(bk.tensor(x)).probs), np.exp(comp - ref[:, None]), rtol=1e-9)
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    diag = GaussianMixture.from_params(w, mu, var)
    comp = np.stack([np_mvn_logpdf(x, mu[k], np.diag(var[k])) for k in range(K)], axis=1) + np.log(w)
    np.testing.assert_allclose(_np(diag.log_marginal(bk.tensor(x))), np.log(np.exp(comp).sum(1)), rtol=1e-10)


# ==================================================================================================
# q = posterior: the bound is tight, and every importance weight equals p(x)

def _models(bk):
    rng = np.random.default_rng(4)
    lg = LinearGaussian(rng.normal(size=(4, 2)), rng.normal(size=4), rng.uniform(0.3, 1.0, 4))
    gmm = GaussianMixture.from_params(np.array([0.3, 0.7]), rng.normal(size=(2, 4)), rng.uniform(0.5, 2, (2, 4)))
    nn = NormalNormal(0.5, 1.3, 0.8)
    return [(lg, bk.tensor(rng.normal(size=(3, 4)))), (gmm, bk.tensor(rng.normal(size=(3, 4)))),
            (nn, bk.tensor(rng.normal(size=(3, 4))))]


def test_posterior_makes_the_bound_tight_and_every_log_weight_equal_log_px(bk):
    for model, x in _models(bk):
        lp = _np(model.log_marginal(x))
        post = model.posterior(x)
        np.testing.assert_allclose(_np(model.elbo(x, post)), lp, rtol=1e-10)
        # log w = log p(x|z) + log p(z) - log p(z|x) = log p(x) for EVERY z: a deterministic check
        z = post.sample((50,), generator=sv.Generator(0))  # (50, B, ...)
        zf = F.reshape(z, (-1,) + tuple(z.shape[2:]))
        xs = F.reshape(F.broadcast_to(F.expand_dims(x, 0), (50,) + x.shape), (-1, x.shape[1]))
        log_w = (F.reshape(model.decode(zf).log_prob(xs), (50, -1)) + model.prior().log_prob(z) - post.log_prob(z))
        np.testing.assert_allclose(_np(log_w), np.broadcast_to(lp, (50, lp.size)), rtol=1e-10, err_msg=type(model).__name__)
        # the generic importance-sampling estimator is then exact, with effective sample size k
        ll = log_likelihood(x, model.posterior, model.decode, model.prior(), k=40, chunk=16, generator=sv.Generator(1))
        np.testing.assert_allclose(_np(ll.log_px), lp, rtol=1e-10)
        np.testing.assert_allclose(_np(ll.ess), 40.0, rtol=1e-8)


# ==================================================================================================
# Monte Carlo against the closed forms

def _mc_check(model, x, encode, S, seed):
    """Generic MC ELBO vs the model's closed form, within 5 standard errors of the reconstruction term."""
    q = encode(x)
    r = elbo(x, encode, model.decode, model.prior(), n_samples=S, generator=sv.Generator(seed))
    exact = _np(model.elbo(x, q))
    z = q.rsample((S,), generator=sv.Generator(seed + 1))
    xs = F.reshape(F.broadcast_to(F.expand_dims(x, 0), (S,) + x.shape), (-1, x.shape[1]))
    per = _np(model.decode(F.reshape(z, (-1,) + tuple(z.shape[2:]))).log_prob(xs)).reshape(S, -1)
    se = per.std(0) / math.sqrt(S)
    assert np.all(np.abs(_np(r.elbo) - exact) < 5 * se), (_np(r.elbo), exact, se)
    assert np.all(se > 0)
    return exact


def test_generic_mc_elbo_agrees_with_closed_forms(bk):
    rng = np.random.default_rng(5)
    lg = LinearGaussian(rng.normal(size=(4, 2)), rng.normal(size=4), rng.uniform(0.3, 1.0, 4))
    x = bk.tensor(rng.normal(size=(3, 4)) * 2)
    post = lg.posterior(x)

    def poor_diag(x):  # shifted mean, inflated variances: a q far from the posterior
        return Independent(Normal(post.loc + 0.7, F.broadcast_to(F.sqrt(post.variance) * 1.8, post.loc.shape)), 1)

    def poor_full(x):
        return MultivariateNormal(post.loc - 0.4, scale_tril=0.6 * post.scale_tril)

    for enc in (poor_diag, poor_full, lg.optimal_diagonal_q):
        _mc_check(lg, x, enc, 3000, 10)
    nn = NormalNormal(0.5, 1.3, 0.8)
    xn = bk.tensor(rng.normal(size=(3, 5)))
    pn = nn.posterior(xn)
    _mc_check(nn, xn, lambda x: Normal(pn.loc + 0.5, pn.scale * 0.5), 3000, 20)


def test_iwae_increases_with_k_towards_log_px(bk):
    rng = np.random.default_rng(6)
    # correlated columns of W make the posterior correlated, so no diagonal q is exact
    W = np.array([[1.0, 0.9], [0.8, 1.0], [0.5, 0.7]])
    lg = LinearGaussian(W, np.zeros(3), 0.3)
    R = 400  # independent repetitions as a batch of copies of one example
    x = bk.tensor(np.repeat(rng.normal(size=(1, 3)), R, axis=0))

    def wide(x):
        # the posterior's marginal variances: an over-dispersed diagonal proposal that covers the
        # posterior, so the importance weights are bounded and the IWAE gap closes fast (the
        # mode-seeking optimal_diagonal_q closes it too, but much more slowly)
        p = lg.posterior(x)
        return Independent(Normal(p.loc, F.sqrt(p.variance)), 1)

    lp = _np(lg.log_marginal(x))[0]
    gap = lp - _np(lg.elbo(x, wide(x)))[0]
    assert gap > 0.5  # the setting is informative
    means, ses = [], []
    for k in (1, 4, 16, 64):
        v = _np(iwae_bound(x, wide, lg.decode, lg.prior(), k, generator=sv.Generator(k)))
        means.append(v.mean())
        ses.append(v.std() / math.sqrt(R))
    assert abs(means[0] - (lp - gap)) < 5 * ses[0]  # k = 1 is the ELBO in expectation
    for a, b, sa, sb in zip(means, means[1:], ses, ses[1:]):
        assert b > a - 3 * math.hypot(sa, sb), (means, ses)
    assert means[-1] < lp + 5 * ses[-1]  # still a lower bound
    # the remaining gap shrinks ~ 1/k: at k = 64 it is a few percent of the ELBO's gap
    assert lp - means[-1] < 0.05 * gap, (lp, means, gap)


# ==================================================================================================
# NormalNormal: pathwise gradients equal the closed forms

def test_normal_normal_pathwise_gradients_equal_closed_forms(bk):
    model = NormalNormal(0.5, 1.3, 0.8)
    rng = np.random.default_rng(7)
    x = bk.tensor(rng.normal(size=(3, 5)) + 1.0)
    n = 5
    m0, s0 = np.array([0.1, -0.4, 1.2]), np.array([0.3, 0.6, 1.1])
    exact_dm, exact_ds = (_np(g) for g in model.elbo_gradients(x, Normal(bk.tensor(m0), bk.tensor(s0))))
    # 1) autograd through the closed-form ELBO reproduces them (to rounding)
    loc, scale = bk.tensor(m0, requires_grad=True), bk.tensor(s0, requires_grad=True)
    F.sum(model.elbo(x, Normal(loc, scale))).backward()
    np.testing.assert_allclose(bk.numpy(loc.grad), exact_dm, rtol=1e-10)
    np.testing.assert_allclose(bk.numpy(scale.grad), exact_ds, rtol=1e-10)
    # 2) the pathwise (reparameterized) MC gradient is unbiased for them.  Per draw eps, with
    #    a = sum_i (x_i - m) / s^2 and c = n sigma / s^2 the gradients are
    #    g_m = dm - c eps  and  g_sigma = dsigma + a eps - c (eps^2 - 1),
    #    so their standard errors over S draws are c / sqrt(S) and sqrt(a^2 + 2 c^2) / sqrt(S).
    S = 20000
    loc, scale = bk.tensor(m0, requires_grad=True), bk.tensor(s0, requires_grad=True)
    r = elbo(x, lambda x: Normal(loc, scale), model.decode, model.prior(), n_samples=S, generator=sv.Generator(3))
    F.sum(r.elbo).backward()
    s2 = 0.8**2
    a = (_np(x) - m0[:, None]).sum(1) / s2
    c = n * s0 / s2
    assert np.all(np.abs(bk.numpy(loc.grad) - exact_dm) < 5 * c / math.sqrt(S))
    assert np.all(np.abs(bk.numpy(scale.grad) - exact_ds) < 5 * np.sqrt(a**2 + 2 * c**2) / math.sqrt(S))


# ==================================================================================================
# The testing helpers themselves

class _ForgetsTheTrace(LinearGaussian):
    """A subtly wrong model: its ELBO drops tr(W^T Psi^-1 W S), the variance part of E_q[log p(x|z)]."""

    def elbo(self, x, q):
        W, psi = self.weight, self.noise_var
        g = F.sum(F.square(W) / F.reshape(psi, (-1, 1)), axis=0)
        return super().elbo(x, q) + 0.5 * F.sum(q.variance * g, axis=-1)


def test_assert_elbo_identity_catches_a_wrong_elbo_with_a_clear_message(bk):
    rng = np.random.default_rng(8)
    W, b, psi = rng.normal(size=(3, 2)), rng.normal(size=3), 0.5
    x = bk.tensor(rng.normal(size=(4, 3)))
    good = LinearGaussian(W, b, psi)
    q = good.optimal_diagonal_q(x)
    assert_elbo_identity(good, x, q)
    bad = _ForgetsTheTrace(W, b, psi)
    with pytest.raises(AssertionError, match=r"fails for 4 of 4 examples(.|\n)*log p\(x\)(.|\n)*residual"
                                             r"(.|\n)*the ELBO exceeds log p\(x\)"):
        assert_elbo_identity(bad, x, q)


def test_strategies_build_what_they_promise(bk):
    @given(data=st.data())
    def run(data):
        m = data.draw(linear_gaussian_models(data_dim=3, latent_dim=2, isotropic=True))
        assert (m.data_dim, m.latent_dim, m.isotropic) == (3, 2, True)
        assert m.weight.device == sv.tensor(bk.array(np.zeros(1))).device
        g = data.draw(gaussian_mixtures(n_components=2, dim=3, covariance_type="full"))
        assert (g.n_components, g.dim, g.covariance_type) == (2, 3, "full")
        d = data.draw(diagonal_normals(batch_shape=(4,), event_shape=(2, 3)))
        assert isinstance(d, Independent) and d.batch_shape == (4,) and d.event_shape == (2, 3)
        f = data.draw(full_normals(batch_shape=st.sampled_from([(1,), (2, 2)]), dim=2))
        assert f.event_shape == (2,) and f.batch_shape in ((1,), (2, 2))
        c = data.draw(categoricals(batch_shape=(5,), num_categories=4, allow_zeros=True))
        assert isinstance(c, Categorical) and c.batch_shape == (5,) and c.num_categories == 4
        assert np.all(_np(c.probs).sum(-1) > 0.99)
        a, b = data.draw(broadcastable_shape_pairs())
        np.broadcast_shapes(a, b)  # raises if they do not broadcast
        xb = data.draw(data_batches(3, batch_size=st.integers(2, 3)))
        assert xb.shape[1] == 3 and xb.shape[0] in (2, 3)

    run()
