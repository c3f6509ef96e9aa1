"""The testing kit itself (scratchvae.testing, docs/testing.md): every statistical assertion passes a
correct estimator and fails a biased one, on toy estimators with known moments and on the library's
own Monte-Carlo ELBO, IWAE bound and pathwise gradient against the tractable models' exact values.

False-alarm rates: ``alpha`` is an upper bound on the probability that a correct estimator fails.
The slow test ``test_false_alarm_rate_against_nominal`` measures it over a few hundred seeds at a
loose nominal rate (0.05): one look alone must be calibrated (observed rate within a binomial
tolerance of nominal), the sequential procedure must stay below nominal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.distributions import Categorical, Independent, Normal
from scratchvae.distributions.multivariate_normal import MultivariateNormal
from scratchvae.elbo import elbo, iwae_bound
from scratchvae.models.gaussian_mixture import GaussianMixture
from scratchvae.models.linear_gaussian import LinearGaussian
from scratchvae.models.normal_normal import NormalNormal
from scratchvae.testing import (
    EstimatorCheck,
    assert_elbo_identity,
    assert_gradient_unbiased,
    assert_lower_bound,
    assert_monotone_in_k,
    assert_unbiased,
    exact_elbo,
    exact_elbo_gradient,
    exact_iwae,
    exact_log_marginal,
    z_threshold,
)

pytestmark = pytest.mark.usefixtures("float64")


# -- toy estimators with known moments ------------------------------------------------------------

def gaussian_draws(mean, sd=1.0, seed=0, batch=500):
    """An estimator: batches of N(mean, sd^2) draws of mean's shape."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(mean, dtype=float)
    return lambda: mean + sd * rng.standard_normal((batch,) + mean.shape)


def test_z_threshold_is_the_bonferroni_normal_quantile():
    assert z_threshold(0.05) == pytest.approx(1.959964, abs=1e-6)
    assert z_threshold(0.05, sided=1) == pytest.approx(1.644854, abs=1e-6)
    assert z_threshold(0.05, comparisons=5, looks=2) == pytest.approx(z_threshold(0.005), rel=1e-12)
    assert z_threshold(1e-6) == pytest.approx(4.891638, abs=1e-5)
    with pytest.raises(ValueError):
        z_threshold(0.0)


def test_assert_unbiased_passes_correct_and_fails_biased():
    res = assert_unbiased(gaussian_draws([1.0, -2.0, 3.0]), [1.0, -2.0, 3.0])
    assert isinstance(res, EstimatorCheck) and res.n == 1000 and res.looks == 1 and res.max_z < res.threshold
    assert_unbiased(gaussian_draws(0.5, seed=1, batch=1), 0.5, n_initial=200, n_max=400)  # one draw per call
    with pytest.raises(AssertionError) as e:
        assert_unbiased(gaussian_draws([1.0, -2.0, 3.3], seed=2), [1.0, -2.0, 3.0])
    msg = str(e.value)
    assert "at component (2,)" in msg and "after 16000 draws" in msg and "z = " in msg and "alpha=1e-06" in msg


def test_the_sequential_looks_grow_the_sample_before_failing():
    # power is that of the first look: a bias of 0.5 sd (z ~ 16 at 1000 draws) fails, after all 5 looks
    calls = []
    draw = gaussian_draws(0.5, seed=3)

    def est():
        calls.append(1)
        return draw()

    with pytest.raises(AssertionError, match="after 16000 draws"):
        assert_unbiased(est, 0.0, alpha=1e-6)
    assert len(calls) == 32
    # a correct estimator stops at the first look that passes
    assert assert_unbiased(gaussian_draws(0.0, seed=4), 0.0).looks == 1
    # an unlucky start (the first 1000 draws shifted by 0.3 sd: z ~ 9.5) is outgrown: z ~ 6.7 at 2000
    # draws, ~ 4.7 at 4000, ~ 3.4 at 8000 (+- 1), against the threshold 5.2
    rng, n = np.random.default_rng(8), [0]

    def transient():
        n[0] += 500
        return rng.standard_normal(500) + (0.3 if n[0] <= 1000 else 0.0)

    res = assert_unbiased(transient, 0.0)
    assert 2 <= res.looks < 5 and res.n == 1000 * 2 ** (res.looks - 1)


def test_zero_variance_estimators_use_the_rounding_floor():
    assert_unbiased(lambda: np.full((10, 2), 0.1 + 0.2), [0.3, 0.3], n_initial=10, n_max=10)
    with pytest.raises(AssertionError, match="z = inf"):
        assert_unbiased(lambda: np.full((10,), 1.0 + 1e-9), 1.0, n_initial=10, n_max=10)


def test_the_protocol_is_checked():
    with pytest.raises(ValueError, match="shape"):
        assert_unbiased(lambda: np.zeros((4, 3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="n_initial"):
        assert_unbiased(lambda: 0.0, 0.0, n_initial=100, n_max=10)


def test_assert_lower_bound_passes_below_and_fails_above():
    assert_lower_bound(gaussian_draws([-0.5, 0.0]), [0.0, 0.0])  # equality is allowed
    with pytest.raises(AssertionError, match="not a lower bound at component"):
        assert_lower_bound(gaussian_draws([-0.5, 0.2], seed=5), [0.0, 0.0])


def test_assert_monotone_in_k_passes_increasing_and_fails_a_dip():
    def increasing(k, seed=6):
        return gaussian_draws(-1.0 / k, seed=seed + k)

    res = assert_monotone_in_k(increasing, [1, 2, 4, 8], exact=0.0)
    assert res.mean.shape == (4,)
    with pytest.raises(AssertionError, match="decreases from k=4 to k=8"):
        assert_monotone_in_k(lambda k: gaussian_draws(-1.0 / k if k < 8 else -0.6, seed=k), [1, 2, 4, 8])
    with pytest.raises(AssertionError, match="at k=2 exceeds exact"):
        assert_monotone_in_k(increasing, [1, 2], exact=-0.8)
    with pytest.raises(ValueError):
        assert_monotone_in_k(increasing, [4, 2])


def test_assert_gradient_unbiased_on_tuples_of_parameters():
    rng = np.random.default_rng(7)
    exact = (np.array([1.0, 2.0]), np.array([[0.5]]))
    assert_gradient_unbiased(lambda: (exact[0] + rng.normal(size=2), exact[1] + rng.normal(size=(1, 1))), exact)
    with pytest.raises(AssertionError, match=r"at parameter 1, position \(0, 0\)"):
        assert_gradient_unbiased(lambda: (exact[0] + rng.normal(size=2), exact[1] + 0.3 + rng.normal(size=(1, 1))),
                                 exact, n_max=2000)


def test_every_assert_helper_hides_its_frame():
    import inspect

    import scratchvae.testing as T  # re-exported from testing_stats

    for name in ("assert_elbo_identity", "assert_unbiased", "assert_lower_bound", "assert_monotone_in_k",
                 "assert_gradient_unbiased"):
        assert "__tracebackhide__ = True" in inspect.getsource(getattr(T, name)), name


# -- the library's own estimators against the tractable models ------------------------------------

def _lg():
    rng = np.random.default_rng(11)
    W = np.array([[1.0, 0.9], [0.8, 1.0], [0.5, 0.7]])
    return LinearGaussian(W, rng.normal(size=3), 0.3), rng.normal(size=(1, 3))


def _wide(model):
    def encode(x):
        p = model.posterior(x)
        return Independent(Normal(p.loc + 0.3, sv.functional.sqrt(p.variance)), 1)
    return encode


def _repeat(x, m):
    return sv.tensor(np.repeat(np.asarray(x), m, axis=0))


def _rows(t, m):
    """A (1, ...) Tensor broadcast to m rows: one q per repeated example."""
    return sv.functional.broadcast_to(t, (m,) + tuple(t.shape[1:]))


def test_mc_elbo_is_unbiased_for_the_closed_form_and_a_lower_bound():
    model, x = _lg()
    enc, m = _wide(model), 2000  # per-draw sd ~ 6: se ~ 0.07 at 8000 draws
    xs, gen = _repeat(x, m), sv.Generator(0)
    exact = sv.to_numpy(model.elbo(x, enc(x)))[0]
    est = lambda: elbo(xs, enc, model.decode, model.prior(), generator=gen).elbo
    kw = dict(n_initial=8000, n_max=32000)
    assert_unbiased(est, exact, **kw)
    assert_lower_bound(est, sv.to_numpy(model.log_marginal(x))[0], **kw)
    with pytest.raises(AssertionError):  # a planted bug: the KL (0.61 nats) counted twice
        assert_unbiased(lambda: est() - elbo(xs, enc, model.decode, model.prior(), generator=gen).kl, exact, **kw)


def test_iwae_increases_with_k_and_stays_below_log_px():
    model, x = _lg()
    enc, m = _wide(model), 500
    xs = _repeat(x, m)
    lp = sv.to_numpy(model.log_marginal(x))[0]

    def iwae(k):
        gen = sv.Generator(k)
        return lambda: iwae_bound(xs, enc, model.decode, model.prior(), k, generator=gen)

    assert_monotone_in_k(iwae, [1, 4, 16], exact=lp, n_initial=500, n_max=2000)
    assert_unbiased(iwae(1), sv.to_numpy(model.elbo(x, enc(x)))[0], n_initial=500, n_max=2000)  # IWAE_1 = ELBO
    def iwae_no_log_k(k):  # a planted bug: logsumexp of the log-weights without the - log k
        est = iwae(k)
        return lambda: est() + math.log(k)

    with pytest.raises(AssertionError, match="at k=16 exceeds exact"):
        assert_monotone_in_k(iwae_no_log_k, [1, 4, 16], exact=lp, n_initial=500, n_max=1000)


def test_pathwise_gradient_of_the_normal_normal_elbo_is_unbiased():
    model = NormalNormal(0.5, 1.3, 0.8)
    x = np.array([[0.2, 1.1, -0.4, 0.9]])
    m0, s0 = 0.1, 0.4
    dm, ds = (sv.to_numpy(g)[0] for g in model.elbo_gradients(x, Normal(sv.tensor([m0]), sv.tensor([s0]))))
    xs, gen, reps = _repeat(x, 200), sv.Generator(3), 200

    def grad(bug=False):
        loc = sv.tensor(np.full(reps, m0), requires_grad=True)
        scale = sv.tensor(np.full(reps, s0), requires_grad=True)
        q = Normal(loc, scale)
        r = elbo(xs, lambda _: q, lambda z: model.decode(z), model.prior(), generator=gen)
        (r.elbo.sum() if not bug else (r.reconstruction - 0.5 * r.kl).sum()).backward()
        return np.stack([sv.to_numpy(loc.grad), sv.to_numpy(scale.grad)], axis=-1)  # (reps, 2) draws

    assert_gradient_unbiased(grad, np.array([dm, ds]), n_initial=1000, n_max=4000)
    with pytest.raises(AssertionError, match=r"at component \(1,\)"):  # half the KL: d/dsigma is off
        assert_gradient_unbiased(lambda: grad(bug=True), np.array([dm, ds]), n_initial=1000, n_max=2000)


def test_assert_elbo_identity_still_holds_and_hides_its_frame():
    model, x = _lg()
    out = assert_elbo_identity(model, x, _wide(model)(x))
    assert out["kl"][0] > 0


def test_the_assertions_read_back_every_backend(sv_backend):
    # the plugin's own fixture, in this project's suite: Tensors on NumPy, on array-api-strict's
    # device and on CuPy are read back by the assertions, and the exact targets are computed there
    model, x = _lg()
    assert sv.get_backend().name == sv_backend.name  # the model was built there
    enc = _wide(model)
    xt = sv_backend.tensor(x)
    xs, gen = sv_backend.tensor(np.repeat(x, 2000, axis=0)), sv.Generator(5)
    est = lambda: elbo(xs, enc, model.decode, model.prior(), generator=gen).elbo
    assert_unbiased(est, model.elbo(xt, enc(xt))[0], n_initial=8000, n_max=16000)  # a Tensor target
    assert_lower_bound(est, exact_log_marginal(model, xt)[0], n_initial=8000, n_max=16000)
    g = exact_elbo_gradient(model, xt, lambda loc: Independent(Normal(loc, sv_backend.tensor(np.ones((1, 2)))), 1),
                            [np.zeros((1, 2))])
    assert g[0].shape == (1, 2) and np.isfinite(g[0]).all()


# -- exact targets ----------------------------------------------------------------------------------

def _gmm():
    return GaussianMixture.from_params([0.3, 0.5, 0.2], [[-2.0, 0.0], [1.0, 1.0], [3.0, -1.0]],
                                       [[0.5, 1.0], [1.0, 0.4], [0.8, 0.8]])


def test_exact_targets_are_the_models_closed_forms():
    model, x = _lg()
    q = _wide(model)(x)
    np.testing.assert_array_equal(exact_elbo(model, x, q), sv.to_numpy(model.elbo(x, q)))
    np.testing.assert_array_equal(exact_iwae(model, x, q), exact_elbo(model, x, q))
    lp = exact_log_marginal(model, x)
    np.testing.assert_array_equal(lp, sv.to_numpy(model.log_marginal(x)))
    assert (exact_elbo(model, x, q) < lp).all()
    gmm, xg = _gmm(), np.array([[0.0, 0.5], [2.0, -1.0]])
    qg = Categorical(probs=sv.tensor([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]]))
    assert_elbo_identity(gmm, xg, qg)
    assert (exact_elbo(gmm, xg, qg) < exact_log_marginal(gmm, xg)).all()
    with pytest.raises(ValueError, match="no closed form for k=4"):
        exact_iwae(model, x, q, k=4)
    with pytest.raises(TypeError, match="tractable model"):
        exact_elbo(object(), x, q)


def test_exact_elbo_gradient_agrees_with_the_hand_derived_normal_normal_gradient():
    model = NormalNormal(0.5, 1.3, 0.8)
    x = np.array([[0.2, 1.1, -0.4, 0.9], [1.5, 0.3, 0.8, 2.0]])
    m, s = np.array([0.1, 1.0]), np.array([0.4, 0.2])
    dm, ds = exact_elbo_gradient(model, x, lambda m, s: Normal(m, s), [m, s])
    cm, cs = model.elbo_gradients(x, Normal(sv.tensor(m), sv.tensor(s)))
    np.testing.assert_allclose(dm, sv.to_numpy(cm), rtol=1e-12)
    np.testing.assert_allclose(ds, sv.to_numpy(cs), rtol=1e-12)
    assert all(p.grad is None for p in model.parameters())  # the model's own gradients untouched


def test_exact_elbo_gradient_agrees_with_finite_differences():
    model, x = _lg()

    def make_q(loc, log_scale):
        return Independent(Normal.from_log_scale(loc, log_scale), 1)

    loc, ls = np.array([[0.2, -0.3]]), np.array([[-0.5, 0.1]])
    g_loc, g_ls = exact_elbo_gradient(model, x, make_q, [loc, ls])
    h = 1e-6
    for which, g in ((0, g_loc), (1, g_ls)):
        for j in range(2):
            p = [loc.copy(), ls.copy()]
            p[which][0, j] += h
            up = exact_elbo(model, x, make_q(*(sv.tensor(a) for a in p)))[0]
            p[which][0, j] -= 2 * h
            dn = exact_elbo(model, x, make_q(*(sv.tensor(a) for a in p)))[0]
            assert (up - dn) / (2 * h) == pytest.approx(g[0, j], rel=1e-6, abs=1e-8)


def test_mc_elbo_of_every_model_is_unbiased_for_its_exact_target():
    model, x = _lg()
    post = model.posterior(x)
    m = 2000
    xs = _repeat(x, m)
    full = MultivariateNormal(post.loc - 0.4, scale_tril=0.6 * post.scale_tril)
    gen = sv.Generator(21)
    rep = MultivariateNormal(_rows(full.loc, m), scale_tril=full.scale_tril)
    assert_unbiased(lambda: elbo(xs, lambda _: rep, model.decode, model.prior(), generator=gen).elbo,
                    exact_elbo(model, x, full)[0], n_initial=4000, n_max=16000)
    nn = NormalNormal(0.5, 1.3, 0.8)
    xn = np.array([[0.2, 1.1, -0.4, 0.9]])
    qn = Normal(sv.tensor(np.full(m, 0.3)), sv.tensor(np.full(m, 0.5)))
    assert_unbiased(lambda: elbo(_repeat(xn, m), lambda _: qn, nn.decode, nn.prior(), generator=gen).elbo,
                    exact_elbo(nn, xn, Normal(sv.tensor([0.3]), sv.tensor([0.5])))[0], n_initial=4000, n_max=16000)
    # the mixture's latent is discrete: E_q[log p(x, z) - log q(z)] by sampling z ~ q
    gmm, xg = _gmm(), np.array([[0.0, 0.5]])
    probs = np.array([0.2, 0.7, 0.1])
    qg = Categorical(probs=sv.tensor(np.tile(probs, (m, 1))))
    lj = gmm.log_joint(_repeat(xg, m))

    def mixture_elbo(entropy=True):
        z = sv.to_numpy(qg.sample(generator=gen)).astype(int)
        return sv.to_numpy(lj)[np.arange(m), z] - (np.log(probs[z]) if entropy else 0.0)

    exact = exact_elbo(gmm, xg, Categorical(probs=sv.tensor(probs[None])))[0]
    assert_unbiased(mixture_elbo, exact, n_initial=4000, n_max=16000)
    assert_lower_bound(mixture_elbo, exact_log_marginal(gmm, xg)[0], n_initial=4000, n_max=16000)
    with pytest.raises(AssertionError):  # a planted bug: - log q left out (the entropy H[q] ~ 0.8 missing)
        assert_unbiased(lambda: mixture_elbo(entropy=False), exact, n_initial=4000, n_max=8000)


def test_pathwise_and_score_function_gradients_against_exact_elbo_gradient():
    model, x = _lg()
    m, gen = 1000, sv.Generator(31)
    xs = _repeat(x, m)
    loc0, ls0 = np.array([0.2, -0.3]), np.array([-0.5, 0.1])

    def make_q(loc, log_scale):
        return Independent(Normal.from_log_scale(loc, log_scale), 1)

    exact = exact_elbo_gradient(model, x, make_q, [loc0[None], ls0[None]])
    exact = (exact[0][0], exact[1][0])

    def pathwise():  # m independent draws: row b of the leaves only touches draw b
        loc = sv.tensor(np.tile(loc0, (m, 1)), requires_grad=True)
        ls = sv.tensor(np.tile(ls0, (m, 1)), requires_grad=True)
        q = make_q(loc, ls)
        elbo(xs, lambda _: q, model.decode, model.prior(), generator=gen).elbo.sum().backward()
        return np.concatenate([sv.to_numpy(loc.grad), sv.to_numpy(ls.grad)], axis=1)  # (m, 4) draws

    assert_gradient_unbiased(pathwise, np.concatenate(exact), n_initial=2000, n_max=8000)
    # the mixture: the score-function (REINFORCE) gradient w.r.t. q's logits
    gmm, xg = _gmm(), np.array([[0.0, 0.5]])
    logits0 = np.array([0.1, 0.8, -0.5])
    g_exact = exact_elbo_gradient(gmm, xg, lambda lg: Categorical(logits=lg), [logits0[None]])[0][0]
    lj = sv.to_numpy(gmm.log_joint(_repeat(xg, m)))
    baseline = float(exact_elbo(gmm, xg, Categorical(logits=sv.tensor(logits0[None])))[0])  # a constant: no bias

    def score(entropy=True):
        lg = sv.tensor(np.tile(logits0, (m, 1)), requires_grad=True)
        q = Categorical(logits=lg)
        z = q.sample(generator=gen)
        lq = q.log_prob(z)
        f = lj[np.arange(m), sv.to_numpy(z).astype(int)] - (sv.to_numpy(lq) if entropy else 0.0)
        (lq * sv.tensor(f - baseline)).sum().backward()
        return sv.to_numpy(lg.grad)

    assert_gradient_unbiased(score, g_exact, n_initial=4000, n_max=16000)
    with pytest.raises(AssertionError, match="at component"):  # a planted bug: - log q left out of f
        assert_gradient_unbiased(lambda: score(entropy=False), g_exact, n_initial=4000, n_max=8000)


# -- the false-alarm rate, measured ---------------------------------------------------------------

@pytest.mark.slow
def test_false_alarm_rate_against_nominal(capsys):
    """Thousands of seeds of correct estimators at nominal alpha = 0.05: one look alone is calibrated
    (observed rate within a 4-sigma binomial tolerance of nominal), the sequential procedure (5 looks)
    stays below nominal.  Gaussian draws, skewed ones (exponential: the z-test rests on the CLT only),
    a one-sided check exactly at its bound, and the library's MC ELBO against the closed form."""
    nominal = 0.05
    model, x = _lg()
    enc = _wide(model)
    xs = _repeat(x, 1000)
    exact_lg = exact_elbo(model, x, enc(x))[0]

    def mc_elbo(rng):
        gen = sv.Generator(int(rng.integers(2**31)))
        return lambda: elbo(xs, enc, model.decode, model.prior(), generator=gen).elbo

    arms = [  # (name, assertion, estimator from an rng, exact, seeds, sequential too)
        ("unbiased, gaussian (3 components)", assert_unbiased,
         lambda rng: (lambda: rng.standard_normal((250, 3)) + 1.0), np.ones(3), 2000, True),
        ("unbiased, exponential (3 components)", assert_unbiased,
         lambda rng: (lambda: rng.exponential(1.0, (250, 3))), np.ones(3), 2000, True),
        ("lower bound at equality, gaussian", assert_lower_bound,
         lambda rng: (lambda: rng.standard_normal(250)), 0.0, 2000, True),
        ("unbiased, MC ELBO of LinearGaussian", assert_unbiased, mc_elbo, exact_lg, 1000, False),
    ]
    lines = []
    for name, check, make, exact, seeds, seq in arms:
        tol = 4 * math.sqrt(nominal * (1 - nominal) / seeds)
        rates = []
        for n_max in (1000, 16000) if seq else (1000,):
            fails = 0
            for s in range(seeds):
                try:
                    check(make(np.random.default_rng(10_000 + s)), exact, alpha=nominal, n_initial=1000, n_max=n_max)
                except AssertionError:
                    fails += 1
            rates.append(fails / seeds)
        assert abs(rates[0] - nominal) <= tol, (name, rates, nominal, tol)
        assert all(r <= nominal + tol for r in rates[1:]), (name, rates, nominal, tol)
        lines.append(f"  {name:<40} {seeds:>5} seeds: one look {rates[0]:.3f}"
                     + (f", sequential (5 looks) {rates[1]:.3f}" if seq else "") + f"  (tolerance +-{tol:.3f})")
    with capsys.disabled():
        print(f"\nfalse-alarm rate at nominal alpha = {nominal}:\n" + "\n".join(lines))


# -- the pytest plugin ------------------------------------------------------------------------------

PLUGIN_USER_TESTS = '''
import os

import pytest
from hypothesis import settings

import scratchvae as sv


def test_backend(sv_backend):
    t = sv_backend.tensor([1.0, 2.0])
    assert sv_backend.numpy(t * 2).tolist() == [2.0, 4.0]
    assert sv.get_backend().name == sv_backend.name


def test_float64(sv_float64):
    assert sv.get_default_dtype() == "float64"


def test_the_fixtures_put_everything_back():
    assert sv.get_default_dtype() == "float32" and sv.get_backend().name == "numpy"


@pytest.mark.slow
@pytest.mark.gpu
def test_markers_are_registered():
    pass


def test_profiles_are_registered_not_loaded():
    assert settings.get_profile("scratchvae-ci").max_examples == 25
    assert settings.get_profile("scratchvae-thorough").max_examples == 400
    assert settings().max_examples == int(os.environ["EXPECT_EXAMPLES"])
'''


def _run_user_suite(tmp_path, *args, expect_examples=100):
    import os
    import subprocess
    import sys

    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the user's project: no conftest, no markers of its own
    env = {k: v for k, v in os.environ.items() if k not in ("SCRATCHVAE_BACKEND", "HYPOTHESIS_PROFILE")}
    env["EXPECT_EXAMPLES"] = str(expect_examples)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "--strict-markers", "-p", "no:cacheprovider",
                           *args, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_plugin_is_an_installed_entry_point():
    from importlib.metadata import entry_points

    eps = {e.name: e.value for e in entry_points(group="pytest11")}
    assert eps.get("scratchvae") == "scratchvae.pytest_plugin", (
        "the pytest11 entry point is missing: reinstall with `pip install -e . --no-deps`")


def test_the_plugin_gives_a_user_project_its_fixtures_markers_and_profiles(tmp_path):
    r = _run_user_suite(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    n_backends = 3
    skipped = r.stdout.count("SKIPPED")
    assert f"{4 + n_backends - skipped} passed" in r.stdout, r.stdout
    if skipped:
        assert "backend unavailable:" in r.stdout, r.stdout  # the reason is shown
    r = _run_user_suite(tmp_path, "--hypothesis-profile=scratchvae-ci", expect_examples=25)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_plugin_leaves_the_projects_own_names_alone(request):
    # tests/conftest.py defines bk, float64 and the profiles ci / thorough; the plugin adds sv_* only
    import scratchvae.pytest_plugin as plugin

    assert request.config.pluginmanager.has_plugin("scratchvae")
    assert not ({"bk", "float64", "ci", "thorough"} & (set(vars(plugin)) | set(plugin.PROFILES)))
    assert set(plugin.PROFILES) == {"scratchvae-ci", "scratchvae-thorough"}


# -- the user's test file written from docs/testing.md ----------------------------------------------

def test_the_users_example_file_passes_and_catches_its_planted_bugs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "testing" / "test_my_elbo.py"
    spec = importlib.util.spec_from_file_location("user_test_my_elbo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tests = [getattr(mod, n) for n in sorted(vars(mod)) if n.startswith("test_")]
    assert len(tests) == 6
    for t in tests:  # the buggy variants are inside pytest.raises(AssertionError) there
        t()


# -- strategies for the user's own parts ---------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402

from scratchvae.testing import batches_for, small_vaes  # noqa: E402


@settings(max_examples=10, deadline=None)
@given(data=__import__("hypothesis").strategies.data())
def test_small_vaes_and_matching_batches_feed_a_users_elbo(data):
    """The parts a user's ELBO takes: encode, decode and prior of a random VAE, and a batch that
    fits it; the MC ELBO of those parts is finite and below the model's own importance-sampled log p(x)."""
    import scratchvae as sv
    from scratchvae.elbo import elbo

    model = data.draw(small_vaes())
    x = data.draw(batches_for(model))
    d = model.config["input_dim"]
    assert x.shape[1] == d and set(np.unique(x)) <= {0.0, 1.0}
    res = elbo(x, model.encode, model.decode, model.prior, n_samples=4, generator=sv.Generator(0))
    assert res.elbo.shape == (x.shape[0],) and np.isfinite(res.elbo.numpy()).all()
    assert sv.backend.dtype_name(res.elbo.dtype) == "float64"


@settings(max_examples=5, deadline=None)
@given(data=__import__("hypothesis").strategies.data())
def test_small_vaes_respect_the_given_sizes_and_likelihood(data):
    model = data.draw(small_vaes(input_dim=5, latent_dim=2, hidden=(3,), likelihood="gaussian"))
    x = data.draw(batches_for(model, batch_size=4))
    assert model.config["input_dim"] == 5 and model.latent_dim == 2 and x.shape == (4, 5)
    assert model.config["likelihood"] == "gaussian" and np.abs(x).max() <= 3.0
