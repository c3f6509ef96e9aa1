"""detect_anomaly: the first op producing NaN/Inf is named (forward and backward), with shapes; the
engine is restored afterwards; ordinary computations pass through unchanged."""

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.anomaly import AnomalyError, detect_anomaly
from scratchvae.distributions import Independent, Normal, bernoulli_likelihood
from scratchvae.elbo import elbo

# the ops below divide by zero on purpose; NumPy's RuntimeWarnings about it are expected
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                                        "ignore:invalid value:RuntimeWarning")


def _np(x):
    return sv.to_numpy(x)


def test_forward_reports_the_first_op_with_shapes(bk, float64):
    x = bk.tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), requires_grad=True)
    with pytest.raises(AnomalyError) as e:
        with detect_anomaly():
            y = x - bk.tensor(np.array([1.0, 2.0, 3.0]))  # row 0 becomes 0
            z = F.log(y)  # -inf: born here
            F.exp(z * 2.0).sum()  # never reached
    msg = str(e.value)
    assert "forward of op 'log' produced 3 Inf of 6 elements" in msg
    assert "output of shape (2, 3)" in msg
    assert "input shapes: (2, 3) float64" in msg
    assert "all its inputs were finite" in msg
    assert "test_anomaly.py" in msg  # where the op was created


def test_forward_nan_named_as_nan(bk, float64):
    x = bk.tensor(np.array([0.0, 1.0]))
    with pytest.raises(AnomalyError, match=r"forward of op 'div' produced 1 NaN of 2 elements"):
        with detect_anomaly():
            x / x


def test_non_finite_input_from_outside_is_called_out(bk, float64):
    x = bk.tensor(np.array([np.nan, 1.0]))
    with pytest.raises(AnomalyError, match=r"op 'mul' .* input\(s\) \[0\] were already non-finite"):
        with detect_anomaly():
            x * 2.0


def test_backward_reports_the_op(bk, float64):
    x = bk.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with pytest.raises(AnomalyError) as e:
        with detect_anomaly():
            y = F.sqrt(x)  # finite forward, infinite derivative at 0
            (y * 3.0).sum().backward()
    msg = str(e.value)
    assert "backward of op 'sqrt' produced 1 Inf of 2 elements in the gradient of input 0 (shape (2,))" in msg
    assert "the incoming gradient was finite" in msg
    assert "input shapes: (2,) float64" in msg and "test_anomaly.py" in msg


def test_check_forward_false_checks_only_gradients(bk, float64):
    x = bk.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with detect_anomaly(check_forward=False):
        y = F.log(x)  # -inf is allowed through
    assert np.isinf(_np(y)[0])
    with pytest.raises(AnomalyError, match="backward of op 'log'"):
        with detect_anomaly(check_forward=False):
            F.log(x).sum().backward()


def test_engine_is_restored_after_exit_and_after_errors(bk, float64):
    import sys

    engine = sys.modules["scratchvae.autograd.grad_mode"]
    before = list(engine.observers)
    with detect_anomaly():
        assert len(engine.observers) == len(before) + 1
        with detect_anomaly():  # nesting is fine
            assert len(engine.observers) == len(before) + 2
        assert len(engine.observers) == len(before) + 1  # still active in the outer block
        with pytest.raises(AnomalyError):
            F.log(bk.tensor(np.array([-1.0])))
    assert engine.observers == before
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            F.log(bk.tensor(np.array([-1.0])))
    assert engine.observers == before
    F.log(bk.tensor(np.array([0.0])))  # outside: no checks, no error


def test_graph_built_outside_is_checked_in_backward(bk, float64):
    x = bk.tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = F.sqrt(x).sum()
    with pytest.raises(AnomalyError, match="(?s)backward of op 'sqrt'.*created outside detect_anomaly"):
        with detect_anomaly():
            y.backward()


def test_a_normal_elbo_passes_unchanged(bk, float64):
    rng = np.random.default_rng(0)
    W = bk.tensor(rng.normal(size=(5, 4)) * 0.3, requires_grad=True)
    V = bk.tensor(rng.normal(size=(2, 5)), requires_grad=True)
    x = bk.tensor((rng.random((3, 5)) > 0.5).astype(np.float64))
    prior = Independent(Normal.standard((2,), dtype="float64", backend=bk.backend), 1)

    def run():
        r = elbo(x, lambda x: Independent(Normal.from_log_var((x @ W)[:, :2], (x @ W)[:, 2:]), 1),
                 lambda z: bernoulli_likelihood(z @ V), prior, generator=sv.Generator(0))
        r.loss().backward()
        g = _np(W.grad).copy()
        W.grad = V.grad = None
        return _np(r.elbo), g

    e0, g0 = run()
    with detect_anomaly():
        e1, g1 = run()
    np.testing.assert_array_equal(e0, e1)
    np.testing.assert_array_equal(g0, g1)


def test_nan_in_an_encoder_is_caught_where_it_is_born(bk, float64):
    # log_var = log(h) with h <= 0 gives NaN; without anomaly mode it surfaces as a validation error
    h = bk.tensor(np.array([[0.5, -1.0]]), requires_grad=True)
    with pytest.raises(ValueError, match="log_var contains NaN"):
        Normal.from_log_var(bk.tensor(np.zeros((1, 2))), F.log(h))
    with pytest.raises(AnomalyError, match="forward of op 'log' produced 1 NaN"):
        with detect_anomaly():
            Normal.from_log_var(bk.tensor(np.zeros((1, 2))), F.log(h))
