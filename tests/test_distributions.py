"""Distributions: closed forms written independently here, moments of rsample, pathwise gradients,
gradchecks through every method, robustness at extreme parameters, and validation messages."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvae as sv
from scratchvae.distributions import (
    Bernoulli,
    Categorical,
    Independent,
    Normal,
    ValidationError,
    bernoulli_likelihood,
    gaussian_likelihood,
    get_default_validate_args,
    set_default_validate_args,
)

LOG2PI = math.log(2 * math.pi)


def _np(x):
    return sv.to_numpy(x)


def _logsig(l):  # log sigmoid written independently of the library (numpy, stable)
    return -np.logaddexp(0.0, -l)


finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
positive = st.floats(0.05, 5, allow_nan=False, allow_infinity=False)


# --------------------------------------------------------------------------------------------------
# Normal

@given(loc=finite, scale=positive, x=st.floats(-10, 10))
def test_normal_log_prob_and_entropy_closed_form(bk, float64, loc, scale, x):
    d = Normal(bk.tensor(np.array([loc, -loc])), bk.tensor(np.array([scale, 2 * scale])))
    xs = np.array([x, x])
    ls = np.array([scale, 2 * scale])
    ms = np.array([loc, -loc])
    expected = -((xs - ms) ** 2) / (2 * ls**2) - np.log(ls) - 0.5 * LOG2PI
    np.testing.assert_allclose(_np(d.log_prob(bk.tensor(xs))), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(d.entropy()), 0.5 * np.log(2 * math.pi * math.e * ls**2), rtol=1e-12)
    np.testing.assert_allclose(_np(d.mean), ms)
    np.testing.assert_allclose(_np(d.stddev), ls)
    np.testing.assert_allclose(_np(d.variance), ls**2, rtol=1e-12)


def test_normal_parameterizations_are_not_confused(bk, float64):
    # variance 4 <=> std 2 <=> log_var = log 4 <=> log_scale = log 2
    lv = bk.tensor(np.array([math.log(4.0)]))
    d1 = Normal.from_log_var(bk.tensor(np.zeros(1)), lv)
    d2 = Normal.from_log_scale(bk.tensor(np.zeros(1)), bk.tensor(np.array([math.log(2.0)])))
    d3 = Normal(bk.tensor(np.zeros(1)), bk.tensor(np.array([2.0])))
    for d in (d1, d2, d3):
        np.testing.assert_allclose(_np(d.stddev), [2.0], rtol=1e-14)
        np.testing.assert_allclose(_np(d.variance), [4.0], rtol=1e-14)
        np.testing.assert_allclose(_np(d.log_scale), [math.log(2.0)], rtol=1e-14)
    x = bk.tensor(np.array([1.3]))
    np.testing.assert_allclose(_np(d1.log_prob(x)), _np(d3.log_prob(x)), rtol=1e-14)


def test_normal_shapes_broadcast_and_dtype_backend(bk):
    loc = bk.tensor(np.zeros((4, 3), dtype=np.float32))
    d = Normal(loc, 0.5)  # a number takes loc's dtype and backend
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    z = d.rsample((2,), generator=sv.Generator(0))
    assert z.shape == (2, 4, 3)
    assert sv.backend.dtype_name(z.dtype) == "float32"
    assert sv.backend.backend_of(z.data) is bk.backend
    s = d.sample(generator=sv.Generator(0))
    assert s.shape == (4, 3) and not s.requires_grad
    assert Normal(bk.tensor(np.zeros(3)), bk.tensor(np.ones((2, 1)))).batch_shape == (2, 3)


def test_normal_rsample_moments(bk, float64):
    n = 20000
    loc, scale = np.array([1.5, -2.0]), np.array([0.5, 3.0])
    d = Normal(bk.tensor(loc), bk.tensor(scale))
    z = _np(d.rsample((n,), generator=sv.Generator(123)))
    # 5 standard errors: se(mean) = sigma/sqrt(n); se(var) ~ sigma^2 sqrt(2/n)
    assert np.all(np.abs(z.mean(0) - loc) < 5 * scale / math.sqrt(n))
    assert np.all(np.abs(z.var(0) - scale**2) < 5 * scale**2 * math.sqrt(2 / n))


def test_normal_rsample_gradient_of_quadratic_matches_closed_form(bk, float64):
    # E[(z - c)^2] = (mu - c)^2 + sigma^2  =>  d/dmu = 2 (mu - c),  d/dsigma = 2 sigma
    n, c = 20000, 0.7
    mu = bk.tensor(np.array([0.3, -1.0]), requires_grad=True)
    sigma = bk.tensor(np.array([0.8, 1.7]), requires_grad=True)
    z = Normal(mu, sigma).rsample((n,), generator=sv.Generator(7))
    F_ = ((z - c) ** 2).mean(axis=0)
    F_.sum().backward()
    zs = _np(z)
    m, s = _np(mu), _np(sigma)
    eps = (zs - m) / s
    g_mu, g_sigma = 2 * (zs - c), 2 * (zs - c) * eps  # per-sample pathwise gradients
    np.testing.assert_allclose(_np(mu.grad), g_mu.mean(0), rtol=1e-10)  # the engine computed exactly this
    np.testing.assert_allclose(_np(sigma.grad), g_sigma.mean(0), rtol=1e-10)
    se_mu, se_sigma = g_mu.std(0) / math.sqrt(n), g_sigma.std(0) / math.sqrt(n)
    assert np.all(np.abs(_np(mu.grad) - 2 * (m - c)) < 5 * se_mu)
    assert np.all(np.abs(_np(sigma.grad) - 2 * s) < 5 * se_sigma)


def test_normal_rsample_gradient_through_log_var(bk, float64):
    # E[z^2] = mu^2 + exp(lv)  =>  d/dlv = exp(lv); pathwise per-sample gradient 2 z * eps * sigma / 2
    n = 20000
    lv = bk.tensor(np.array([0.4]), requires_grad=True)
    z = Normal.from_log_var(bk.tensor(np.array([0.0])), lv).rsample((n,), generator=sv.Generator(3))
    (z**2).mean(axis=0).sum().backward()
    zs = _np(z)[:, 0]
    per_sample = zs**2  # d(z^2)/dlv = 2 z * (dz/dsigma) * (dsigma/dlv) = 2 z eps sigma / 2 = z^2 (mu = 0)
    se = per_sample.std() / math.sqrt(n)
    assert abs(_np(lv.grad)[0] - math.exp(0.4)) < 5 * se


def test_normal_gradcheck_every_method(bk, float64):
    rng = np.random.default_rng(0)
    loc = bk.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    scale = bk.tensor(rng.uniform(0.5, 2, size=(2, 3)), requires_grad=True)
    lv = bk.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    x = bk.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    sv.gradcheck(lambda m, s, v: Normal(m, s).log_prob(v), [loc, scale, x])
    sv.gradcheck(lambda s: Normal(0.0, s).entropy(), [scale])
    sv.gradcheck(lambda m, s: Normal(m, s).rsample((2,), generator=sv.Generator(1)), [loc, scale])
    sv.gradcheck(lambda m, v, y: Normal.from_log_var(m, v).log_prob(y), [loc, lv, x])
    sv.gradcheck(lambda m, v: Normal.from_log_var(m, v).rsample(generator=sv.Generator(2)), [loc, lv])
    sv.gradcheck(lambda v: Normal.from_log_scale(0.0, v).entropy(), [lv])
    sv.gradcheck(lambda v: Normal.from_log_var(0.0, v).variance, [lv])
    sv.gradcheck(lambda s: Normal(0.0, s).stddev + Normal(0.0, s).variance, [scale])
    sv.gradcheck(lambda m, s, y: Independent(Normal(m, s), 1).log_prob(y), [loc, scale, x])
    sv.gradcheck(lambda s: Independent(Normal(0.0, s), 2).entropy(), [scale])


@pytest.mark.parametrize("log_var", [-30.0, -10.0, 0.0, 10.0, 30.0])
def test_normal_from_log_var_extremes_are_finite_float32(bk, log_var):
    m = bk.tensor(np.full((3,), 0.5, dtype=np.float32), requires_grad=True)
    lv = bk.tensor(np.full((3,), log_var, dtype=np.float32), requires_grad=True)
    d = Normal.from_log_var(m, lv)
    z = d.rsample(generator=sv.Generator(0))
    prior = Normal(0.0, 1.0)
    from scratchvae.distributions import kl_divergence

    total = d.log_prob(z).sum() + d.entropy().sum() + kl_divergence(d, prior).sum()
    assert np.all(np.isfinite(_np(total)))
    # the entropy and the log-density at the mean use log sigma = lv/2 exactly
    np.testing.assert_allclose(_np(d.entropy()), 0.5 * log_var + 0.5 * (1 + LOG2PI), rtol=1e-6, atol=1e-6)
    total.backward()
    assert np.all(np.isfinite(_np(m.grad))) and np.all(np.isfinite(_np(lv.grad)))


def test_normal_standard(bk):
    d = Normal.standard((3,), dtype="float64", backend=bk.backend)
    assert d.batch_shape == (3,)
    np.testing.assert_array_equal(_np(d.loc), 0.0)
    np.testing.assert_array_equal(_np(d.scale), 1.0)
    assert sv.backend.backend_of(d.loc.data) is bk.backend


# --------------------------------------------------------------------------------------------------
# Bernoulli

@given(l=st.floats(-20, 20), x=st.sampled_from([0.0, 1.0]))
def test_bernoulli_log_prob_entropy_closed_form(bk, float64, l, x):
    d = Bernoulli(logits=bk.tensor(np.array([l])))
    p = 1 / (1 + math.exp(-l))
    # written with log p and log(1-p) from log-sigmoid, independently of the x*l - softplus form
    lp, l1p = _logsig(l), _logsig(-l)
    expected = x * lp + (1 - x) * l1p
    np.testing.assert_allclose(_np(d.log_prob(bk.tensor(np.array([x])))), [expected], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(d.entropy()), [-(p * lp + (1 - p) * l1p)], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_np(d.probs), [p], rtol=1e-12)
    np.testing.assert_allclose(_np(d.variance), [p * (1 - p)], rtol=1e-9, atol=1e-15)


def test_bernoulli_probs_and_logits_agree(bk, float64):
    p = np.array([0.1, 0.5, 0.93])
    dp = Bernoulli(probs=bk.tensor(p))
    dl = Bernoulli(logits=bk.tensor(np.log(p) - np.log1p(-p)))
    x = bk.tensor(np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(_np(dp.log_prob(x)), _np(dl.log_prob(x)), rtol=1e-12)
    np.testing.assert_allclose(_np(dp.probs), p)
    np.testing.assert_allclose(_np(dp.logits), _np(dl.logits), rtol=1e-12)
    # probabilities of exactly 0 and 1 still give finite log-probabilities (no inf - inf)
    edge = Bernoulli(probs=bk.tensor(np.array([0.0, 1.0])))
    assert np.all(np.isfinite(_np(edge.log_prob(bk.tensor(np.array([0.0, 1.0]))))))


def test_bernoulli_extreme_logits_exact_float32(bk):
    l = bk.tensor(np.array([1e4, -1e4, 1e4, -1e4], dtype=np.float32), requires_grad=True)
    x = bk.tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32))
    lp = Bernoulli(logits=l).log_prob(x)
    np.testing.assert_array_equal(_np(lp), np.array([0.0, 0.0, -1e4, -1e4], dtype=np.float32))
    lp.sum().backward()
    # d/dl [x l - softplus(l)] = x - sigmoid(l)
    np.testing.assert_array_equal(_np(l.grad), np.array([0.0, 0.0, -1.0, 1.0], dtype=np.float32))
    ent = Bernoulli(logits=l.detach()).entropy()
    np.testing.assert_array_equal(_np(ent), np.zeros(4, dtype=np.float32))


def test_bernoulli_sample_frequency_and_backend(bk):
    d = Bernoulli(probs=bk.tensor(np.array([0.2, 0.9], dtype=np.float32)))
    s = d.sample((4000,), generator=sv.Generator(5))
    assert s.shape == (4000, 2) and sv.backend.dtype_name(s.dtype) == "float32"
    assert sv.backend.backend_of(s.data) is bk.backend
    freq = _np(s).mean(0)
    assert set(np.unique(_np(s))) <= {0.0, 1.0}
    assert np.all(np.abs(freq - [0.2, 0.9]) < 5 * np.sqrt(np.array([0.16, 0.09]) / 4000))


def test_bernoulli_gradcheck(bk, float64):
    rng = np.random.default_rng(1)
    l = bk.tensor(rng.normal(size=(2, 3)) * 3, requires_grad=True)
    p = bk.tensor(rng.uniform(0.1, 0.9, size=(2, 3)), requires_grad=True)
    x = bk.tensor((rng.random((2, 3)) > 0.5).astype(np.float64))
    sv.gradcheck(lambda a: Bernoulli(logits=a).log_prob(x), [l])
    sv.gradcheck(lambda a: Bernoulli(probs=a).log_prob(x), [p])
    sv.gradcheck(lambda a: Bernoulli(logits=a).entropy(), [l])
    sv.gradcheck(lambda a: Bernoulli(logits=a).probs + Bernoulli(logits=a).variance, [l])
    sv.gradcheck(lambda a: bernoulli_likelihood(a).log_prob(x), [l])


# --------------------------------------------------------------------------------------------------
# Categorical

def _log_softmax(a):
    m = a.max(-1, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(-1, keepdims=True))


@given(st.lists(st.floats(-8, 8), min_size=2, max_size=6), st.data())
def test_categorical_log_prob_entropy_closed_form(bk, float64, logits, data):
    a = np.array([logits, logits[::-1]])
    k = data.draw(st.integers(0, len(logits) - 1))
    d = Categorical(logits=bk.tensor(a))
    ls = _log_softmax(a)
    np.testing.assert_allclose(_np(d.log_prob(bk.array(np.array([k, 0])))), [ls[0, k], ls[1, 0]], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(d.entropy()), -(np.exp(ls) * ls).sum(-1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(d.probs), np.exp(ls), rtol=1e-12)
    np.testing.assert_allclose(np.log(np.exp(_np(d.logits)).sum(-1)), 0.0, atol=1e-12)  # normalized


def test_categorical_probs_normalized_and_zero_probs(bk, float64):
    d = Categorical(probs=bk.tensor(np.array([[2.0, 6.0, 0.0]])))
    np.testing.assert_allclose(_np(d.probs), [[0.25, 0.75, 0.0]])
    np.testing.assert_allclose(_np(d.log_prob(bk.array(np.array([1])))), [math.log(0.75)], rtol=1e-12)
    np.testing.assert_allclose(_np(d.entropy()), [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))], rtol=1e-12)
    assert d.batch_shape == (1,) and d.num_categories == 3


def test_categorical_sample_frequency(bk):
    p = np.array([0.1, 0.6, 0.3])
    d = Categorical(probs=bk.tensor(p.astype(np.float32)))
    s = d.sample((6000,), generator=sv.Generator(11))
    assert s.shape == (6000,)
    counts = np.bincount(_np(s).astype(int), minlength=3) / 6000
    assert np.all(np.abs(counts - p) < 5 * np.sqrt(p * (1 - p) / 6000))


def test_categorical_gradcheck(bk, float64):
    rng = np.random.default_rng(2)
    a = bk.tensor(rng.normal(size=(2, 4)), requires_grad=True)
    p = bk.tensor(rng.uniform(0.1, 1.0, size=(2, 4)), requires_grad=True)
    v = bk.array(np.array([3, 1]))
    sv.gradcheck(lambda t: Categorical(logits=t).log_prob(v), [a])
    sv.gradcheck(lambda t: Categorical(probs=t).log_prob(v), [p])
    sv.gradcheck(lambda t: Categorical(logits=t).entropy(), [a])
    sv.gradcheck(lambda t: Categorical(logits=t).probs, [a])


# --------------------------------------------------------------------------------------------------
# Independent and the reduction contract

def test_independent_sums_over_event_dims_never_averages(bk, float64):
    rng = np.random.default_rng(3)
    loc, scale = rng.normal(size=(5, 4, 3)), rng.uniform(0.5, 2, size=(5, 4, 3))
    x = rng.normal(size=(5, 4, 3))
    base = Normal(bk.tensor(loc), bk.tensor(scale))
    d = Independent(base, 2)
    assert d.batch_shape == (5,) and d.event_shape == (4, 3)
    per_elem = -((x - loc) ** 2) / (2 * scale**2) - np.log(scale) - 0.5 * LOG2PI
    lp = _np(d.log_prob(bk.tensor(x)))
    assert lp.shape == (5,)
    np.testing.assert_allclose(lp, per_elem.sum(axis=(1, 2)), rtol=1e-12)
    assert not np.allclose(lp, per_elem.mean(axis=(1, 2)))
    np.testing.assert_allclose(_np(d.entropy()), _np(base.entropy()).sum(axis=(1, 2)), rtol=1e-12)
    z = d.rsample((2,), generator=sv.Generator(0))
    assert z.shape == (2, 5, 4, 3) and d.log_prob(z).shape == (2, 5)
    assert d.has_rsample and not Independent(Bernoulli(logits=bk.tensor(x)), 1).has_rsample


def test_independent_rejects_too_many_dims(bk):
    with pytest.raises(ValueError, match=r"reinterpreted_batch_ndims=3 must be between 0 and .* 2"):
        Independent(Normal(bk.tensor(np.zeros((2, 3))), 1.0), 3)


# --------------------------------------------------------------------------------------------------
# Gaussian likelihood

def test_gaussian_likelihood_fixed_scalar_and_per_pixel(bk, float64):
    rng = np.random.default_rng(4)
    loc, x = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))

    def closed(sigma):
        return (-((x - loc) ** 2) / (2 * sigma**2) - np.log(sigma) - 0.5 * LOG2PI).sum(-1)

    fixed = gaussian_likelihood(bk.tensor(loc), scale=0.3)
    np.testing.assert_allclose(_np(fixed.log_prob(bk.tensor(x))), closed(0.3), rtol=1e-12)
    s = bk.tensor(np.array(math.log(0.3)), requires_grad=True)  # learned scalar, far above the floor
    learned = gaussian_likelihood(bk.tensor(loc), log_scale=s)
    np.testing.assert_allclose(_np(learned.log_prob(bk.tensor(x))), closed(math.sqrt(0.09 + 1e-6)), rtol=1e-12)
    learned.log_prob(bk.tensor(x)).sum().backward()
    assert s.grad is not None and s.grad.shape == ()
    ls = rng.normal(size=(3, 5)) * 0.3
    per_pixel = gaussian_likelihood(bk.tensor(loc), log_scale=bk.tensor(ls), min_scale=0)
    np.testing.assert_allclose(_np(per_pixel.log_prob(bk.tensor(x))), closed(np.exp(ls)), rtol=1e-12)
    assert per_pixel.batch_shape == (3,) and per_pixel.event_shape == (5,)


def test_gaussian_likelihood_scale_floor(bk, float64):
    s = bk.tensor(np.array([-100.0, math.log(1e-3), 0.0, 5.0]), requires_grad=True)
    d = gaussian_likelihood(bk.tensor(np.zeros((1, 4))), log_scale=s)
    sigma = _np(d.stddev)[0]
    np.testing.assert_allclose(sigma, np.sqrt(1e-6 + np.exp(2 * _np(s))), rtol=1e-9)
    assert sigma[0] >= 1e-3 and sigma[0] < 1.0001e-3  # collapsed log-scale stops at the floor
    np.testing.assert_allclose(sigma[3], math.exp(5.0), rtol=1e-9)
    sv.gradcheck(lambda t: gaussian_likelihood(bk.tensor(np.zeros((1, 4))), log_scale=t).log_prob(
        bk.tensor(np.full((1, 4), 0.01))), [s])
    with pytest.raises(ValueError, match="exactly one of scale= .* or log_scale="):
        gaussian_likelihood(bk.tensor(np.zeros((1, 4))))


# --------------------------------------------------------------------------------------------------
# Validation: every error, asserted by message

def test_normal_negative_scale_message(bk):
    loc = bk.tensor(np.zeros((128, 20), dtype=np.float32))
    scale = np.ones((128, 20), dtype=np.float32)
    scale[3, 4] = -0.3
    with pytest.raises(ValueError, match=r"^Normal: scale must be > 0, got min -0\.3 in a tensor of shape \(128, 20\)$"):
        Normal(loc, bk.tensor(scale))
    with pytest.raises(ValidationError, match=r"scale must be > 0, got min 0 "):
        Normal(loc, 0.0)


def test_nan_parameters_are_named_as_nan(bk):
    loc = np.zeros((2, 3))
    loc[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"Normal: loc contains NaN \(1 of 6 elements\) in a tensor of shape \(2, 3\).*detect_anomaly"):
        Normal(bk.tensor(loc), 1.0)
    with pytest.raises(ValueError, match=r"Normal: scale contains NaN"):
        Normal(0.0, bk.tensor(np.array([1.0, np.nan])))
    with pytest.raises(ValueError, match=r"Normal: log_var contains NaN"):
        Normal.from_log_var(0.0, bk.tensor(np.array([np.nan])))
    with pytest.raises(ValueError, match=r"Bernoulli: logits contains NaN"):
        Bernoulli(logits=bk.tensor(np.array([np.nan])))
    with pytest.raises(ValueError, match=r"Bernoulli: probs contains NaN"):
        Bernoulli(probs=bk.tensor(np.array([np.nan])))
    with pytest.raises(ValueError, match=r"Categorical: logits contains NaN"):
        Categorical(logits=bk.tensor(np.array([0.0, np.nan])))
    with pytest.raises(ValueError, match=r"Normal.log_prob: value contains NaN"):
        Normal(0.0, 1.0).log_prob(bk.tensor(np.array([np.nan])))


def test_log_var_infinite_and_underflow_messages(bk):
    with pytest.raises(ValueError, match=r"Normal: log_var must be finite, got 1 infinite"):
        Normal.from_log_var(0.0, bk.tensor(np.array([np.inf])))
    # exp(0.5 * -400) underflows in float32, but the log is what is kept and used: accepted, exact
    d = Normal.from_log_var(0.0, bk.tensor(np.array([-400.0], dtype=np.float32)))
    assert float(bk.numpy(d.entropy())[0]) == pytest.approx(-200.0 + 0.5 * (1 + math.log(2 * math.pi)))


def test_library_edges_normal_independent_elbo(bk):
    """Issue item 10: non-finite scale, mixed devices, exact log-variance, Independent's ndims, beta."""
    with pytest.raises(ValueError, match=r"Normal: scale must be finite, got 1 infinite"):
        Normal(0.0, bk.tensor(np.array([np.inf])))
    d = Normal.from_log_var(0.0, bk.tensor(np.array([-1e4], dtype=np.float32)))  # exp underflows
    assert float(bk.numpy(d.entropy())[0]) == pytest.approx(-5000.0 + 0.5 * (1 + math.log(2 * math.pi)))
    base = Normal(bk.tensor(np.zeros((2, 3))), 1.0)
    for bad in (1.5, "1", True, None):
        with pytest.raises(TypeError, match="reinterpreted_batch_ndims must be a non-negative int"):
            Independent(base, bad)
    for bad in (-1, 3):
        with pytest.raises(ValueError, match="reinterpreted_batch_ndims=.* must be between 0 and"):
            Independent(base, bad)
    assert Independent(base, np.int64(2)).event_shape == (2, 3)


def test_normal_on_two_devices_is_refused():
    from scratchvae import backend as B
    B.set_backend("array_api_strict")
    try:
        dev = sv.tensor(np.zeros(3))
        host = sv.tensor(np.ones(3)).to("numpy")
        with pytest.raises(ValueError, match="different backends/devices"):
            Normal(dev, host)
        with pytest.raises(ValueError, match="different backends/devices"):
            Normal.from_log_var(host, dev)
    finally:
        B._state["backend"] = None


@pytest.mark.parametrize("beta", [float("nan"), -1.0, float("inf")])
def test_vae_elbo_refuses_bad_beta(beta):
    from scratchvae.models.vae import VAE
    model = VAE.mlp(4, [3], 2, generator=sv.Generator(0))
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        model.elbo(x, beta=beta)
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0"):
        model.elbo(x, free_bits=float("nan"))
    model.elbo(x, beta=0.0)


def test_probs_outside_unit_interval(bk):
    with pytest.raises(ValueError, match=r"Bernoulli: probs must be in \[0, 1\], got min -0\.1 and max 1\.2 in a tensor of shape \(3,\)"):
        Bernoulli(probs=bk.tensor(np.array([-0.1, 0.5, 1.2])))
    with pytest.raises(ValueError, match=r"Categorical: probs must be >= 0, got min -1"):
        Categorical(probs=bk.tensor(np.array([0.5, -1.0])))
    with pytest.raises(ValueError, match="exactly one of probs= or logits=, got both"):
        Bernoulli(probs=0.5, logits=0.0)
    with pytest.raises(ValueError, match="exactly one of probs= or logits=, got neither"):
        Categorical()


def test_bernoulli_on_grey_levels_needs_explicit_opt_out(bk, float64):
    x = bk.tensor(np.array([0.0, 0.25, 1.0]))
    d = Bernoulli(logits=bk.tensor(np.array([0.3, -0.2, 1.0])))
    with pytest.raises(ValueError, match=r"Bernoulli.log_prob: value must be 0 or 1, got 1 of 3 elements outside \{0, 1\} \(e\.g\. 0\.25\)") as e:
        d.log_prob(x)
    assert "validate_args=False" in str(e.value) and "not a normalized likelihood" in str(e.value)
    loose = Bernoulli(logits=bk.tensor(np.array([0.3, -0.2, 1.0])), validate_args=False)
    l = np.array([0.3, -0.2, 1.0])
    np.testing.assert_allclose(_np(loose.log_prob(x)), np.array([0, 0.25, 1]) * l - np.logaddexp(0, l), rtol=1e-12)


@pytest.mark.parametrize("l", [-6.0, -0.5, 0.0, 2.0])
def test_bernoulli_on_grey_levels_is_not_normalized(bk, float64, l):
    """Over {0, 1} the probabilities sum to 1; over [0, 1] exp(x l - softplus(l)) integrates to
    tanh(l / 2) / l (1/2 at l = 0), never to 1: grey levels get an unnormalized 'likelihood'."""
    d = Bernoulli(logits=bk.tensor(np.array([l])), validate_args=False)
    binary = np.exp(_np(d.log_prob(bk.tensor(np.array([0.0]))))) + np.exp(_np(d.log_prob(bk.tensor(np.array([1.0])))))
    np.testing.assert_allclose(binary, [1.0], rtol=1e-12)
    xs = np.linspace(0.0, 1.0, 4001)
    dens = np.exp(_np(d.log_prob(bk.tensor(xs))))
    integral = float(np.sum((dens[1:] + dens[:-1]) / 2) * (xs[1] - xs[0]))  # trapezoid rule
    expected = 0.5 if l == 0 else math.tanh(l / 2) / l
    assert abs(integral - expected) < 1e-6 and integral <= 0.5 + 1e-9


def test_categorical_value_outside_support(bk):
    d = Categorical(logits=bk.tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"Categorical.log_prob: value must be a category index in \{0, \.\.\., 2\}, got values from 0 to 3"):
        d.log_prob(bk.array(np.array([0, 3])))


def test_validation_switch(bk):
    assert get_default_validate_args() is True
    bad = bk.tensor(np.array([-1.0]))
    Normal(0.0, bad, validate_args=False)  # per instance
    set_default_validate_args(False)
    try:
        Normal(0.0, bad)
        Bernoulli(probs=bk.tensor(np.array([2.0])))
        with pytest.raises(ValueError):
            Normal(0.0, bad, validate_args=True)  # the instance flag still wins
    finally:
        set_default_validate_args(True)
    with pytest.raises(ValueError):
        Normal(0.0, bad)
