"""The ELBO family on a model where everything is known in closed form, plus a small nonlinear one.

The linear-Gaussian model with a diagonal weight, z ~ N(0, I), x | z ~ N(w * z + b, s^2 I), has the
exact evidence log p(x) = sum_j log N(x_j; b_j, w_j^2 + s^2) and a factorized exact posterior
(precision 1 + w^2 / s^2, mean w (x - b) / (s^2 precision)), both written out here with NumPy.
"""

import math

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.distributions import (
    Distribution,
    Independent,
    Normal,
    bernoulli_likelihood,
    gaussian_likelihood,
    kl_divergence,
)
from scratchvae.elbo import ELBO, elbo, free_bits_kl, iwae_bound, kl_per_dim, log_likelihood, reconstruction

LOG2PI = math.log(2 * math.pi)


def _np(x):
    return sv.to_numpy(x)


class LinearGaussian:
    def __init__(self, bk, B=4, L=3, seed=0):
        rng = np.random.default_rng(seed)
        self.bk, self.L = bk, L
        self.w = rng.uniform(0.5, 2.0, size=L)
        self.b = rng.normal(size=L)
        self.s = 0.7
        self.x_np = rng.normal(size=(B, L)) * 1.5
        self.x = bk.tensor(self.x_np)
        self.prior = Independent(Normal.standard((L,), dtype="float64", backend=bk.backend), 1)
        prec = 1 + self.w**2 / self.s**2
        self.post_var = 1 / prec
        self.post_mean = self.post_var * self.w * (self.x_np - self.b) / self.s**2

    def log_px(self):
        v = self.w**2 + self.s**2
        return (-((self.x_np - self.b) ** 2) / (2 * v) - 0.5 * np.log(v) - 0.5 * LOG2PI).sum(-1)

    def decode(self, z):
        return gaussian_likelihood(z * self.bk.tensor(self.w) + self.bk.tensor(self.b), scale=self.s)

    def encode_exact(self, x):
        return Independent(Normal(self.bk.tensor(self.post_mean), self.bk.tensor(np.sqrt(self.post_var))), 1)

    def poor_q(self, shift=0.3, widen=1.5, shrink=0.5):
        return Independent(Normal(self.bk.tensor(shrink * self.post_mean + shift),
                                  self.bk.tensor(widen * np.sqrt(self.post_var))), 1)

    def exact_posterior(self):
        return self.encode_exact(None)


# --------------------------------------------------------------------------------------------------
# exactness where the answer is known

def test_exact_posterior_makes_every_bound_tight(bk, float64):
    m = LinearGaussian(bk)
    lp = m.log_px()
    r = elbo(m.x, m.encode_exact, m.decode, m.prior, n_samples=3, kl="mc", generator=sv.Generator(0))
    np.testing.assert_allclose(_np(r.elbo), lp, rtol=1e-10)  # every log-weight equals log p(x)
    for k in (1, 7):
        np.testing.assert_allclose(_np(iwae_bound(m.x, m.encode_exact, m.decode, m.prior, k, generator=sv.Generator(1))),
                                   lp, rtol=1e-10)
    ll = log_likelihood(m.x, m.encode_exact, m.decode, m.prior, k=50, chunk=16, generator=sv.Generator(2))
    np.testing.assert_allclose(_np(ll.log_px), lp, rtol=1e-10)
    np.testing.assert_allclose(_np(ll.ess), 50.0, rtol=1e-8)  # equal weights: ESS = k


def test_elbo_identity_log_px_minus_kl_to_posterior(bk, float64):
    """E[ELBO(q)] = log p(x) - KL(q || p(z|x)): MC ELBO within 5 standard errors of the closed form."""
    m = LinearGaussian(bk, seed=1)
    q = m.poor_q()
    S = 4000
    r = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=S, kl="analytic", generator=sv.Generator(3))
    target = m.log_px() - _np(kl_divergence(q, m.exact_posterior()))
    # the standard error of the reconstruction term, from the per-sample values with the same seed
    z = q.rsample((S,), generator=sv.Generator(3))
    per = _np(m.decode(F.reshape(z, (-1, m.L))).log_prob(F.reshape(F.broadcast_to(m.x, (S,) + m.x.shape), (-1, m.L))))
    se = per.reshape(S, -1).std(0) / math.sqrt(S)
    assert np.all(np.abs(_np(r.elbo) - target) < 5 * se)
    assert np.all(_np(r.elbo) < m.log_px())


def test_analytic_and_mc_kl_agree_in_expectation(bk, float64):
    m = LinearGaussian(bk, seed=2)
    q = m.poor_q(shift=0.8, widen=0.6)
    S = 5000
    ra = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=S, kl="analytic", generator=sv.Generator(4))
    rm = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=S, kl="mc", generator=sv.Generator(4))
    np.testing.assert_allclose(_np(ra.reconstruction), _np(rm.reconstruction), rtol=1e-12)  # same noise
    z = q.rsample((S,), generator=sv.Generator(4))
    ratios = _np(q.log_prob(z) - m.prior.log_prob(z))
    se = ratios.std(0) / math.sqrt(S)
    np.testing.assert_allclose(_np(rm.kl), ratios.mean(0), rtol=1e-10)
    assert np.all(np.abs(_np(rm.kl) - _np(ra.kl)) < 5 * se)
    # per-dimension MC KL sums to the total and tracks the analytic per-dimension KL
    np.testing.assert_allclose(_np(rm.kl_per_dim).sum(-1), _np(rm.kl), rtol=1e-10)
    assert rm.kl_per_dim.shape == ra.kl_per_dim.shape == (4, 3)


def test_elbo_equals_iwae_1_with_the_same_noise(bk, float64):
    m = LinearGaussian(bk, seed=3)
    q = m.poor_q()
    r = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=1, kl="mc", generator=sv.Generator(11))
    i1 = iwae_bound(m.x, lambda x: q, m.decode, m.prior, 1, generator=sv.Generator(11))
    np.testing.assert_allclose(_np(i1), _np(r.elbo), rtol=1e-12, atol=1e-12)
    nl = Nonlinear(bk)
    r = elbo(nl.x, nl.encode, nl.decode, nl.prior, n_samples=1, kl="mc", generator=sv.Generator(12))
    i1 = iwae_bound(nl.x, nl.encode, nl.decode, nl.prior, 1, generator=sv.Generator(12))
    np.testing.assert_allclose(_np(i1), _np(r.elbo), rtol=1e-12, atol=1e-12)


def test_iwae_nondecreasing_in_k_on_average(bk, float64):
    m = LinearGaussian(bk, B=1, seed=4)
    R = 300  # independent repetitions, as a batch of copies of the one example
    q0 = m.poor_q(shift=0.6, widen=1.8)
    xs = bk.tensor(np.repeat(m.x_np, R, axis=0))

    def encode(x):
        return Independent(Normal(F.broadcast_to(q0.base_dist.loc, (R, m.L)),
                                  F.broadcast_to(q0.base_dist.scale, (R, m.L))), 1)

    means, ses = [], []
    for k in (1, 4, 16, 64):
        v = _np(iwae_bound(xs, encode, m.decode, m.prior, k, generator=sv.Generator(k)))
        means.append(v.mean())
        ses.append(v.std() / math.sqrt(R))
    lp = m.log_px()[0]
    for a, b_, sa, sb in zip(means, means[1:], ses, ses[1:]):
        assert b_ > a - 3 * math.hypot(sa, sb), (means, ses)
    assert means[-1] - means[0] > 3 * math.hypot(ses[0], ses[-1])  # it really tightens
    assert means[-1] < lp + 3 * ses[-1]  # and stays a lower bound on average
    assert lp - means[-1] < lp - means[0]


def test_log_likelihood_estimate_chunks_and_ess(bk, float64):
    m = LinearGaussian(bk, seed=5)
    q = m.poor_q(shift=0.1, widen=1.3, shrink=0.9)  # a decent proposal, as a trained encoder gives
    one = log_likelihood(m.x, lambda x: q, m.decode, m.prior, k=600, chunk=600, generator=sv.Generator(8))
    chunked = log_likelihood(m.x, lambda x: q, m.decode, m.prior, k=600, chunk=70, generator=sv.Generator(8))
    if bk.name != "cupy":  # NumPy streams draw the same numbers in chunks as in one call
        np.testing.assert_allclose(_np(chunked.log_px), _np(one.log_px), rtol=1e-12)
        np.testing.assert_allclose(_np(chunked.ess), _np(one.ess), rtol=1e-9)
    ess = _np(chunked.ess)
    assert np.all(ess >= 1) and np.all(ess <= 600)
    # delta method: sd(log mean w) ~ sd(w) / (sqrt(k) mean w) = sqrt(1/ESS - 1/k); allow 4 of them
    tol = 4 * np.sqrt(1 / ess - 1 / 600)
    assert np.all(np.abs(_np(chunked.log_px) - m.log_px()) < tol), (_np(chunked.log_px), m.log_px(), ess)
    # a worse proposal has a smaller effective sample size
    bad = log_likelihood(m.x, lambda x: m.poor_q(shift=1.0, widen=0.7), m.decode, m.prior, k=600, chunk=70,
                         generator=sv.Generator(8))
    assert np.all(_np(bad.ess) < ess)
    assert not chunked.log_px.requires_grad


# --------------------------------------------------------------------------------------------------
# beta and free bits change the objective, never the reported bound

def test_beta_and_free_bits_change_objective_not_elbo(bk, float64):
    m = LinearGaussian(bk, B=5, L=3, seed=6)
    q = m.poor_q()

    def run(**kw):
        return elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=2, generator=sv.Generator(21), **kw)

    base = run()
    np.testing.assert_allclose(_np(base.objective), _np(base.elbo), rtol=1e-14)
    rb = run(beta=4.0)
    np.testing.assert_allclose(_np(rb.elbo), _np(base.elbo), rtol=1e-14)
    np.testing.assert_allclose(_np(rb.objective), _np(base.reconstruction) - 4.0 * _np(base.kl), rtol=1e-12)
    kl = _np(base.kl_per_dim)
    lam = float(np.sort(kl.mean(0))[1]) + 1e-3  # between dims: some below, some above
    rf = run(free_bits=lam, beta=2.0)
    np.testing.assert_allclose(_np(rf.elbo), _np(base.elbo), rtol=1e-14)
    below = kl.mean(0) < lam
    assert below.any() and not below.all()
    expected = _np(base.reconstruction) - 2.0 * np.where(below[None, :], lam, kl).sum(-1)
    np.testing.assert_allclose(_np(rf.objective), expected, rtol=1e-12)
    # the batch mean equals the paper's objective: mean rec - beta * sum_j max(lambda, mean_i KL_ij)
    np.testing.assert_allclose(_np(rf.objective).mean(), _np(base.reconstruction).mean()
                               - 2.0 * np.maximum(lam, kl.mean(0)).sum(), rtol=1e-12)
    assert not np.allclose(_np(rf.objective), _np(rf.elbo))


def test_free_bits_stop_the_kl_gradient_below_the_threshold(bk, float64):
    m = LinearGaussian(bk, B=3, seed=7)
    loc = bk.tensor(m.post_mean, requires_grad=True)
    log_var = bk.tensor(np.log(m.post_var) * np.ones((3, 1)), requires_grad=True)

    def encode(x):
        return Independent(Normal.from_log_var(loc, log_var), 1)

    r = elbo(m.x, encode, m.decode, m.prior, free_bits=1e3, generator=sv.Generator(5))  # every dim below
    r.objective.sum().backward()
    g_fb = _np(loc.grad).copy()
    loc.grad = log_var.grad = None
    r2 = elbo(m.x, encode, m.decode, m.prior, generator=sv.Generator(5))
    r2.reconstruction.sum().backward()
    np.testing.assert_allclose(g_fb, _np(loc.grad), rtol=1e-12)  # only the reconstruction pulls


# --------------------------------------------------------------------------------------------------
# the terms of the ELBO, one public function each

def test_reconstruction_is_the_monte_carlo_average_of_log_px(bk, float64):
    m = LinearGaussian(bk, B=4, L=3, seed=12)
    q = m.poor_q()

    def log_px_np(z):  # log N(x; w z + b, s^2 I), summed over the pixels, written out with NumPy
        mu = z * m.w + m.b
        return (-((m.x_np - mu) ** 2) / (2 * m.s**2) - math.log(m.s) - 0.5 * LOG2PI).sum(-1)

    S = 5
    z = q.rsample((S,), generator=sv.Generator(40))  # (S, B, L)
    expected = np.mean([log_px_np(zs) for zs in _np(z)], axis=0)
    np.testing.assert_allclose(_np(reconstruction(m.x, m.decode, z, S)), expected, rtol=1e-12)
    z1 = q.rsample((), generator=sv.Generator(41))  # one draw, without the sample axis
    np.testing.assert_allclose(_np(reconstruction(m.x_np, m.decode, z1)), log_px_np(_np(z1)), rtol=1e-12)
    # it is elbo's reconstruction term, from the same draws
    r = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=S, generator=sv.Generator(40))
    np.testing.assert_array_equal(_np(r.reconstruction), _np(reconstruction(m.x, m.decode, z, S)))


def test_kl_per_dim_closed_form_monte_carlo_and_none(bk, float64):
    rng = np.random.default_rng(13)
    qm, qs = rng.normal(size=(4, 2, 3)), rng.uniform(0.3, 2.0, size=(4, 2, 3))
    pm, ps = rng.normal(size=(2, 3)), rng.uniform(0.5, 1.5, size=(2, 3))  # the prior: no batch dim
    q = Independent(Normal(bk.tensor(qm), bk.tensor(qs)), 2)  # a (2, 3) latent per example
    prior = Independent(Normal(bk.tensor(pm), bk.tensor(ps)), 2)
    closed = np.log(ps / qs) + (qs**2 + (qm - pm) ** 2) / (2 * ps**2) - 0.5  # per element, (4, 2, 3)
    per = kl_per_dim(q, prior)
    assert per.shape == (4, 6)  # one column per latent dimension
    np.testing.assert_allclose(_np(per), closed.reshape(4, 6), rtol=1e-12)
    np.testing.assert_allclose(_np(per).sum(-1), _np(kl_divergence(q, prior)), rtol=1e-12)
    # Monte Carlo from given draws: the mean over the sample axis of the per-element log-ratio
    z = q.rsample((7,), generator=sv.Generator(42))
    zn = _np(z)

    def log_n(v, mu, sd):
        return -((v - mu) ** 2) / (2 * sd**2) - np.log(sd) - 0.5 * LOG2PI

    ratio = log_n(zn, qm, qs) - log_n(zn, pm, ps)  # (7, 4, 2, 3)
    np.testing.assert_allclose(_np(kl_per_dim(q, prior, z)), ratio.mean(0).reshape(4, 6), rtol=1e-12)
    z1 = q.rsample((), generator=sv.Generator(43))  # one draw, no sample axis: no average
    ratio1 = log_n(_np(z1), qm, qs) - log_n(_np(z1), pm, ps)
    np.testing.assert_allclose(_np(kl_per_dim(q, prior, z1)), ratio1.reshape(4, 6), rtol=1e-12)
    # a standard-normal prior broadcast over the batch: the closed form of Kingma and Welling
    std = Independent(Normal.standard((2, 3), dtype="float64", backend=bk.backend), 2)
    np.testing.assert_allclose(_np(kl_per_dim(q, std)), (0.5 * (qm**2 + qs**2 - 1) - np.log(qs)).reshape(4, 6),
                               rtol=1e-12)
    # no per-dimension KL where the pair does not factorize
    flat_q = Independent(Normal(bk.tensor(qm.reshape(4, 6)), bk.tensor(qs.reshape(4, 6))), 1)
    assert kl_per_dim(flat_q, StdNormalND(6, bk)) is None
    assert kl_per_dim(flat_q, prior) is None  # event shapes (6,) and (2, 3) differ
    assert kl_per_dim(flat_q, StdNormalND(6, bk), flat_q.rsample((3,), generator=sv.Generator(44))) is None


def test_free_bits_kl_value_and_its_gradient_stops_below_the_threshold(bk, float64):
    rng = np.random.default_rng(14)
    kl_np = rng.uniform(0.0, 2.0, size=(5, 4))
    kl_np[:, 1] *= 0.1  # a collapsed dimension, well below the threshold
    lam = 0.8
    below = kl_np.mean(0) < lam
    assert below.any() and not below.all()
    per = bk.tensor(kl_np, requires_grad=True)
    fb = free_bits_kl(per, lam)
    np.testing.assert_allclose(_np(fb), np.where(below[None, :], lam, kl_np).sum(-1), rtol=1e-14)
    # the batch mean is the paper's sum_j max(lambda, mean_i KL_ij) -- not the per-example max
    np.testing.assert_allclose(_np(fb).mean(), np.maximum(lam, kl_np.mean(0)).sum(), rtol=1e-14)
    F.sum(fb).backward()
    np.testing.assert_array_equal(_np(per.grad), np.broadcast_to(np.where(below, 0.0, 1.0), kl_np.shape))
    # no threshold is a no-op on a non-negative KL; a negative one, or no per-dim KL, is refused
    np.testing.assert_allclose(_np(free_bits_kl(bk.tensor(kl_np), 0.0)), kl_np.sum(-1), rtol=1e-14)
    with pytest.raises(ValueError, match="nats must be >= 0"):
        free_bits_kl(bk.tensor(kl_np), -0.1)
    with pytest.raises(ValueError, match="free_bits needs the KL per latent dimension"):
        free_bits_kl(None, lam)


def test_elbo_is_its_terms_put_together(bk, float64):
    m = LinearGaussian(bk, B=5, L=3, seed=15)
    q = m.poor_q()
    S, beta, lam = 3, 1.5, 0.4
    for kl in ("analytic", "mc"):
        r = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=S, kl=kl, beta=beta, free_bits=lam,
                 generator=sv.Generator(45))
        z = q.rsample((S,), generator=sv.Generator(45))
        rec = reconstruction(m.x, m.decode, z, S)
        per = kl_per_dim(q, m.prior, z if kl == "mc" else None)
        np.testing.assert_array_equal(_np(r.reconstruction), _np(rec))
        np.testing.assert_array_equal(_np(r.kl_per_dim), _np(per))
        np.testing.assert_array_equal(_np(r.kl), _np(per).sum(-1))
        np.testing.assert_allclose(_np(r.elbo), _np(rec) - _np(per).sum(-1), rtol=1e-14)
        np.testing.assert_allclose(_np(r.objective), _np(rec) - beta * _np(free_bits_kl(per, lam)), rtol=1e-14)


# --------------------------------------------------------------------------------------------------
# the reduction contract and the errors around it

def test_reduction_contract(bk, float64):
    m = LinearGaussian(bk, B=4, L=3, seed=8)
    q = m.poor_q()
    r = elbo(m.x, lambda x: q, m.decode, m.prior, n_samples=1, generator=sv.Generator(31))
    assert isinstance(r, ELBO)
    for t in (r.elbo, r.reconstruction, r.kl, r.objective):
        assert t.shape == (4,)
    assert r.kl_per_dim.shape == (4, 3)
    np.testing.assert_allclose(_np(r.kl_per_dim).sum(-1), _np(r.kl), rtol=1e-12)
    np.testing.assert_allclose(_np(r.elbo), _np(r.reconstruction) - _np(r.kl), rtol=1e-12)
    # the reconstruction is the SUM over pixels of the per-pixel log-density at the same z
    z = _np(q.rsample((1,), generator=sv.Generator(31)))[0]
    mu = z * m.w + m.b
    per_pixel = -((m.x_np - mu) ** 2) / (2 * m.s**2) - math.log(m.s) - 0.5 * LOG2PI
    np.testing.assert_allclose(_np(r.reconstruction), per_pixel.sum(-1), rtol=1e-12)
    assert not np.allclose(_np(r.reconstruction), per_pixel.mean(-1))
    # analytic per-dimension KL against the closed form of KL(N(m, s^2) || N(0, 1))
    qm, qs = _np(q.base_dist.loc), _np(q.base_dist.scale)
    np.testing.assert_allclose(_np(r.kl_per_dim), 0.5 * (qm**2 + qs**2 - 1) - np.log(qs), rtol=1e-12)
    np.testing.assert_allclose(_np(r.loss()), -_np(r.objective).mean(), rtol=1e-14)


def test_decoder_that_does_not_sum_over_pixels_is_refused(bk, float64):
    m = LinearGaussian(bk)
    per_pixel_decoder = lambda z: Normal(z, 1.0)  # log_prob per pixel, not per example
    with pytest.raises(ValueError, match=r"decode\(z\)\.log_prob\(x\) has shape \(4, 3\).*summed over the pixels"):
        elbo(m.x, m.encode_exact, per_pixel_decoder, m.prior)
    with pytest.raises(ValueError, match=r"encode\(x\) returned a Normal with batch_shape \(4, 3\).*Independent"):
        elbo(m.x, lambda x: m.encode_exact(x).base_dist, m.decode, m.prior)
    with pytest.raises(TypeError, match="encode\\(x\\) must return a Distribution"):
        elbo(m.x, lambda x: x, m.decode, m.prior)


def test_argument_errors(bk, float64):
    m = LinearGaussian(bk)
    with pytest.raises(ValueError, match='kl must be "analytic" or "mc"'):
        elbo(m.x, m.encode_exact, m.decode, m.prior, kl="exact")
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        elbo(m.x, m.encode_exact, m.decode, m.prior, n_samples=0)
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        elbo(m.x, m.encode_exact, m.decode, m.prior, free_bits=-1.0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        iwae_bound(m.x, m.encode_exact, m.decode, m.prior, 0)
    with pytest.raises(ValueError, match="k and chunk must be >= 1"):
        log_likelihood(m.x, m.encode_exact, m.decode, m.prior, k=10, chunk=0)


class StdNormalND(Distribution):
    """N(0, I) over R^L written as one event (no Independent, no registered KL rule)."""

    has_rsample = True

    def __init__(self, L, bk):
        self.L, self.bk = L, bk
        super().__init__(event_shape=(L,))

    def log_prob(self, z):
        return F.sum(-0.5 * z * z, axis=-1) - 0.5 * self.L * LOG2PI


def test_prior_without_closed_form(bk, float64):
    m = LinearGaussian(bk, seed=9)
    prior = StdNormalND(m.L, bk)
    with pytest.raises(NotImplementedError, match=r"no closed form.*kl='mc'"):
        elbo(m.x, m.encode_exact, m.decode, prior)
    r = elbo(m.x, m.encode_exact, m.decode, prior, kl="mc", generator=sv.Generator(0))
    np.testing.assert_allclose(_np(r.elbo), m.log_px(), rtol=1e-10)
    assert r.kl_per_dim is None
    with pytest.raises(ValueError, match="free_bits needs the KL per latent dimension"):
        elbo(m.x, m.encode_exact, m.decode, prior, kl="mc", free_bits=0.5)


# --------------------------------------------------------------------------------------------------
# a nonlinear amortized model: gradients through everything

class Nonlinear:
    def __init__(self, bk, B=3, D=5, L=2, H=4, seed=0):
        rng = np.random.default_rng(seed)
        self.bk, self.L = bk, L
        self.We = bk.tensor(rng.normal(size=(D, H)) * 0.5, requires_grad=True)
        self.Wo = bk.tensor(rng.normal(size=(H, 2 * L)) * 0.5, requires_grad=True)
        self.Wd = bk.tensor(rng.normal(size=(L, D)), requires_grad=True)
        self.x = bk.tensor((rng.random((B, D)) > 0.5).astype(np.float64))
        self.prior = Independent(Normal.standard((L,), dtype="float64", backend=bk.backend), 1)

    def encode(self, x, We=None, Wo=None):
        h = F.tanh(x @ (We if We is not None else self.We)) @ (Wo if Wo is not None else self.Wo)
        return Independent(Normal.from_log_var(h[:, : self.L], h[:, self.L:]), 1)

    def decode(self, z, Wd=None):
        return bernoulli_likelihood(z @ (Wd if Wd is not None else self.Wd))


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_gradcheck_through_elbo(bk, float64, kl):
    nl = Nonlinear(bk)

    def f(We, Wo, Wd):
        return elbo(nl.x, lambda x: nl.encode(x, We, Wo), lambda z: nl.decode(z, Wd), nl.prior,
                    n_samples=2, kl=kl, beta=0.5, generator=sv.Generator(3)).objective

    sv.gradcheck(f, [nl.We, nl.Wo, nl.Wd])


def test_gradcheck_through_iwae(bk, float64):
    nl = Nonlinear(bk)

    def f(We, Wo, Wd):
        return iwae_bound(nl.x, lambda x: nl.encode(x, We, Wo), lambda z: nl.decode(z, Wd), nl.prior, 3,
                          generator=sv.Generator(4))

    sv.gradcheck(f, [nl.We, nl.Wo, nl.Wd])


def test_elbo_float32_on_backend(bk):
    rng = np.random.default_rng(0)
    x = bk.tensor((rng.random((6, 8)) > 0.5).astype(np.float32))
    W = bk.tensor(rng.normal(size=(8, 4)).astype(np.float32), requires_grad=True)
    V = bk.tensor(rng.normal(size=(2, 8)).astype(np.float32), requires_grad=True)
    prior = Independent(Normal.standard((2,), dtype="float32", backend=bk.backend), 1)

    def encode(x):
        h = x @ W
        return Independent(Normal.from_log_var(h[:, :2], h[:, 2:]), 1)

    r = elbo(x, encode, lambda z: bernoulli_likelihood(z @ V), prior, n_samples=3, free_bits=0.1)
    assert sv.backend.dtype_name(r.elbo.dtype) == "float32"
    assert sv.backend.backend_of(r.elbo.data) is bk.backend
    r.loss().backward()
    assert np.all(np.isfinite(_np(W.grad))) and np.all(np.isfinite(_np(V.grad)))
