"""Every engine op: forward equals NumPy on the same inputs, and the hand-written backward agrees
with central finite differences (scratchvae.gradcheck, float64) on hypothesis-drawn shapes,
including mutually broadcastable ones.  Runs on every backend of the ``bk`` fixture."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchvae as sv
import scratchvae.functional as F

pytestmark = pytest.mark.usefixtures("float64")

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def values(shape, lo=-3.0, hi=3.0):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_subnormal=False))


def _softplus(x):
    return np.logaddexp(0.0, x)


# name -> (engine function, NumPy reference, domain (lo, hi), minimum distance from kinks)
UNARY = {
    "neg": (lambda x: -x, np.negative, (-3, 3)),
    "exp": (F.exp, np.exp, (-3, 3)),
    "log": (F.log, np.log, (0.2, 5)),
    "log1p": (F.log1p, np.log1p, (-0.8, 5)),
    "expm1": (F.expm1, np.expm1, (-3, 3)),
    "sqrt": (F.sqrt, np.sqrt, (0.2, 5)),
    "square": (F.square, np.square, (-3, 3)),
    "abs": (F.abs, np.abs, (-3, 3)),
    "tanh": (F.tanh, np.tanh, (-3, 3)),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-6, 6)),
    "relu": (F.relu, lambda x: np.maximum(x, 0), (-3, 3)),
    "softplus": (F.softplus, _softplus, (-6, 6)),
    "log_sigmoid": (F.log_sigmoid, lambda x: -_softplus(-x), (-6, 6)),
    "pow3": (lambda x: x ** 3, lambda x: x ** 3, (-2, 2)),
    "pow_half": (lambda x: x ** 0.5, np.sqrt, (0.2, 4)),
    "rpow": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, (-2, 2)),
    "clip": (lambda x: F.clip(x, -1.0, 1.5), lambda x: np.clip(x, -1.0, 1.5), (-3, 3)),
    "scalar_ops": (lambda x: (3.0 - x) * 2.0 / 4.0 + 1.0, lambda x: (3.0 - x) * 2.0 / 4.0 + 1.0, (-3, 3)),
    "rdiv": (lambda x: 1.0 / x, lambda x: 1.0 / x, (0.5, 3)),
}
KINKS = {"abs": [0.0], "relu": [0.0], "clip": [-1.0, 1.5]}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_forward_and_gradient(bk, name, data):
    fn, ref, (lo, hi) = UNARY[name]
    shape = data.draw(small_shapes, label="shape")
    x_np = data.draw(values(shape, lo, hi), label="x")
    for k in KINKS.get(name, []):
        assume(np.all(np.abs(x_np - k) > 1e-3))  # finite differences are meaningless across a kink
    x = bk.tensor(x_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(fn(x)), ref(x_np), rtol=1e-12, atol=1e-12)
    sv.gradcheck(fn, [x])


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (F.maximum, np.maximum),
    "minimum": (F.minimum, np.minimum),
    "where": (lambda a, b: F.where(a > b, a, b * 2.0), lambda a, b: np.where(a > b, a, b * 2.0)),
    # the fused op against the composition it replaces (x is the first operand, logits the second)
    "bernoulli_log_prob": (F.bernoulli_log_prob, lambda x, l: x * l - np.logaddexp(0.0, l)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_broadcasting_forward_and_gradient(bk, name, data):
    fn, ref = BINARY[name]
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
                       label="shapes")
    a_np = data.draw(values(shapes.input_shapes[0]), label="a")
    b_np = data.draw(values(shapes.input_shapes[1], 0.5, 3.0), label="b")
    if name in ("maximum", "minimum", "where"):
        assume(np.all(np.abs(np.subtract(a_np, b_np)) > 1e-3))
    a = bk.tensor(a_np, requires_grad=True)
    b = bk.tensor(b_np, requires_grad=True)
    out = fn(a, b)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(bk.numpy(out), ref(a_np, b_np), rtol=1e-12)
    sv.gradcheck(fn, [a, b])


@given(data=st.data())
def test_matmul_all_numpy_cases(bk, data):
    """2-D, batched with broadcast batch axes, and the 1-D (vector) cases of numpy.matmul."""
    n, k, m = data.draw(st.tuples(*[st.integers(1, 4)] * 3), label="n,k,m")
    case = data.draw(st.sampled_from(["2d", "batched", "vec_mat", "mat_vec", "vec_vec", "batch_vec"]))
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3), label="batch")
    shape_a = {"2d": (n, k), "batched": batch.input_shapes[0] + (n, k), "vec_mat": (k,), "mat_vec": (n, k),
               "vec_vec": (k,), "batch_vec": batch.input_shapes[0] + (n, k)}[case]
    shape_b = {"2d": (k, m), "batched": batch.input_shapes[1] + (k, m), "vec_mat": (k, m), "mat_vec": (k,),
               "vec_vec": (k,), "batch_vec": (k,)}[case]
    a_np = data.draw(values(shape_a), label="a")
    b_np = data.draw(values(shape_b), label="b")
    a, b = bk.tensor(a_np, requires_grad=True), bk.tensor(b_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(a @ b), a_np @ b_np, rtol=1e-12, atol=1e-12)
    sv.gradcheck(lambda a, b: a @ b, [a, b])


def _logsumexp_reference(v, axis, keepdims):
    m = np.max(v, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(v - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "logsumexp"])
@given(data=st.data())
def test_reductions(bk, op, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True).map(tuple)))
    keepdims = data.draw(st.booleans())
    x_np = data.draw(values(shape), label="x")
    if op in ("max", "min"):  # ties: the subgradient is split, finite differences see a kink
        assume(len(np.unique(x_np)) == x_np.size and np.min(np.diff(np.sort(x_np.ravel()), prepend=-9)) > 1e-3)
    ref = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
           "logsumexp": _logsumexp_reference}[op]
    fn = lambda x: getattr(F, op)(x, axis=axis, keepdims=keepdims)  # noqa: E731
    x = bk.tensor(x_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(fn(x)), ref(x_np, axis=axis, keepdims=keepdims), rtol=1e-12)
    sv.gradcheck(fn, [x])


def test_max_splits_gradient_between_ties(bk):
    x = bk.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True)
    F.max(x, axis=1).sum().backward()
    np.testing.assert_array_equal(bk.numpy(x.grad), [[0, 0.5, 0.5], [1, 0, 0]])


@given(data=st.data())
def test_shape_ops(bk, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), label="shape")
    x_np = data.draw(values(shape), label="x")
    x = bk.tensor(x_np, requires_grad=True)
    perm = data.draw(st.permutations(range(len(shape))), label="perm")
    target = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), label="lead") + shape
    cases = [
        (lambda x: F.reshape(x, (-1,)), x_np.reshape(-1)),
        (lambda x: F.transpose(x, perm), np.transpose(x_np, perm)),
        (lambda x: x.T, x_np.T),
        (lambda x: F.broadcast_to(x, target), np.broadcast_to(x_np, target)),
        (lambda x: F.concatenate([x, x * 2.0], axis=-1), np.concatenate([x_np, x_np * 2], axis=-1)),
        (lambda x: F.stack([x, -x, x], axis=0), np.stack([x_np, -x_np, x_np])),
        (lambda x: F.expand_dims(x, 0), x_np[None]),
    ]
    for fn, expected in cases:
        np.testing.assert_allclose(bk.numpy(fn(x)), expected, rtol=1e-12)
        sv.gradcheck(fn, [x])


@given(data=st.data())
def test_getitem_basic_slicing(bk, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), label="shape")
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="index")
    x_np = data.draw(values(shape), label="x")
    assume(np.asarray(x_np[index]).size > 0)
    x = bk.tensor(x_np, requires_grad=True)
    np.testing.assert_allclose(bk.numpy(x[index]), x_np[index], rtol=1e-12)
    sv.gradcheck(lambda x: x[index] * 1.0, [x])


def test_getitem_integer_array_accumulates_repeats(bk):
    """A gather that repeats rows: their gradients must add up (scatter-add backward)."""
    x_np = np.arange(12.0).reshape(4, 3)
    x = bk.tensor(x_np, requires_grad=True)
    idx = np.array([2, 0, 2, 2])
    y = x[idx]
    np.testing.assert_array_equal(bk.numpy(y), x_np[idx])
    w = np.arange(12.0).reshape(4, 3)
    (y * bk.tensor(w)).sum().backward()
    expected = np.zeros((4, 3))
    np.add.at(expected, idx, w)
    np.testing.assert_array_equal(bk.numpy(x.grad), expected)
    sv.gradcheck(lambda x: x[idx] ** 2, [x])


def test_astype_round_trip_gradient(bk):
    x = bk.tensor(np.array([0.5, -1.5]), requires_grad=True)
    y = F.astype(x, "float32")
    assert sv.backend.dtype_name(y.dtype) == "float32"
    (y * 3.0).sum().backward()
    assert sv.backend.dtype_name(x.grad.dtype) == "float64"
    np.testing.assert_array_equal(bk.numpy(x.grad), [3.0, 3.0])


def test_methods_match_functions(bk):
    x_np = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.7]])
    x = bk.tensor(x_np)
    pairs = [(x.sum(axis=0), F.sum(x, axis=0)), (x.mean(), F.mean(x)), (x.exp(), F.exp(x)),
             (x.softplus(), F.softplus(x)), (x.logsumexp(axis=1), F.logsumexp(x, axis=1)),
             (x.reshape(3, 2), F.reshape(x, (3, 2))), (x.transpose(1, 0), F.transpose(x)),
             (x.max(axis=1), F.max(x, axis=1)), (x.clip(-1.0, 1.0), F.clip(x, -1.0, 1.0))]
    for a, b in pairs:
        np.testing.assert_array_equal(bk.numpy(a), bk.numpy(b))


def test_comparisons_return_plain_arrays(bk):
    x = bk.tensor(np.array([1.0, -2.0]))
    mask = x > 0
    assert not isinstance(mask, sv.Tensor)
    np.testing.assert_array_equal(bk.numpy(mask), [True, False])
