"""GaussianMixture: EM is coordinate ascent on the ELBO (docs/vae_and_gmm.md).

Checked on the recorded half-steps of ``fit_em``: the ELBO never decreases, it equals log p(x)
after every E-step, log p(x) never decreases; and the M-step is an exact maximizer (the ELBO's
gradient with respect to the parameters, computed by the engine, vanishes there).

Tolerances: the recorded values are means over the data of float64 sums of O(10) terms, so each
carries a rounding error ~1e-14; "never decreases" allows 1e-10 (near convergence the true steps are
~1e-12 and rounding may reverse their sign), "equals" uses 1e-10 relative.
"""

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.distributions import Categorical, Normal
from scratchvae.models.gaussian_mixture import EMHistory, GaussianMixture

pytestmark = pytest.mark.usefixtures("float64")


def _np(t):
    return sv.to_numpy(t)


def _true_mixture():
    means = np.array([[-4.0, 0.0], [3.0, 3.0], [2.0, -3.0]])
    variances = np.array([[1.0, 0.5], [0.4, 1.2], [0.8, 0.8]])
    return GaussianMixture.from_params(np.array([0.3, 0.3, 0.4]), means, variances)


def _data(n=200, seed=0):
    return _np(_true_mixture().sample(n, sv.Generator(seed)))


def _check_em_history(h: EMHistory):
    elbo, lp = np.array(h.elbo), np.array(h.log_px)
    tol = 1e-10 * (1 + np.abs(elbo))
    assert h.steps[0] == "init" and h.steps[1:3] == ["E", "M"]
    assert np.all(np.diff(elbo) >= -tol[1:]), np.diff(elbo).min()          # the ELBO never decreases
    assert np.all(np.diff(lp) >= -tol[1:]), np.diff(lp).min()              # nor does log p(x)
    assert np.all(elbo <= lp + tol)                                         # it is a lower bound
    e_elbo, e_lp = h.after("E")
    np.testing.assert_allclose(e_elbo, e_lp, rtol=1e-10)                    # tight after every E-step
    _m_elbo, m_lp = h.after("M")
    assert np.all(np.array(m_lp) >= np.array(e_lp) - tol[0])              # an M-step raises log p(x) too
    # and the E-step really moved something: the bound was loose before it (init q is uniform)
    assert elbo[1] - elbo[0] > 1e-3


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_em_is_coordinate_ascent_on_the_elbo(bk, covariance_type):
    X = bk.tensor(_data())
    gmm = GaussianMixture(3, 2, covariance_type)
    h = gmm.fit_em(X, max_iter=25, generator=sv.Generator(1))
    _check_em_history(h)
    assert h.n_iter >= 2 and len(h.steps) == 1 + 2 * h.n_iter
    assert gmm.means.device == X.device
    # the recorded last value is the model's own log p(x) (the history is not a separate computation)
    np.testing.assert_allclose(h.log_px[-1], F.mean(gmm.log_marginal(X)).item(), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_m_step_is_an_exact_maximizer_of_the_elbo(bk, covariance_type):
    """After an M-step with q fixed, d/dtheta sum_n ELBO(x_n, q_n; theta) = 0 (by the engine's autograd)."""
    X = bk.tensor(_data(seed=2))
    gmm = GaussianMixture(3, 2, covariance_type)
    gmm.fit_em(X, max_iter=3, generator=sv.Generator(3))
    with sv.no_grad():
        q = gmm.posterior(X)
    q = Categorical(logits=q.logits.detach())
    gmm.fit_em(X, max_iter=1, init=None)  # one more E-step (same q as above) and one M-step
    gmm.zero_grad()
    F.sum(gmm.elbo(X, q)).backward()
    # the gradient terms are sums of ~200 O(1) numbers: their rounding error is ~1e-13
    for p in gmm.parameters():
        np.testing.assert_allclose(bk.numpy(p.grad), 0.0, atol=1e-8)


def test_em_recovers_a_well_separated_mixture():
    X = _data(n=1500, seed=4)
    true = _true_mixture()
    gmm = GaussianMixture(3, 2)
    h = gmm.fit_em(X, max_iter=200, tol=1e-10, generator=sv.Generator(5))
    assert h.converged
    # the maximum-likelihood fit beats the generating parameters on the data it was fitted to
    assert h.log_px[-1] >= F.mean(true.log_marginal(X)).item()
    order = np.argsort(_np(gmm.means)[:, 0])  # match components by their x-coordinate
    ref = np.argsort(_np(true.means)[:, 0])
    # with ~500 points per component, the estimates' standard errors are ~0.05 (means) and
    # ~6% (variances, weights); allow ~5 of them
    np.testing.assert_allclose(_np(gmm.means)[order], _np(true.means)[ref], atol=0.25)
    np.testing.assert_allclose(_np(gmm.variances)[order], _np(true.variances)[ref], rtol=0.3)
    np.testing.assert_allclose(_np(gmm.weights)[order], _np(true.weights)[ref], atol=0.05)


def test_variance_floor_stops_a_component_collapsing_onto_repeated_points(bk):
    rng = np.random.default_rng(6)
    # a spread cluster plus one point repeated 20 times: its component's variance would go to 0
    X = np.concatenate([rng.normal(size=(100, 2)) * 2, np.tile([[8.0, 8.0]], (20, 1))])
    for ct in ("diag", "full"):
        gmm = GaussianMixture(2, 2, ct)
        h = gmm.fit_em(bk.tensor(X), max_iter=40, generator=sv.Generator(0))
        floor = 1e-6 * X.var(axis=0).mean()
        np.testing.assert_allclose(h.var_floor, floor, rtol=1e-12)
        var = _np(gmm.variances)
        # the collapsed component sits exactly at the floor (to rounding), and everything stays finite
        np.testing.assert_allclose(var.min(), floor, rtol=1e-6)
        assert np.all(var >= floor * (1 - 1e-9))
        assert np.all(np.isfinite(h.elbo)) and np.all(np.isfinite(h.log_px))
        _check_em_history(h)  # the constrained M-step is still an exact maximizer: EM stays monotone


def test_kmeans_plus_plus_picks_data_points_in_distinct_clusters(bk):
    rng = np.random.default_rng(7)
    centers = np.array([[-20.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    X = np.concatenate([c + rng.normal(size=(50, 2)) for c in centers])
    for seed in range(10):
        gmm = GaussianMixture(3, 2)
        gmm.fit_em(bk.tensor(X), max_iter=0, generator=sv.Generator(seed))  # seeding only
        mu = _np(gmm.means)
        # every seed is a data point ...
        assert all(np.any(np.all(X == m, axis=1)) for m in mu)
        # ... and D^2 sampling puts one in each far-apart cluster (the chance of two in one cluster is
        # ~ (spread / separation)^2 ~ 1e-3 per draw)
        nearest = np.argmin(((mu[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        assert sorted(nearest) == [0, 1, 2], (seed, mu)
        np.testing.assert_allclose(_np(gmm.weights), 1 / 3, rtol=1e-12)
        np.testing.assert_allclose(_np(gmm.variances), np.broadcast_to(X.var(axis=0), (3, 2)), rtol=1e-10)


def test_decode_sample_and_prior_shapes(bk):
    gmm = _true_mixture().to(bk.backend)
    x, z = gmm.sample(4000, sv.Generator(8), return_labels=True)
    assert x.shape == (4000, 2) and z.shape == (4000,)
    freq = np.bincount(_np(z).astype(int), minlength=3) / 4000
    # multinomial standard error sqrt(p (1 - p) / n) ~ 0.008: allow 5 of them
    np.testing.assert_allclose(freq, [0.3, 0.3, 0.4], atol=0.04)
    d = gmm.decode(sv.tensor(bk.array(np.array([0, 2, 1]))))
    assert d.batch_shape == (3,) and d.event_shape == (2,)
    np.testing.assert_allclose(_np(d.mean), _np(gmm.means)[[0, 2, 1]])
    assert gmm.prior().num_categories == 3


def test_errors_are_clear(bk):
    gmm = GaussianMixture(2, 2)
    X = bk.tensor(np.random.default_rng(0).normal(size=(10, 2)))
    with pytest.raises(ValueError, match='init must be "k-means\\+\\+" or None'):
        gmm.fit_em(X, init="random")
    with pytest.raises(ValueError, match="rel_var_floor must be > 0"):
        gmm.fit_em(X, rel_var_floor=0.0)
    with pytest.raises(ValueError, match="1 examples cannot seed 2 components"):
        gmm.fit_em(X[:1])
    with pytest.raises(ValueError, match=r"x must be a \(batch, 2\) matrix"):
        gmm.log_marginal(bk.tensor(np.zeros((3, 3))))
    with pytest.raises(TypeError, match="q must be a Categorical"):
        gmm.elbo(X, Normal(0.0, 1.0))
    with pytest.raises(ValueError, match=r"batch_shape \(10,\) and 2 categories"):
        gmm.elbo(X, Categorical(logits=bk.tensor(np.zeros((10, 3)))))
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixture(2, 2, "spherical")
    with pytest.raises(ValueError, match="exactly one of variances="):
        GaussianMixture.from_params(np.ones(2), np.zeros((2, 2)))
