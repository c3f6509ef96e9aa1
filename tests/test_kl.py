"""KL divergences: closed forms written independently here, agreement with Monte Carlo within a
stated statistical tolerance, KL(p, p) = 0, KL >= 0, the registry's inheritance rules and errors."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvae as sv
from scratchvae.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    Normal,
    kl_divergence,
    kl_monte_carlo,
    register_kl,
)
from scratchvae.distributions import kl as kl_module


def _np(x):
    return sv.to_numpy(x)


def _kl_gauss(m1, s1, m2, s2):
    # KL(N(m1, s1^2) || N(m2, s2^2)) from the integral: E_p[log p - log q]
    return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def _kl_bern(p, q):
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


@pytest.fixture
def clean_registry():
    """Let a test register rules, then restore the registry and the lookup cache."""
    saved = dict(kl_module._REGISTRY)
    yield
    kl_module._REGISTRY.clear()
    kl_module._REGISTRY.update(saved)
    kl_module._CACHE.clear()


finite = st.floats(-4, 4)
positive = st.floats(0.1, 4)


@given(m1=finite, s1=positive, m2=finite, s2=positive)
def test_normal_normal_closed_form(bk, float64, m1, s1, m2, s2):
    p = Normal(bk.tensor(np.array([m1])), bk.tensor(np.array([s1])))
    q = Normal(bk.tensor(np.array([m2])), bk.tensor(np.array([s2])))
    kl = _np(kl_divergence(p, q))
    np.testing.assert_allclose(kl, [_kl_gauss(m1, s1, m2, s2)], rtol=1e-9, atol=1e-12)
    assert kl[0] >= 0


@given(m=finite, lv=st.floats(-6, 6))
def test_normal_standard_fast_path_equals_general_rule(bk, float64, m, lv):
    p = Normal.from_log_var(bk.tensor(np.array([m])), bk.tensor(np.array([lv])))
    fast = _np(kl_divergence(p, Normal(0.0, 1.0)))
    fast2 = _np(kl_divergence(p, Normal.standard((1,), dtype="float64", backend=bk.backend)))
    general = _np(kl_divergence(p, Normal(bk.tensor(np.zeros(1)), bk.tensor(np.ones(1)))))
    vae_formula = 0.5 * (m**2 + math.exp(lv) - 1 - lv)  # the formula from Kingma & Welling, appendix B
    np.testing.assert_allclose(fast, [vae_formula], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast2, [vae_formula], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(general, [vae_formula], rtol=1e-10, atol=1e-12)
    assert Normal(0.0, 1.0).is_standard and not Normal(bk.tensor(np.zeros(1)), 1.0).is_standard


@given(l1=st.floats(-15, 15), l2=st.floats(-15, 15))
def test_bernoulli_closed_form(bk, float64, l1, l2):
    p, q = 1 / (1 + math.exp(-l1)), 1 / (1 + math.exp(-l2))
    kl = _np(kl_divergence(Bernoulli(logits=bk.tensor(np.array([l1]))), Bernoulli(logits=bk.tensor(np.array([l2])))))
    np.testing.assert_allclose(kl, [_kl_bern(p, q)], rtol=1e-7, atol=1e-10)
    assert kl[0] >= -1e-15


def test_bernoulli_extreme_logits_finite_float32(bk):
    l = bk.tensor(np.array([1e4, -1e4, 1e4], dtype=np.float32), requires_grad=True)
    m = bk.tensor(np.array([-1e4, 1e4, 1e4], dtype=np.float32))
    kl = kl_divergence(Bernoulli(logits=l), Bernoulli(logits=m))
    # p = sigmoid(1e4) = 1 and log q = log sigmoid(-1e4) = -1e4, so KL = -log q = 1e4
    np.testing.assert_allclose(_np(kl), [1e4, 1e4, 0.0], rtol=1e-6)
    kl.sum().backward()
    assert np.all(np.isfinite(_np(l.grad)))


@given(a=st.lists(st.floats(-5, 5), min_size=3, max_size=3), b=st.lists(st.floats(-5, 5), min_size=3, max_size=3))
def test_categorical_closed_form(bk, float64, a, b):
    pa = np.exp(a) / np.exp(a).sum()
    pb = np.exp(b) / np.exp(b).sum()
    kl = _np(kl_divergence(Categorical(logits=bk.tensor(np.array(a))), Categorical(logits=bk.tensor(np.array(b)))))
    np.testing.assert_allclose(kl, (pa * np.log(pa / pb)).sum(), rtol=1e-8, atol=1e-12)
    assert kl >= -1e-15


def test_categorical_zero_probability_terms(bk, float64):
    p = Categorical(probs=bk.tensor(np.array([0.5, 0.5, 0.0])))
    q = Categorical(probs=bk.tensor(np.array([0.25, 0.25, 0.5])))
    np.testing.assert_allclose(_np(kl_divergence(p, q)), math.log(2), rtol=1e-12)  # 0 log 0 = 0
    with pytest.raises(ValueError, match="different numbers of categories"):
        kl_divergence(p, Categorical(logits=bk.tensor(np.zeros(4))))


def test_independent_sums_parts(bk, float64):
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(4, 3)), rng.normal(size=(3,))
    s1, s2 = rng.uniform(0.5, 2, size=(4, 3)), rng.uniform(0.5, 2, size=(3,))
    p = Independent(Normal(bk.tensor(m1), bk.tensor(s1)), 1)
    q = Independent(Normal(bk.tensor(m2), bk.tensor(s2)), 1)  # a prior: broadcasts over the batch
    kl = _np(kl_divergence(p, q))
    assert kl.shape == (4,)
    np.testing.assert_allclose(kl, _kl_gauss(m1, s1, m2, s2).sum(-1), rtol=1e-12)
    with pytest.raises(ValueError, match="different event shapes"):
        kl_divergence(p, Independent(Normal(bk.tensor(np.zeros((4, 3))), 1.0), 2))


def test_kl_of_p_with_itself_is_zero(bk, float64):
    rng = np.random.default_rng(1)
    n = Normal(bk.tensor(rng.normal(size=5)), bk.tensor(rng.uniform(0.1, 3, size=5)))
    nv = Normal.from_log_var(bk.tensor(rng.normal(size=5)), bk.tensor(rng.normal(size=5) * 5))
    b = Bernoulli(logits=bk.tensor(rng.normal(size=5) * 10))
    c = Categorical(logits=bk.tensor(rng.normal(size=(5, 4))))
    i = Independent(n, 1)
    for d in (n, nv, b, c, i):
        np.testing.assert_array_equal(_np(kl_divergence(d, d)), 0.0)


@given(st.integers(0, 2**31 - 1))
def test_kl_nonnegative_random_pairs(bk, float64, seed):
    rng = np.random.default_rng(seed)

    def normal():
        return Normal.from_log_var(bk.tensor(rng.normal(size=6) * 3), bk.tensor(rng.normal(size=6) * 4))

    pairs = [
        (normal(), normal()),
        (Bernoulli(logits=bk.tensor(rng.normal(size=6) * 8)), Bernoulli(logits=bk.tensor(rng.normal(size=6) * 8))),
        (Categorical(logits=bk.tensor(rng.normal(size=(6, 5)) * 4)), Categorical(logits=bk.tensor(rng.normal(size=(6, 5)) * 4))),
    ]
    for p, q in pairs:
        assert np.all(_np(kl_divergence(p, q)) >= -1e-12)


@pytest.mark.parametrize("case", ["normal", "normal_standard", "bernoulli", "categorical", "independent"])
def test_analytic_kl_matches_monte_carlo(bk, float64, case):
    """|analytic - MC| < 5 standard errors of the MC mean (S = 20000 samples, fixed seed)."""
    rng = np.random.default_rng(2)
    if case == "normal":
        p = Normal(bk.tensor(rng.normal(size=3)), bk.tensor(rng.uniform(0.5, 1.5, size=3)))
        q = Normal(bk.tensor(rng.normal(size=3)), bk.tensor(rng.uniform(0.8, 2.0, size=3)))
    elif case == "normal_standard":
        p = Normal.from_log_var(bk.tensor(rng.normal(size=3)), bk.tensor(rng.normal(size=3)))
        q = Normal(0.0, 1.0)
    elif case == "bernoulli":
        p, q = Bernoulli(logits=bk.tensor(rng.normal(size=3))), Bernoulli(logits=bk.tensor(rng.normal(size=3)))
    elif case == "categorical":
        p = Categorical(logits=bk.tensor(rng.normal(size=(3, 4))))
        q = Categorical(logits=bk.tensor(rng.normal(size=(3, 4))))
    else:
        p = Independent(Normal(bk.tensor(rng.normal(size=(2, 3))), bk.tensor(rng.uniform(0.5, 1.5, size=(2, 3)))), 1)
        q = Independent(Normal(bk.tensor(rng.normal(size=3)), bk.tensor(rng.uniform(0.8, 2.0, size=3))), 1)
    n = 20000
    exact = _np(kl_divergence(p, q))
    mc = _np(kl_monte_carlo(p, q, n, generator=sv.Generator(9)))
    # the per-sample log-ratios with the same seed, for the standard error
    z = p.sample((n,), generator=sv.Generator(9))
    ratios = _np(p.log_prob(z) - q.log_prob(z))
    np.testing.assert_allclose(mc, ratios.mean(0), rtol=1e-10, atol=1e-12)
    se = ratios.std(0) / math.sqrt(n)
    assert np.all(np.abs(mc - exact) < 5 * se + 1e-12), (mc, exact, se)


@pytest.mark.parametrize("which", ["normal", "log_var_vs_standard", "bernoulli", "categorical"])
def test_kl_gradcheck(bk, float64, which):
    rng = np.random.default_rng(3)
    a = bk.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    b = bk.tensor(rng.uniform(0.5, 2, size=(2, 3)), requires_grad=True)
    c = bk.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    d = bk.tensor(rng.uniform(0.5, 2, size=(2, 3)), requires_grad=True)
    if which == "normal":
        sv.gradcheck(lambda m1, s1, m2, s2: kl_divergence(Normal(m1, s1), Normal(m2, s2)), [a, b, c, d])
    elif which == "log_var_vs_standard":
        sv.gradcheck(lambda m, lv: kl_divergence(Normal.from_log_var(m, lv), Normal(0.0, 1.0)), [a, c])
    elif which == "bernoulli":
        sv.gradcheck(lambda l1, l2: kl_divergence(Bernoulli(logits=l1), Bernoulli(logits=l2)), [a, c])
    else:
        sv.gradcheck(lambda l1, l2: kl_divergence(Categorical(logits=l1), Categorical(logits=l2)), [a, c])


# --------------------------------------------------------------------------------------------------
# the registry

class MyNormal(Normal):
    pass


class MyOtherNormal(Normal):
    pass


class Shifted(Distribution):
    """N(loc, 1) under another name: a distribution with no registered KL rule."""

    has_rsample = True

    def __init__(self, loc):
        self.loc = loc
        super().__init__(batch_shape=loc.shape)

    def rsample(self, sample_shape=(), generator=None):
        return Normal(self.loc, 1.0).rsample(sample_shape, generator=generator)

    def log_prob(self, value):
        return Normal(self.loc, 1.0).log_prob(value)


def test_registry_follows_inheritance(bk, float64, clean_registry):
    m = bk.tensor(np.array([0.3]))
    p, q = MyNormal(m, 2.0), Normal(0.0, 1.0)
    np.testing.assert_allclose(_np(kl_divergence(p, q)), [_kl_gauss(0.3, 2.0, 0.0, 1.0)], rtol=1e-12)

    @register_kl(MyNormal, Normal)
    def _mine(p, q):
        return p.loc * 0.0 + 42.0

    assert _np(kl_divergence(p, q))[0] == 42.0  # the more specific rule wins
    assert _np(kl_divergence(p, MyNormal(m, 1.0)))[0] == 42.0  # (MyNormal, Normal) matches a MyNormal q too
    assert _np(kl_divergence(Normal(m, 2.0), q))[0] != 42.0  # the base pair keeps the base rule
    assert _np(kl_divergence(MyOtherNormal(m, 2.0), q))[0] != 42.0


def test_registry_ambiguity_warns(bk, float64, clean_registry):
    @register_kl(MyNormal, Normal)
    def _left(p, q):
        return p.loc * 0.0 + 1.0

    @register_kl(Normal, MyNormal)
    def _right(p, q):
        return p.loc * 0.0 + 2.0

    m = bk.tensor(np.array([0.0]))
    with pytest.warns(RuntimeWarning, match="ambiguous rules for \\(MyNormal, MyNormal\\)"):
        v = _np(kl_divergence(MyNormal(m, 1.0), MyNormal(m, 1.0)))
    assert v[0] == 1.0  # most specific in p wins
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _np(kl_divergence(MyNormal(m, 1.0), Normal(m, 1.0)))[0] == 1.0


def test_register_kl_rejects_non_distributions():
    with pytest.raises(TypeError, match="subclasses of Distribution"):
        register_kl(int, Normal)


def test_missing_rule_raises_and_monte_carlo_is_explicit(bk, float64):
    p = Normal(bk.tensor(np.array([0.5, -1.0])), 1.0)
    q = Shifted(bk.tensor(np.array([0.0, 0.0])))
    with pytest.raises(NotImplementedError, match=r"no closed form is registered for KL\(Normal \|\| Shifted\).*n_samples="):
        kl_divergence(p, q)
    with pytest.raises(NotImplementedError, match=r"KL\(Independent\(Normal, 1\) \|\| Independent\(Shifted, 1\)\)"):
        kl_divergence(Independent(p, 1), Independent(q, 1))
    est = _np(kl_divergence(p, q, n_samples=20000, generator=sv.Generator(0)))
    # KL(N(m, 1) || N(0, 1)) = m^2 / 2; per-sample log-ratio m z - m^2/2 has std |m|
    np.testing.assert_allclose(est, [0.125, 0.5], atol=5 * 1.0 / math.sqrt(20000))
    est_ind = _np(kl_divergence(Independent(p, 1), Independent(q, 1), n_samples=20000, generator=sv.Generator(0)))
    np.testing.assert_allclose(est_ind, 0.625, atol=5 * math.sqrt(1.25 / 20000))
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        kl_divergence(p, q, n_samples=0)
