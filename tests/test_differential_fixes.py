"""Regression tests for the six wrong results that differential testing found (each failed before
its fix), and for the message a plain NumPy array gets where a Tensor is needed."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
from scratchvae import nn
from scratchvae.distributions import Bernoulli, MultivariateNormal, kl_divergence
from scratchvae.gradcheck import gradcheck


# 1. diagonal of non-square and batched matrices --------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (3, 4, 1), (2, 1, 5), (2, 3, 3)])
def test_diagonal_gradient_sits_on_the_diagonal_of_any_shape(shape):
    x = sv.tensor(np.random.default_rng(0).normal(size=shape), requires_grad=True)
    (F.diagonal(x).sum() + x.sum()).backward()
    expected = np.ones(shape)
    k = min(shape[-2:])
    for i in range(k):
        expected[..., i, i] += 1.0
    np.testing.assert_array_equal(x.grad, expected)


def test_diagonal_gradcheck_non_square_batched():
    x = sv.tensor(np.random.default_rng(1).normal(size=(2, 3, 5)), requires_grad=True)
    gradcheck(lambda a: F.diagonal(a) * F.diagonal(a), [x])


# 2. x ** 0 at 0 ---------------------------------------------------------------------------------

def test_pow_zero_has_zero_gradient_at_zero():
    x = sv.tensor(np.array([0.0, -1.5, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros(3))


# 3. x[...] -------------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [Ellipsis, (Ellipsis,), (Ellipsis, 1), (None, Ellipsis)])
def test_ellipsis_index_backward(index):
    a = np.arange(6.0).reshape(2, 3)
    x = sv.tensor(a, requires_grad=True)
    y = x[index]
    np.testing.assert_array_equal(y.numpy(), a[index])
    (y * 3.0).sum().backward()
    expected = np.zeros_like(a)
    expected[index] = 3.0
    np.testing.assert_array_equal(x.grad, expected)


# 4. NumPy scalar types as dtypes ------------------------------------------------------------------

def test_numpy_scalar_types_are_dtypes():
    x = sv.tensor(np.ones(3), dtype=np.float32)
    assert sv.backend.dtype_name(x.dtype) == "float32"
    assert sv.backend.dtype_name(x.astype(np.float64).dtype) == "float64"
    assert sv.backend.dtype_name(x.to(dtype=np.float64).dtype) == "float64"
    assert sv.backend.dtype_name(float) == "float64"
    before = sv.get_default_dtype()
    try:
        sv.set_default_dtype(np.float64)
        assert sv.get_default_dtype() == "float64"
    finally:
        sv.set_default_dtype(before)
    with pytest.raises(ValueError, match="unsupported dtype"):
        sv.backend.dtype_name(np.complex64)


# 5. MultivariateNormal(scale_tril=L): no gradient on the upper triangle -----------------------------

def _tril_param(rng, n, shift=1.5):
    a = np.tril(rng.normal(size=(n, n)) * 0.3)
    a[np.diag_indices(n)] = shift + rng.uniform(size=n)
    return sv.tensor(a, requires_grad=True)


def test_mvn_log_prob_and_kl_give_triangular_gradients():
    rng = np.random.default_rng(2)
    n = 4
    Lp, Lq = _tril_param(rng, n), _tril_param(rng, n)
    loc = sv.tensor(rng.normal(size=n))
    x = sv.tensor(rng.normal(size=(5, n)))
    p = MultivariateNormal(loc, scale_tril=Lp)
    q = MultivariateNormal(loc * 0.5, scale_tril=Lq)
    (p.log_prob(x).sum() + kl_divergence(p, q) + kl_divergence(q, p) + p.rsample((3,)).sum()).backward()
    for L in (Lp, Lq):
        assert np.all(np.triu(L.grad, 1) == 0.0), np.triu(L.grad, 1)
        assert np.any(np.tril(L.grad, -1) != 0.0)
    # one SGD step keeps L triangular, so the next distribution can be built
    with sv.no_grad():
        Lp.data -= 0.1 * Lp.grad
    MultivariateNormal(loc, scale_tril=Lp)


def test_solve_triangular_values_and_gradients():
    rng = np.random.default_rng(3)
    for lower in (True, False):
        a = rng.normal(size=(2, 4, 4)) * 0.3 + 2.0 * np.eye(4)
        t = np.tril(a) if lower else np.triu(a)
        b = rng.normal(size=(2, 4, 3))
        A, B = sv.tensor(a, requires_grad=True), sv.tensor(b, requires_grad=True)
        X = F.solve_triangular(A, B, lower=lower)
        np.testing.assert_allclose(X.numpy(), np.linalg.solve(t, b), rtol=1e-12)
        X.sum().backward()
        other = np.triu(A.grad, 1) if lower else np.tril(A.grad, -1)
        assert np.all(other == 0.0)
        gradcheck(lambda a_, b_: F.solve_triangular(a_, b_, lower=lower), [A, B])


# 6. the Bernoulli log-likelihood does not cancel small values away --------------------------------

@pytest.mark.parametrize("dtype, logit, exact", [
    ("float32", 20.0, -2.0611536e-09),
    ("float32", 88.0, -6.0546014e-39),
    ("float64", 40.0, -4.248354255291589e-18),
])
def test_bernoulli_log_prob_keeps_tiny_values(dtype, logit, exact):
    lg = sv.tensor(np.array([logit, -logit], dtype=dtype))
    x = sv.tensor(np.array([1.0, 0.0], dtype=dtype))
    for value in (Bernoulli(logits=lg).log_prob(x), F.bernoulli_log_prob(x, lg)):
        np.testing.assert_allclose(value.numpy(), [exact, exact], rtol=1e-6)


def test_bench_reference_bernoulli_keeps_tiny_values():
    from scratchvae.bench import reference

    lp, s = reference._bernoulli_log_prob(np.float32([1.0, 0.0]), np.float32([20.0, -20.0]))
    np.testing.assert_allclose(lp, [-2.0611536e-09] * 2, rtol=1e-6)
    np.testing.assert_allclose(s, [1 / (1 + np.exp(-20.0)), 1 / (1 + np.exp(20.0))], rtol=1e-6)


def test_cupy_kernel_source_uses_the_non_cancelling_form():
    from scratchvae.fast.cupy_kernels import KERNELS

    body = KERNELS["bernoulli_log_prob"][2].replace(" ", "")
    assert body == "y=(x*l-fmax(l,(T)0))-log1p(exp(-fabs(l)))"


# a plain NumPy array where a Tensor is needed --------------------------------------------------------

def test_numpy_array_into_a_layer_or_unary_op_says_what_to_do():
    with pytest.raises(TypeError, match=r"linear: input 0 is a numpy.ndarray, not a Tensor; wrap it with scratchvae.tensor"):
        nn.Linear(3, 2)(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"exp: input 0 is a numpy.ndarray, not a Tensor"):
        F.exp(np.ones(3))
    with sv.no_grad(), pytest.raises(TypeError, match=r"exp: input 0 is a numpy.ndarray, not a Tensor"):
        F.exp(np.ones(3))


def test_numpy_array_next_to_a_tensor_is_a_constant_on_numpy():
    x = sv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * np.array([3.0, 4.0])).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
