"""Stable ops stay finite and accurate at extreme inputs (float32 at +-1e4), gradients included."""

import numpy as np
import pytest

import scratchvae.functional as F

EXTREMES = np.array([-1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4], dtype=np.float32)


def exact_softplus(x):
    """log(1 + e^x) in float64 from the two overflow-free branches (independent of the engine)."""
    x = x.astype(np.float64)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def exact_sigmoid(x):
    x = x.astype(np.float64)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


@pytest.mark.filterwarnings("error")  # an overflow RuntimeWarning is a failure
def test_softplus_and_log_sigmoid_extremes(bk):
    x = bk.tensor(EXTREMES, requires_grad=True)
    sp = F.softplus(x)
    ls = F.log_sigmoid(x)
    np.testing.assert_allclose(bk.numpy(sp), exact_softplus(EXTREMES), rtol=2e-7, atol=1e-30)
    np.testing.assert_allclose(bk.numpy(ls), -exact_softplus(-EXTREMES), rtol=2e-7, atol=1e-30)
    (sp.sum() + ls.sum()).backward()
    g = bk.numpy(x.grad)
    assert np.all(np.isfinite(g))
    # d softplus = sigmoid(x), d log_sigmoid = sigmoid(-x): together exactly 1 at every input
    np.testing.assert_allclose(g, np.ones_like(g), rtol=1e-6)


@pytest.mark.filterwarnings("error")
def test_sigmoid_extremes(bk):
    x = bk.tensor(EXTREMES, requires_grad=True)
    s = F.sigmoid(x)
    # atol covers float32 subnormals (sigmoid(-100) ~ 3.7e-44 has only a few significant bits)
    np.testing.assert_allclose(bk.numpy(s), exact_sigmoid(EXTREMES), rtol=2e-7, atol=1e-42)
    s.sum().backward()
    assert np.all(np.isfinite(bk.numpy(x.grad)))


@pytest.mark.filterwarnings("error")
def test_logsumexp_extremes(bk):
    a = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4], [0.0, -np.inf, -np.inf]], dtype=np.float32)
    x = bk.tensor(a, requires_grad=True)
    y = F.logsumexp(x, axis=1)
    expected = np.array([1e4 + np.log1p(np.exp(-1.0)), -1e4 + np.log(3.0), 0.0])
    np.testing.assert_allclose(bk.numpy(y), expected, rtol=1e-7)
    y.sum().backward()
    g = bk.numpy(x.grad)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-6)  # softmax rows sum to one


@pytest.mark.filterwarnings("ignore:divide by zero")  # log(0) = -inf is the right answer here
def test_logsumexp_all_minus_infinity_row_is_minus_infinity(bk):
    x = bk.tensor(np.full((1, 3), -np.inf, dtype=np.float32))
    assert bk.numpy(F.logsumexp(x, axis=1))[0] == -np.inf


@pytest.mark.parametrize("dtype, max_ulp", [(np.float32, 4.0), (np.float64, 2.0)])
def test_numpy_log1p_fast_path_is_within_a_few_ulp(dtype, max_ulp):
    """softplus's log(1 + e) term on NumPy uses Goldberg's correction instead of the slow log1p."""
    import array_api_compat.numpy as xp

    from scratchvae.fast.elementwise import log1p_small as _log1p_small

    rng = np.random.default_rng(0)
    e = np.concatenate([rng.random(20_000), 10.0 ** rng.uniform(-40, 0, 20_000), [0.0, 1.0]]).astype(dtype)
    got = _log1p_small(xp, e, 1 + e).astype(np.longdouble)
    exact = np.log1p(e.astype(np.longdouble))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    ulp[exact == 0] = np.finfo(dtype).smallest_subnormal
    assert float(np.max(np.abs(got - exact) / ulp)) <= max_ulp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_from_shared_exponential_is_bitwise_the_two_exponential_form(bk, dtype):
    """_sigmoid picks e/u or 1/u with a 0/1 mask; it must give the very bits of
    exp(min(x, 0)) / (1 + exp(-|x|)), the textbook stable form, at every input, the extremes included."""
    from scratchvae.fast.elementwise import sigmoid_from as _sigmoid

    rng = np.random.default_rng(1)
    x_np = np.concatenate([rng.standard_normal(5000) * 30, EXTREMES.astype(np.float64), [0.0, -0.0]]).astype(dtype)
    x = bk.array(x_np)
    got = bk.numpy(_sigmoid(bk.xp, x))
    want = np.exp(np.minimum(x_np, 0)) / (1 + np.exp(-np.abs(x_np)))
    if bk.name == "cupy":  # another libm: the same formula, not the same last bit
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("error")
def test_bernoulli_log_prob_fused_op_at_extreme_logits(bk):
    logits_np = np.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4], dtype=np.float32)
    for x_val in (0.0, 1.0):
        x_np = np.full_like(logits_np, x_val)
        logits = bk.tensor(logits_np, requires_grad=True)
        y = F.bernoulli_log_prob(bk.tensor(x_np), logits)
        # (x l - max(l, 0)) - log1p(e^-|l|) in float64: x l - softplus(l) would itself cancel at l = 50
        l64 = logits_np.astype(np.float64)
        expected = (x_np * l64 - np.maximum(l64, 0.0)) - np.log1p(np.exp(-np.abs(l64)))
        np.testing.assert_allclose(bk.numpy(y), expected, rtol=2e-7, atol=1e-30)
        y.sum().backward()
        np.testing.assert_allclose(bk.numpy(logits.grad), x_np - exact_sigmoid(logits_np), rtol=2e-7, atol=1e-30)
