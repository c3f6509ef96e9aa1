"""gradcheck itself must be able to fail: a deliberately wrong backward is caught and reported."""

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.autograd import Function


class WrongSquare(Function):
    """forward x^2 with a backward that is off by one at the largest element."""

    def forward(self, x):
        self.saved = x
        return x * x

    def backward(self, gy):
        x = self.saved
        bump = bump_at(x)
        return (gy * (2.0 * x) + bump,)


def bump_at(x):
    return (x == x.max()) * 1.0  # numpy only: the test runs on numpy


def test_gradcheck_reports_worst_element():
    x = sv.tensor(np.array([[0.1, 0.2], [0.9, 0.3]]), requires_grad=True)
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(2, 2\)\) is wrong at element \(1, 0\): analytic"):
        sv.gradcheck(lambda x: WrongSquare()(x), [x])


def test_gradcheck_directional_mode_catches_errors_in_large_inputs():
    x = sv.tensor(np.linspace(0.0, 1.0, 1000), requires_grad=True)
    with pytest.raises(AssertionError, match="along random direction"):
        sv.gradcheck(lambda x: WrongSquare()(x), [x], max_elementwise=10)
    assert sv.gradcheck(lambda x: (x * x).sum(), [x], max_elementwise=10)


def test_gradcheck_refuses_float32_and_no_grad_inputs():
    with pytest.raises(ValueError, match="float64"):
        sv.gradcheck(lambda x: x * x, [sv.tensor(np.ones(2, np.float32), requires_grad=True)])
    with pytest.raises(ValueError, match="nothing to check"):
        sv.gradcheck(lambda x: x * x, [sv.tensor(np.ones(2))])


def test_gradcheck_leaves_existing_grads_alone():
    x = sv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.grad = np.array([5.0, 5.0])
    sv.gradcheck(lambda x: x * x, [x])
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])
