"""Matrix ops for the tractable models: cholesky, solve, diagonal, tril, logdet of SPD matrices."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvae as sv
import scratchvae.functional as F

pytestmark = pytest.mark.usefixtures("float64")


def spd(rng, n, batch=()):
    m = rng.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def sym(a):
    return (a + F.transpose(a, tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))) * 0.5


@given(n=st.integers(1, 4), batch=st.sampled_from([(), (2,)]), seed=st.integers(0, 2**16))
def test_cholesky_forward_and_gradient(bk, n, batch, seed):
    a_np = spd(np.random.default_rng(seed), n, batch)
    a = bk.tensor(a_np, requires_grad=True)
    L = F.cholesky(a)
    np.testing.assert_allclose(bk.numpy(L), np.linalg.cholesky(a_np), rtol=1e-10, atol=1e-12)
    # the input is symmetrised inside fn: cholesky reads one triangle, its gradient is defined on symmetric A
    sv.gradcheck(lambda a: F.cholesky(sym(a)), [a])


@given(n=st.integers(1, 4), k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_solve_forward_and_gradient(bk, n, k, seed):
    rng = np.random.default_rng(seed)
    a_np = spd(rng, n) + rng.standard_normal((n, n)) * 0.3  # not symmetric: solve is general
    b_np = rng.standard_normal((n, k))
    a, b = bk.tensor(a_np, requires_grad=True), bk.tensor(b_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(F.solve(a, b)), np.linalg.solve(a_np, b_np), rtol=1e-10, atol=1e-12)
    sv.gradcheck(F.solve, [a, b])


@given(n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_logdet_diagonal_tril(bk, n, seed):
    rng = np.random.default_rng(seed)
    a_np = spd(rng, n)
    a = bk.tensor(a_np, requires_grad=True)
    np.testing.assert_allclose(F.logdet_spd(a).item(), np.linalg.slogdet(a_np)[1], rtol=1e-12)
    # d log det A / dA = A^-1 (for symmetric A)
    F.logdet_spd(a).backward()
    np.testing.assert_allclose(bk.numpy(a.grad), np.linalg.inv(a_np), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(bk.numpy(F.diagonal(a)), np.diagonal(a_np))
    np.testing.assert_array_equal(bk.numpy(F.tril(a, -1)), np.tril(a_np, -1))
    sv.gradcheck(lambda a: F.diagonal(a) * 2.0, [a])
    sv.gradcheck(lambda a: F.tril(a) * 3.0, [a])


def test_cholesky_of_indefinite_matrix_is_a_clear_error(bk):
    if bk.name == "cupy":
        pytest.skip("CuPy returns NaNs instead of raising")
    a = bk.tensor(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="cholesky: the matrix is not positive definite"):
        F.cholesky(a)


def test_solve_needs_a_matrix_right_hand_side(bk):
    with pytest.raises(ValueError, match=r"solve needs B of shape \(\.\.\., n, k\)"):
        F.solve(bk.tensor(np.eye(2)), bk.tensor(np.ones(2)))
