"""LinearGaussian (PPCA / factor analysis): gradients of the evidence, the best diagonal q, the
Tipping & Bishop maximum-likelihood fit, and what gradient-based variational inference converges to
on it (docs/tractable.md).

Tolerances are stated at each check.  Deterministic float64 checks use 1e-9 or tighter (see
tests/test_tractable.py).  The training tests run Adam on Monte-Carlo ELBOs with fixed seeds; their
tolerances are a few times the spread of the final iterates seen across seeds, and far below the
size of the quantities being recovered (so a wrong target fails by orders of magnitude).
"""

import math

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.distributions import (
    Independent,
    Normal,
    gaussian_likelihood,
    kl_divergence,
)
from scratchvae.distributions.multivariate_normal import MultivariateNormal
from scratchvae.elbo import elbo
from scratchvae.models.linear_gaussian import LinearGaussian
from scratchvae.nn import Linear, Parameter
from scratchvae.optim import Adam

LOG2PI = math.log(2 * math.pi)
pytestmark = pytest.mark.usefixtures("float64")


def _np(t):
    return sv.to_numpy(t)


def _model(seed=0, d=4, k=2, isotropic=False):
    rng = np.random.default_rng(seed)
    psi = 0.5 if isotropic else rng.uniform(0.3, 1.0, d)
    return LinearGaussian(rng.normal(size=(d, k)), rng.normal(size=d), psi), rng


# --------------------------------------------------------------------------------------------------
# the evidence's gradient, against the matrix-calculus closed form

def test_log_marginal_gradients_match_matrix_calculus(bk):
    """For C = W W^T + Psi and r = x - b, with G = C^-1 r r^T C^-1 - C^-1 (averaged over the batch):
    d log p / dW = G W,  d log p / db = C^-1 r,  d log p / d log psi_i = psi_i G_ii / 2."""
    model, rng = _model(1)
    model.to(bk.backend)
    x = rng.normal(size=(5, 4)) * 2
    F.mean(model.log_marginal(bk.tensor(x))).backward()
    W, b, psi = _np(model.weight), _np(model.bias), np.exp(_np(model.log_noise_var))
    Ci = np.linalg.inv(W @ W.T + np.diag(psi))
    r = x - b
    G = np.mean([Ci @ np.outer(ri, ri) @ Ci for ri in r], axis=0) - Ci
    # rtol 1e-9: a handful of solves on a well-conditioned 4 x 4 matrix
    np.testing.assert_allclose(bk.numpy(model.weight.grad), G @ W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bk.numpy(model.bias.grad), (r @ Ci).mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bk.numpy(model.log_noise_var.grad), 0.5 * psi * np.diag(G), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# the best diagonal q

def test_optimal_diagonal_q_is_a_stationary_maximum_of_the_elbo(bk):
    model, rng = _model(2)
    model.to(bk.backend)
    x = bk.tensor(rng.normal(size=(3, 4)))
    q = model.optimal_diagonal_q(x)
    m = bk.tensor(_np(q.mean), requires_grad=True)
    lv = bk.tensor(np.log(_np(q.variance)), requires_grad=True)
    best = model.elbo(x, Independent(Normal.from_log_var(m, lv), 1))
    F.sum(best).backward()
    # the gradient is zero to rounding: its terms are O(1), each computed to ~1e-15
    np.testing.assert_allclose(bk.numpy(m.grad), 0.0, atol=1e-10)
    np.testing.assert_allclose(bk.numpy(lv.grad), 0.0, atol=1e-10)
    for _ in range(5):  # and every perturbation lowers the ELBO of every example
        dm, dl = rng.normal(size=(3, 2)) * 0.1, rng.normal(size=(3, 2)) * 0.1
        other = model.elbo(x, Independent(Normal.from_log_var(m.detach() + bk.array(dm), lv.detach() + bk.array(dl)), 1))
        assert np.all(_np(other) < _np(best))
    # the full posterior is better still (it is the global maximum), unless M is diagonal
    assert np.all(_np(model.elbo(x, model.posterior(x))) > _np(best))


def test_best_diagonal_gap_is_half_the_log_hadamard_ratio(bk):
    """KL(best diagonal q || posterior) = (sum_j log M_jj - log det M) / 2, the same for every x, and
    >= 0 by Hadamard's inequality (docs/tractable.md#the-best-diagonal-q)."""
    model, rng = _model(3)
    model.to(bk.backend)
    x = bk.tensor(rng.normal(size=(4, 4)))
    W, psi = _np(model.weight), _np(model.noise_var)
    M = W.T @ (W / psi[:, None]) + np.eye(2)
    gap = 0.5 * (np.log(np.diag(M)).sum() - np.linalg.slogdet(M)[1])
    assert gap > 1e-3
    kl = _np(kl_divergence(model.optimal_diagonal_q(x), model.posterior(x)))
    np.testing.assert_allclose(kl, np.full(4, gap), rtol=1e-9)
    np.testing.assert_allclose(_np(model.log_marginal(x) - model.elbo(x, model.optimal_diagonal_q(x))), gap, rtol=1e-9)


def test_optimal_diagonal_q_is_the_posterior_when_the_posterior_is_diagonal(bk):
    # orthogonal columns of W and isotropic noise make M = W^T W / s^2 + I diagonal
    W = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    model = LinearGaussian(W, np.zeros(3), 0.3)
    x = bk.tensor(np.array([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]]))
    q = model.optimal_diagonal_q(x)
    np.testing.assert_allclose(_np(kl_divergence(q, model.posterior(x))), 0.0, atol=1e-12)
    np.testing.assert_allclose(_np(model.elbo(x, q)), _np(model.log_marginal(x)), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Tipping & Bishop

def _ppca_data(n, seed=3, d=5, k=2, sigma2=0.25):
    """n draws from a PPCA model W = U diag(3, 2.5, 2, ...) with random orthonormal U: the signal
    eigenvalues (9.25, 6.5, ...) stand well apart from each other and from the noise (0.25), so
    the maximum-likelihood fit is well determined and gradient methods converge at a steady rate."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.normal(size=(d, k)))[0]
    true = LinearGaussian(U * (3.0 - 0.5 * np.arange(k)), rng.normal(size=d), sigma2)
    return true, true.sample(n, sv.Generator(seed))


def test_fit_mle_attains_the_closed_form_maximum_and_is_stationary(bk):
    _, X = _ppca_data(400)
    Xb = bk.tensor(_np(X))
    fit = LinearGaussian.fit_mle(Xb, 2)
    assert fit.isotropic and fit.weight.device == Xb.device
    # the maximum value from the eigenvalues of the sample covariance, computed here with NumPy:
    # l* = -(d log 2 pi + sum_{j<=k} log lambda_j + (d - k) log sigma^2 + d) / 2, sigma^2 = mean(lambda_{>k})
    lam = np.sort(np.linalg.eigvalsh(np.cov(_np(X).T, bias=True)))[::-1]
    s2 = lam[2:].mean()
    best = -0.5 * (5 * LOG2PI + np.log(lam[:2]).sum() + 3 * np.log(s2) + 5)
    ll = F.mean(fit.log_marginal(Xb))
    np.testing.assert_allclose(ll.item(), best, rtol=1e-10)
    np.testing.assert_allclose(np.exp(_np(fit.log_noise_var)), s2, rtol=1e-10)
    # stationary: the gradient of the mean log-likelihood vanishes (O(1) terms, rounding ~1e-13)
    ll.backward()
    for p in (fit.weight, fit.bias, fit.log_noise_var):
        np.testing.assert_allclose(bk.numpy(p.grad), 0.0, atol=1e-8)
    # and a maximum: random perturbations of the parameters lower it
    rng = np.random.default_rng(0)
    for _ in range(5):
        other = LinearGaussian(_np(fit.weight) + 0.05 * rng.normal(size=(5, 2)), _np(fit.bias) + 0.05 * rng.normal(size=5),
                               s2 * math.exp(0.05 * rng.normal()))
        assert F.mean(other.log_marginal(_np(X))).item() < best


def test_fit_mle_recovers_the_generating_covariance():
    true, X = _ppca_data(20000, seed=4)
    fit = LinearGaussian.fit_mle(X, 2)
    C_true = _np(true.marginal().covariance_matrix)
    C_fit = _np(fit.marginal().covariance_matrix)
    # sampling error of a covariance from N = 20000 is ~ |C| sqrt(2 / N) ~ 1% of |C|; allow 5%
    assert np.linalg.norm(C_fit - C_true) < 0.05 * np.linalg.norm(C_true)
    np.testing.assert_allclose(np.exp(_np(fit.log_noise_var)), 0.25, rtol=0.05)


def test_errors_are_clear(bk):
    model, rng = _model(5)
    with pytest.raises(ValueError, match=r"1 <= k < d = 4"):
        LinearGaussian.fit_mle(rng.normal(size=(10, 4)), 4)
    with pytest.raises(ValueError, match=r"x must be a \(batch, 4\) matrix"):
        model.log_marginal(rng.normal(size=(3, 5)))
    with pytest.raises(ValueError, match="noise_var must be > 0"):
        LinearGaussian(np.ones((3, 1)), None, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"noise_var must be a number .* or of shape \(3,\)"):
        LinearGaussian(np.ones((3, 1)), None, np.ones(2))
    x = rng.normal(size=(3, 4))
    with pytest.raises(TypeError, match="closed form needs a Gaussian q"):
        model.elbo(x, Normal(np.zeros((3, 2)), 1.0))
    with pytest.raises(ValueError, match=r"batch_shape \(3,\) and event_shape \(2,\)"):
        model.elbo(x, MultivariateNormal(np.zeros(2), scale_tril=np.eye(2)))


# --------------------------------------------------------------------------------------------------
# what gradient-based variational inference converges to (NumPy only: these train for seconds)

def _adam_loop(params, loss_fn, steps, lr, tail):
    """Adam for ``steps`` steps (lr / 5 for the last third); returns the mean of the last ``tail``
    iterates of each parameter (Polyak averaging removes most of the Monte-Carlo jitter)."""
    opt = Adam(params, lr=lr)
    acc = [np.zeros(p.shape) for p in params]
    for i in range(steps):
        if i == 2 * steps // 3:
            for g in opt.param_groups:
                g["lr"] = lr / 5
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
        if i >= steps - tail:
            for a, p in zip(acc, params):
                a += p.numpy()
    return [a / tail for a in acc]


def test_gradient_ascent_on_the_mc_elbo_finds_the_optimal_diagonal_q():
    model, rng = _model(6)
    x = sv.tensor(rng.normal(size=(3, 4)) * 2)
    target = model.optimal_diagonal_q(x)
    mu, lv = Parameter(np.zeros((3, 2))), Parameter(np.zeros((3, 2)))
    gen = sv.Generator(0)

    def loss():
        q = lambda x: Independent(Normal.from_log_var(mu, lv), 1)
        return elbo(x, q, model.decode, model.prior(), n_samples=16, generator=gen).loss()

    mu_hat, lv_hat = _adam_loop([mu, lv], loss, steps=1500, lr=0.05, tail=500)
    # the optimal q's standard deviations are ~0.25-0.45; across seeds the averaged iterates land
    # within 0.004-0.012 (means) and 0.025-0.042 (log-variances) of the optimum, and the ELBO
    # within 1e-3: the tolerances are ~2.5x the worst seen
    np.testing.assert_allclose(mu_hat, _np(target.mean), atol=0.03)
    np.testing.assert_allclose(lv_hat, np.log(_np(target.variance)), atol=0.1)
    # and it is the optimal *diagonal* q, not the posterior: the gap to log p(x) is the KL that remains
    learned = Independent(Normal.from_log_var(sv.tensor(mu_hat), sv.tensor(lv_hat)), 1)
    np.testing.assert_allclose(_np(model.elbo(x, learned)), _np(model.elbo(x, target)), atol=5e-3)


def test_amortized_linear_encoder_recovers_the_exact_posterior_mean_map():
    """The posterior mean is linear in x, mu(x) = A (x - b) with A = M^-1 W^T Psi^-1, and its
    covariance is the same for every x; a linear encoder with a free log-variance contains the best
    diagonal q of every x, so the ELBO summed over any data set is maximized exactly there."""
    model, _ = _model(7)
    X = model.sample(512, sv.Generator(1))
    W, b, psi = _np(model.weight), _np(model.bias), _np(model.noise_var)
    M = W.T @ (W / psi[:, None]) + np.eye(2)
    A = np.linalg.solve(M, W.T / psi)
    enc = Linear(4, 2, generator=sv.Generator(2))
    lv = Parameter(np.zeros(2))
    gen = sv.Generator(0)

    def encode(x):
        return Independent(Normal.from_log_var(enc(x), F.broadcast_to(lv, (x.shape[0], 2))), 1)

    def loss():
        return elbo(X, encode, model.decode, model.prior(), n_samples=1, generator=gen).loss()

    w_hat, b_hat, lv_hat = _adam_loop([enc.weight, enc.bias, lv], loss, steps=1500, lr=0.02, tail=500)
    # |A| ~ 0.4; across seeds the averaged iterates land within 0.0005-0.0065 of A, -A b and
    # -log diag M: allow 0.02
    np.testing.assert_allclose(w_hat, A.T, atol=0.02)       # Linear computes x @ weight: weight = A^T
    np.testing.assert_allclose(b_hat, -A @ b, atol=0.02)
    np.testing.assert_allclose(lv_hat, -np.log(np.diag(M)), atol=0.02)


def _train_linear_vae(X, d, k, steps, lr, seed=0):
    """A linear VAE: q(z|x) = N(E x + e, diag(exp(v))), p(x|z) = N(D z + c, sigma^2 I) with learned sigma."""
    enc, dec = Linear(d, k, generator=sv.Generator(seed + 1)), Linear(k, d, generator=sv.Generator(seed + 2))
    enc_lv, log_sigma = Parameter(np.zeros(k)), Parameter(np.zeros(()))
    prior = Independent(Normal.standard((k,), dtype="float64"), 1)
    gen = sv.Generator(seed)

    def encode(x):
        return Independent(Normal.from_log_var(enc(x), F.broadcast_to(enc_lv, (x.shape[0], k))), 1)

    def decode(z):
        return gaussian_likelihood(dec(z), log_scale=log_sigma, min_scale=0)  # no floor: exactly PPCA's noise

    params = list(enc.parameters()) + [enc_lv] + list(dec.parameters()) + [log_sigma]
    opt = Adam(params, lr=lr)
    for i in range(steps):
        if i == 2 * steps // 3:
            for g in opt.param_groups:
                g["lr"] = lr / 5
        opt.zero_grad()
        elbo(X, encode, decode, prior, n_samples=1, generator=gen).loss().backward()
        opt.step()
    learned = LinearGaussian(dec.weight.numpy().T, dec.bias.numpy(), math.exp(2 * log_sigma.item()))
    return learned, encode


def _check_linear_vae(n, d, k, steps, ll_tol, elbo_tol):
    _, X = _ppca_data(n, seed=8, d=d, k=k)
    mle = LinearGaussian.fit_mle(X, k)
    ll_mle = F.mean(mle.log_marginal(X)).item()
    learned, encode = _train_linear_vae(X, d, k, steps, lr=0.03)
    ll_vae = F.mean(learned.log_marginal(X)).item()
    # the decoder is a PPCA model: its exact log-likelihood cannot beat the MLE (up to rounding) ...
    assert ll_vae <= ll_mle + 1e-9
    # ... and the linear VAE's optimum is the MLE (Lucas et al. 2019), so training gets there
    assert ll_mle - ll_vae < ll_tol, (ll_mle, ll_vae)
    # at that optimum the diagonal encoder is exact in the right latent rotation: the ELBO is tight
    bound = F.mean(learned.elbo(X, encode(X))).item()
    assert ll_vae - bound < elbo_tol, (ll_vae, bound)


def test_linear_vae_reaches_the_ppca_maximum_likelihood():
    # 500 points in 5-D, 1500 steps: across seeds the remaining gap is 3e-4..2e-3 nats per example
    # (log-likelihood, the last iterate's SGD jitter) and 5e-3..1.3e-2 (ELBO); the tolerances are
    # ~2.5x the worst seen, and ~1000x below the gap at initialisation (~6 nats)
    _check_linear_vae(500, 5, 2, steps=1500, ll_tol=5e-3, elbo_tol=0.03)


@pytest.mark.slow
def test_linear_vae_reaches_the_ppca_maximum_likelihood_larger():
    # 2000 points in 8-D, k = 3, 6000 steps (~25 s): gaps 1e-4..2e-4 (log-likelihood), 6e-3..1.6e-2 (ELBO)
    _check_linear_vae(2000, 8, 3, steps=6000, ll_tol=1e-3, elbo_tol=0.03)
