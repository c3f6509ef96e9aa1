"""Edge cases of the op set, each row's forward value AND gradient against the convention PyTorch
documents for the same case (named in the row's ``convention``).

Every expected value and gradient is computed independently here -- by hand, or with the ``math``
module -- never copied from the library's output, so every row can fail.  Rows run on every
backend of the ``bk`` fixture (NumPy, array_api_strict's device1, CuPy where there is a GPU).

Rows marked ``known_bug`` (or ``strict_bug``: only on array_api_strict) are expected to fail until
the library is fixed; they are strict xfails, so a fix turns them into an XPASS failure that says
to remove the mark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F
import scratchvae.nn.functional as NF
from scratchvae import backend as B
from scratchvae import distributions as D

pytestmark = pytest.mark.usefixtures("float64")

INF, NAN = math.inf, math.nan
E = math.e


@dataclass
class Case:
    id: str
    fn: object             # Tensors -> Tensor
    inputs: list           # NumPy arrays (float64), all requiring grad
    value: object          # the expected forward value
    grads: list | None     # the expected gradient of each input for upstream gradient ``seed`` (None: not checked)
    convention: str        # what PyTorch documents for this case
    seed: object = None    # the upstream gradient (default: ones of the output's shape)
    dtype: str = "float64"  # the expected dtype of the value
    rtol: float = 1e-12
    atol: float = 0.0
    grad_atol: float | None = None  # (default: atol)
    raises: type | None = None
    known_bug: str | None = None
    known_bug_on: tuple | None = None  # the backends the known bug shows on (None: all)
    strict_bug: str | None = None
    strict_skip: str | None = None  # behaviour the Array API leaves unspecified (array_api_strict refuses it)
    marks: list = field(default_factory=list)


def a(x):
    return np.asarray(x, dtype=np.float64)


def sigm(x):
    return 1.0 / (1.0 + math.exp(-x))


X0, XN = 0.7, -0.4  # 0-d inputs: a positive one and a negative one

CASES: list[Case] = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


# -- 0-d inputs to every unary op (value and gradient stay 0-d) -----------------------------------
_ZD = "a 0-d input gives a 0-d value and a 0-d gradient (torch: a 0-dim tensor in, one out)"
case("0d-exp", F.exp, [a(X0)], math.exp(X0), [math.exp(X0)], _ZD)
case("0d-exp-method", lambda x: x.exp(), [a(X0)], math.exp(X0), [math.exp(X0)], _ZD)
case("0d-log", F.log, [a(X0)], math.log(X0), [1 / X0], _ZD)
case("0d-log1p", F.log1p, [a(X0)], math.log1p(X0), [1 / (1 + X0)], _ZD)
case("0d-expm1", F.expm1, [a(X0)], math.expm1(X0), [math.exp(X0)], _ZD)
case("0d-expm1-tiny", F.expm1, [a(1e-10)], math.expm1(1e-10), [math.exp(1e-10)], _ZD + "; expm1 exact near 0")
case("0d-sqrt", F.sqrt, [a(X0)], math.sqrt(X0), [0.5 / math.sqrt(X0)], _ZD)
case("0d-sqrt-method", lambda x: x.sqrt(), [a(X0)], math.sqrt(X0), [0.5 / math.sqrt(X0)], _ZD)
case("0d-square", F.square, [a(XN)], XN * XN, [2 * XN], _ZD)
case("0d-abs", F.abs, [a(XN)], -XN, [-1.0], _ZD)
case("0d-tanh", F.tanh, [a(X0)], math.tanh(X0), [1 - math.tanh(X0) ** 2], _ZD)
case("0d-sigmoid", F.sigmoid, [a(XN)], sigm(XN), [sigm(XN) * (1 - sigm(XN))], _ZD)
case("0d-relu-neg", F.relu, [a(XN)], 0.0, [0.0], _ZD)
case("0d-relu-pos", NF.relu, [a(X0)], X0, [1.0], _ZD)
case("0d-softplus", F.softplus, [a(XN)], math.log1p(math.exp(XN)), [sigm(XN)], _ZD)
case("0d-log_sigmoid", F.log_sigmoid, [a(X0)], -math.log1p(math.exp(-X0)), [1 - sigm(X0)], _ZD)
case("0d-neg", lambda x: -x, [a(X0)], -X0, [-1.0], _ZD)
case("0d-pow3", lambda x: x ** 3, [a(XN)], XN ** 3, [3 * XN ** 2], _ZD)
case("0d-rpow", lambda x: 2.0 ** x, [a(X0)], 2.0 ** X0, [math.log(2) * 2.0 ** X0], _ZD)
case("0d-scalar-arith", lambda x: (3.0 - x) / 2.0, [a(X0)], (3.0 - X0) / 2, [-0.5], _ZD)
case("0d-leaky_relu", lambda x: NF.leaky_relu(x, 0.1), [a(XN)], 0.1 * XN, [0.1], _ZD)
case("0d-clip", lambda x: F.clip(x, 0.0, 0.5), [a(X0)], 0.5, [0.0], _ZD)
case("0d-mul-self", lambda x: x * x, [a(XN)], XN * XN, [2 * XN], _ZD + "; a tensor used twice adds both paths")
case("0d-getitem-empty-tuple", lambda x: x[()], [a(X0)], X0, [1.0], "x[()] of a 0-d tensor is itself (torch, NumPy)")
case("0d-getitem-newaxis", lambda x: x[None], [a(X0)], a([X0]), [1.0], "x[None] adds a size-1 axis (torch, NumPy)")
case("0d-reshape", lambda x: F.reshape(x, (1, 1)), [a(X0)], a([[X0]]), [1.0], _ZD)
case("0d-broadcast_to", lambda x: F.broadcast_to(x, (3,)), [a(X0)], a([X0] * 3), [3.0],
     "broadcast_to: the gradient sums over the copies (torch.expand)")
case("0d-stack", lambda x: F.stack([x, 2.0 * x]), [a(X0)], a([X0, 2 * X0]), [3.0], "torch.stack of 0-d tensors is 1-d")

# -- 0-d inputs to every reduction ------------------------------------------------------------------
_ZR = "reducing a 0-d tensor over all (no) axes returns it, gradient 1 (torch.sum / amax / logsumexp)"
for _name in ("sum", "mean", "max", "min", "logsumexp"):
    for _axis in (None, ()):
        case(f"0d-{_name}-axis{_axis}", (lambda n, ax: lambda x: getattr(F, n)(x, axis=ax))(_name, _axis),
             [a(X0)], X0, [1.0], _ZR)
    case(f"0d-{_name}-keepdims", (lambda n: lambda x: getattr(F, n)(x, keepdims=True))(_name), [a(X0)], X0, [1.0], _ZR)
    for _axis in (0, -1):
        case(f"0d-{_name}-axis{_axis}", (lambda n, ax: lambda x: getattr(F, n)(x, axis=ax))(_name, _axis),
             [a(X0)], X0, [1.0],
             "torch accepts dim=0 and dim=-1 for a 0-dim tensor (dims wrap as if it had one axis)")
case("0d-sum-method", lambda x: x.sum(), [a(X0)], X0, [1.0], _ZR)

# -- ties in max / min (split evenly, torch.amax / amin) --------------------------------------------
_AMAX = "torch.amax/amin: the gradient is evenly distributed between equal values"
case("max-full-2ties", F.max, [a([1, 3, 3, 2])], 3.0, [a([0, 0.5, 0.5, 0])], _AMAX)
case("max-full-3ties", F.max, [a([[2, 2], [2, 1]])], 2.0, [a([[1 / 3, 1 / 3], [1 / 3, 0]])], _AMAX)
case("max-full-method", lambda x: x.max(), [a([1, 3, 3, 2])], 3.0, [a([0, 0.5, 0.5, 0])], _AMAX)
case("max-full-all-equal", F.max, [a([5, 5, 5, 5])], 5.0, [a([0.25] * 4)], _AMAX)
case("max-axis1-ties", lambda x: F.max(x, axis=1), [a([[1, 3, 3], [2, 0, 2]])], a([3, 2]),
     [a([[0, 0.5, 0.5], [0.5, 0, 0.5]])], _AMAX + " (per reduced row)")
case("max-axis1-ties-weighted", lambda x: F.max(x, axis=1), [a([[1, 3, 3], [2, 0, 2]])], a([3, 2]),
     [a([[0, 1, 1], [-1.5, 0, -1.5]])], _AMAX + " (times the upstream gradient)", seed=a([2.0, -3.0]))
case("max-axis0-keepdims-ties", lambda x: F.max(x, axis=0, keepdims=True), [a([[1, 3], [1, 0]])], a([[1, 3]]),
     [a([[0.5, 1], [0.5, 0]])], _AMAX)
case("max-axis-tuple-ties", lambda x: F.max(x, axis=(0, 2)), [a([[[1, 4], [2, 2]], [[4, 0], [2, 1]]])], a([4, 2]),
     [a([[[0, 0.5], [1 / 3, 1 / 3]], [[0.5, 0], [1 / 3, 0]]])], _AMAX)
case("min-axis-1-ties", lambda x: F.min(x, axis=-1), [a([[4, 1, 1], [0, 5, 6]])], a([1, 0]),
     [a([[0, 0.5, 0.5], [1, 0, 0]])], _AMAX)
case("max-all-neg-inf", F.max, [a([-INF, -INF])], -INF, [a([0.5, 0.5])], _AMAX + " (-inf == -inf is a tie)")

# -- ties in maximum / minimum (half to each, torch.maximum / minimum) -------------------------------
_MAXIMUM = "torch.maximum/minimum: where the inputs are equal the gradient is split in half between them"
case("maximum-ties", F.maximum, [a([1, 2, 3]), a([1, 0, 3])], a([1, 2, 3]), [a([0.5, 1, 0.5]), a([0.5, 0, 0.5])],
     _MAXIMUM)
case("minimum-ties", F.minimum, [a([1, 2, 3]), a([1, 0, 3])], a([1, 0, 3]), [a([0.5, 0, 0.5]), a([0.5, 1, 0.5])],
     _MAXIMUM)
case("maximum-ties-broadcast", F.maximum, [a([[1, 2], [2, 3]]), a(2.0)], a([[2, 2], [2, 3]]),
     [a([[0, 0.5], [0.5, 1]]), a(2.0)], _MAXIMUM + "; the broadcast input sums its shares (0 + .5 + .5 + 1)")
case("maximum-self", lambda x: F.maximum(x, x), [a([1.0, -2.0])], a([1.0, -2.0]), [a([1.0, 1.0])],
     _MAXIMUM + "; both halves reach the same leaf")
case("maximum-scalar-tie", lambda x: F.maximum(x, 0.0), [a([0.0, 1.0, -1.0])], a([0, 1, 0]), [a([0.5, 1, 0])],
     _MAXIMUM + " (the scalar is a constant: its half is dropped)")
case("minimum-inf-ties", F.minimum, [a([INF, -INF]), a([INF, -INF])], a([INF, -INF]),
     [a([0.5, 0.5]), a([0.5, 0.5])], _MAXIMUM + " (infinities tie too)")

# -- clip exactly at its bounds (gradient 1, bounds inclusive: torch.clamp) --------------------------
_CLAMP = "torch.clamp: the gradient is 1 where min <= x <= max (bounds included), else 0"
case("clip-at-bounds", lambda x: F.clip(x, -1.0, 1.0), [a([-1, -0.5, 0, 1, 2, -3])], a([-1, -0.5, 0, 1, 1, -1]),
     [a([1, 1, 1, 1, 0, 0])], _CLAMP)
case("clip-method-at-bounds", lambda x: x.clip(-1.0, 1.0), [a([-1, 1])], a([-1, 1]), [a([1, 1])], _CLAMP)
case("clip-min-only-at-bound", lambda x: F.clip(x, min=0.0), [a([0, -1, 1])], a([0, 0, 1]), [a([1, 0, 1])], _CLAMP)
case("clip-max-only-at-bound", lambda x: F.clip(x, max=1.0), [a([0, 1, 2])], a([0, 1, 1]), [a([1, 1, 0])], _CLAMP)
case("clip-min-equals-max", lambda x: F.clip(x, 1.0, 1.0), [a([0.5, 1, 2])], a([1, 1, 1]), [a([0, 1, 0])], _CLAMP)
case("clip-min-above-max", lambda x: F.clip(x, 1.0, 0.0), [a([0.5, 2, -1])], a([0, 0, 0]), [a([0, 0, 0])],
     "torch.clamp with min > max sets every element to max (gradient 0 everywhere)",
     strict_skip="clip with min > max is unspecified in the Array API")

# -- -inf (and +inf) entries into logsumexp ---------------------------------------------------------
_LSE = ("torch.logsumexp: value log sum exp; gradient exp(x - result), which is 0 for -inf entries "
        "and NaN only where the result itself is infinite (all -inf: exp(-inf - -inf) = NaN)")
_S1 = 1.0 + E
case("lse-some-neg-inf", F.logsumexp, [a([-INF, 0, 1])], math.log(_S1), [a([0, 1 / _S1, E / _S1])], _LSE)
case("lse-method-some-neg-inf", lambda x: x.logsumexp(), [a([-INF, 0, 1])], math.log(_S1),
     [a([0, 1 / _S1, E / _S1])], _LSE)
case("lse-row-all-neg-inf", lambda x: F.logsumexp(x, axis=1), [a([[-INF, -INF], [0, 0]])], a([-INF, math.log(2)]),
     [a([[NAN, NAN], [0.5, 0.5]])], _LSE + "; the other row stays NaN-free")
case("lse-all-neg-inf", F.logsumexp, [a([-INF, -INF, -INF])], -INF, [a([NAN, NAN, NAN])], _LSE)
case("lse-neg-inf-keepdims", lambda x: F.logsumexp(x, axis=0, keepdims=True), [a([[-INF, 1], [2, -INF]])],
     a([[2, 1]]), [a([[0, 1], [1, 0]])], _LSE)
case("lse-pos-inf", F.logsumexp, [a([INF, 0])], INF, [a([NAN, 0])], _LSE)
case("lse-large", F.logsumexp, [a([1000, 1000])], 1000 + math.log(2), [a([0.5, 0.5])], _LSE + "; no overflow")
case("lse-large-negative", F.logsumexp, [a([-1000, -1000])], -1000 + math.log(2), [a([0.5, 0.5])],
     _LSE + "; no underflow to -inf")

# -- empty slices and empty reductions --------------------------------------------------------------
_EMPTY = "an empty slice is an empty tensor; the input's gradient is zeros of its shape (torch)"
case("slice-2:2", lambda x: x[2:2], [a([1, 2, 3])], np.zeros((0,)), [np.zeros(3)], _EMPTY)
case("slice-2:2-sum", lambda x: x[2:2].sum(), [a([1, 2, 3])], 0.0, [np.zeros(3)], _EMPTY + "; its sum is 0")
case("slice-past-end", lambda x: x[5:], [a([1, 2, 3])], np.zeros((0,)), [np.zeros(3)], _EMPTY,
     strict_skip="out-of-bounds slice starts are unspecified in the Array API")
case("slice-negative-step-empty", lambda x: x[::-1][3:], [a([1, 2, 3])], np.zeros((0,)), [np.zeros(3)], _EMPTY)
case("slice-empty-columns", lambda x: x[:, 1:1], [a([[1, 2, 3], [4, 5, 6]])], np.zeros((2, 0)), [np.zeros((2, 3))],
     _EMPTY)
case("concat-with-empty", lambda x: F.concat([x, x[0:0]]), [a([1, 2])], a([1, 2]), [a([1, 1])], _EMPTY)
case("gather-empty", lambda x: x[np.array([], dtype=np.int64)], [a([1, 2, 3])], np.zeros((0,)), [np.zeros(3)], _EMPTY)
case("gather-empty-list", lambda x: x[[]], [a([1, 2, 3])], np.zeros((0,)), [np.zeros(3)],
     _EMPTY + "; x[[]] is an empty gather in torch and NumPy")
_ESUM = "sum over an empty axis is 0 (torch.sum); the gradient is zeros of the input's (empty) shape"
case("sum-empty-axis", lambda x: F.sum(x, axis=1), [np.zeros((2, 0))], np.zeros(2), [np.zeros((2, 0))], _ESUM)
case("sum-empty-full", F.sum, [np.zeros((0,))], 0.0, [np.zeros((0,))], _ESUM)
case("sum-empty-keepdims", lambda x: F.sum(x, axis=0, keepdims=True), [np.zeros((0, 3))], np.zeros((1, 3)),
     [np.zeros((0, 3))], _ESUM)
case("mean-empty-axis", lambda x: F.mean(x, axis=1), [np.zeros((2, 0))], a([NAN, NAN]), [np.zeros((2, 0))],
     "torch.mean over an empty axis is NaN; the gradient is empty")
case("max-empty", F.max, [np.zeros((0,))], None, None, "torch.amax of an empty tensor raises (no identity)",
     raises=Exception)
case("lse-empty-axis", lambda x: F.logsumexp(x, axis=1), [np.zeros((2, 0))], a([-INF, -INF]), [np.zeros((2, 0))],
     "torch.logsumexp over an empty axis is -inf (the log of an empty sum, 0)")

# -- powers, abs, relu, sqrt, log, division at 0 ------------------------------------------------------
_POW = "torch.pow backward: exponent * x^(exponent - 1), and exactly 0 for exponent 0"
case("pow0-at-0", lambda x: x ** 0, [a([0, 2, -1])], a([1, 1, 1]), [a([0, 0, 0])], _POW)
case("pow0.0-at-0", lambda x: F.pow(x, 0.0), [a([0, -0.0])], a([1, 1]), [a([0, 0])], _POW)
case("pow1-at-0", lambda x: x ** 1, [a([0.0])], a([0.0]), [a([1.0])], _POW + " (0^0 = 1)")
case("pow2-at-0", lambda x: x ** 2, [a([0.0])], a([0.0]), [a([0.0])], _POW)
case("pow3-at-0", lambda x: x ** 3, [a([0.0])], a([0.0]), [a([0.0])], _POW)
case("pow-half-at-0", lambda x: x ** 0.5, [a([0.0])], a([0.0]), [a([INF])], _POW + " (0.5 * 0^-0.5 = inf)")
case("pow-minus1-at-0", lambda x: x ** -1, [a([0.0])], a([INF]), [a([-INF])], _POW + " (-1 * 0^-2 = -inf)")
case("abs-at-0", F.abs, [a([0.0, -0.0])], a([0.0, 0.0]), [a([0.0, 0.0])], "torch.abs backward: sgn(x) = 0 at 0")
case("abs-method-at-0", lambda x: x.abs(), [a([0.0])], a([0.0]), [a([0.0])], "torch.abs backward: sgn(0) = 0")
case("relu-at-0", F.relu, [a([0.0, -0.0])], a([0.0, 0.0]), [a([0.0, 0.0])],
     "torch.relu backward (threshold_backward): gradient 0 at 0")
case("relu-nf-at-0", NF.relu, [a([0.0])], a([0.0]), [a([0.0])], "torch.relu: gradient 0 at 0")
case("relu-method-at-0", lambda x: x.relu(), [a([0.0])], a([0.0]), [a([0.0])], "torch.relu: gradient 0 at 0")
case("leaky_relu-at-0", lambda x: NF.leaky_relu(x, 0.1), [a([0.0])], a([0.0]), [a([0.1])],
     "torch leaky_relu backward: grad if x > 0 else negative_slope * grad (the slope at 0)")
case("sqrt-at-0", F.sqrt, [a([0.0])], a([0.0]), [a([INF])], "torch.sqrt backward: grad / (2 sqrt(x)) = inf at 0")
case("log-at-0", F.log, [a([0.0])], a([-INF]), [a([INF])], "torch.log backward: grad / x = inf at 0")
case("log1p-at-minus1", F.log1p, [a([-1.0])], a([-INF]), [a([INF])], "torch.log1p backward: grad / (1 + x)")
case("reciprocal-at-0", lambda x: 1.0 / x, [a([0.0])], a([INF]), [a([-INF])], "torch.div backward: -grad / x^2")

# -- saturating functions at extreme inputs (finite values, exact limits) --------------------------
_SAT = "stable at any finite input: no overflow, no NaN (torch.nn.functional.softplus / logsigmoid / sigmoid)"
case("softplus-extremes", F.softplus, [a([1000, -1000, 30])], a([1000, 0, 30 + math.log1p(math.exp(-30))]),
     [a([1, 0, sigm(30)])], _SAT, atol=1e-300)
case("log_sigmoid-extremes", F.log_sigmoid, [a([1000, -1000, -30])], a([0, -1000, -30 - math.log1p(math.exp(-30))]),
     [a([0, 1, 1 - sigm(-30)])], _SAT, atol=1e-300)
case("sigmoid-extremes", F.sigmoid, [a([1000, -1000, -40])], a([1, 0, math.exp(-40) / (1 + math.exp(-40))]),
     [a([0, 0, math.exp(-40) / (1 + math.exp(-40)) ** 2])], _SAT, atol=1e-300)
case("tanh-extremes", F.tanh, [a([1000, -1000])], a([1, -1]), [a([0, 0])], _SAT)
case("exp-underflow", F.exp, [a([-1000.0])], a([0.0]), [a([0.0])], "torch.exp: underflows to 0, gradient 0")
_BCE = ("log Bernoulli(x | l) = x l - softplus(l) (torch: -binary_cross_entropy_with_logits), relative accuracy "
        "kept for large |l|; d/dl = x - sigmoid(l)")
_T40 = math.log1p(math.exp(-40))
case("bernoulli_log_prob-large-logits", F.bernoulli_log_prob, [a([1, 0, 0, 1]), a([40, -40, 40, -40])],
     a([-_T40, -_T40, -40 - _T40, -40 - _T40]),
     [a([40, -40, 40, -40]), a([1 - sigm(40), -sigm(-40), -sigm(40), 1 - sigm(-40)])], _BCE, atol=1e-300,
     grad_atol=1e-17)

# -- linear algebra conventions ----------------------------------------------------------------------
case("diagonal-non-square", F.diagonal, [a([[1, 2, 3], [4, 5, 6]])], a([1, 5]), [a([[1, 0, 0], [0, 1, 0]])],
     "torch.diagonal: the gradient is the upstream gradient placed back on the diagonal, zeros elsewhere")
case("diagonal-tall", F.diagonal, [a([[1, 2], [3, 4], [5, 6]])], a([1, 4]), [a([[2, 0], [0, 3], [0, 0]])],
     "torch.diagonal (tall matrix)", seed=a([2.0, 3.0]))
case("diagonal-batched", F.diagonal, [np.arange(12.0).reshape(2, 3, 2)], a([[0, 3], [6, 9]]),
     [np.tile(a([[1, 0], [0, 1], [0, 0]]), (2, 1, 1))], "torch.diagonal(x, dim1=-2, dim2=-1), batched")
case("cholesky-diagonal", lambda m: F.cholesky(m), [a([[4, 0], [0, 9]])], a([[2, 0], [0, 3]]),
     [a([[0.25, 0.25], [0.25, 1 / 6]])],
     "torch.linalg.cholesky backward returns the symmetrized gradient: d sum(L) / d A_21 = 1 / L_11 "
     "= 0.5, split evenly between A_21 and A_12; dL_ii / dA_ii = 1 / (2 L_ii)")
case("tril-gradient", F.tril, [a([[1, 2], [3, 4]])], a([[1, 0], [3, 4]]), [a([[1, 0], [1, 1]])],
     "torch.tril: the gradient is tril of the upstream gradient")

_L = a([[2.0, 0, 0], [0.5, 1.5, 0], [-0.3, 0.2, 1.2]])
_MU, _Z = a([0.1, -0.2, 0.3]), a([[0.5, 1.0, -1.0], [0.0, -0.5, 2.0]])
_U = np.linalg.solve(_L, (_Z - _MU).T)  # L^-1 (z - mu), one column per sample
case("mvn-scale_tril-gradient", lambda L: D.MultivariateNormal(sv.tensor(_MU), scale_tril=L).log_prob(sv.tensor(_Z)),
     [_L], -0.5 * (_U * _U).sum(0) - np.log(np.diag(_L)).sum() - 1.5 * math.log(2 * math.pi),
     [np.tril(np.linalg.solve(_L.T, _U) @ _U.T) - 2 * np.diag(1 / np.diag(_L))],
     "torch.distributions.MultivariateNormal(scale_tril=L) reads only the lower triangle of L (a "
     "triangular solve): the gradient is tril(L^-T u u^T) - diag(1 / L_ii) per sample, 0 above the diagonal",
     rtol=1e-10, atol=1e-12)


# -- indexing conventions ----------------------------------------------------------------------------
case("ellipsis-bare", lambda x: x[...], [a([[1, 2], [3, 4]])], a([[1, 2], [3, 4]]), [np.ones((2, 2))],
     "x[...] is a view of all of x (torch, NumPy); the gradient is the upstream gradient")
case("ellipsis-tuple", lambda x: x[(Ellipsis,)], [a([1, 2])], a([1, 2]), [np.ones(2)], "x[(...,)] is x")
case("gather-repeats-accumulate", lambda x: x[np.array([2, 0, 2])], [a([1, 2, 3])], a([3, 1, 3]), [a([1, 0, 2])],
     "torch index backward (index_put with accumulate=True): repeated indices add up")
case("gather-negative", lambda x: x[np.array([-1, 0])], [a([1, 2, 3])], a([3, 1]), [a([1, 0, 1])],
     "negative indices count from the end, also for the gradient (torch, NumPy)")
case("index-boolean-mask", lambda x: x[np.array([[True, False], [True, True]])], [a([[1, -2], [3, 4]])], a([1, 3, 4]),
     [a([[1, 0], [1, 1]])], "a boolean mask selects (torch, NumPy); the gradient lands on the selected elements")
case("index-negative-step", lambda x: x[::-2], [a([1, 2, 3, 4, 5])], a([5, 3, 1]), [a([1, 0, 1, 0, 1])],
     "x[::-2] (NumPy; torch needs flip): the gradient lands on the selected elements")
case("index-numpy-integer", lambda x: x[np.int64(1)], [a([[1, 2], [3, 4]])], a([3, 4]), [a([[0, 0], [1, 1]])],
     "a NumPy integer indexes like a Python int (torch, NumPy)")

_NPINT = "NumPy integers work wherever Python ints do: axes, shapes, indices (torch and NumPy accept them)"
case("axis-numpy-integer", lambda x: F.sum(x, axis=np.int64(1)), [a([[1, 2], [3, 4]])], a([3, 7]), [np.ones((2, 2))],
     _NPINT)
case("reshape-numpy-integer", lambda x: F.reshape(x, np.int64(4)), [a([[1, 2], [3, 4]])], a([1, 2, 3, 4]),
     [np.ones((2, 2))], _NPINT)
case("index-numpy-integer-pair", lambda x: x[np.int64(1), np.int64(0)], [a([[1, 2], [3, 4]])], 3.0,
     [a([[0, 0], [1, 0]])], _NPINT)


# -- invalid axes are errors, never wrapped around -------------------------------------------------
_AXIS = "an axis outside [-ndim, ndim) (torch: IndexError 'Dimension out of range'; NumPy: AxisError)"
case("concat-axis-out-of-range", lambda x: F.concat([x, x], axis=5), [np.ones((2, 3))], None, None, _AXIS,
     raises=Exception)
case("stack-axis-out-of-range", lambda x: F.stack([x, x], axis=7), [np.ones((2, 3))], None, None, _AXIS,
     raises=Exception)
case("expand_dims-axis-out-of-range", lambda x: F.expand_dims(x, 7), [np.ones((2, 3))], None, None, _AXIS,
     raises=Exception)
case("transpose-axis-out-of-range", lambda x: F.transpose(x, (0, 3)), [np.ones((2, 3))], None, None, _AXIS,
     raises=Exception)
case("flatten-axis-out-of-range", lambda x: F.flatten(x, 5), [np.ones((2, 3))], None, None, _AXIS,
     raises=Exception)
case("tril-1d", F.tril, [a([1, 2, 3])], None, None,
     "torch.tril needs at least 2 dimensions (RuntimeError for a 1-d tensor)", raises=Exception)


# -- dtypes --------------------------------------------------------------------------------------------
case("astype-numpy-scalar-type", lambda x: x.astype(np.float32), [a([0.5, -1.5])], a([0.5, -1.5]), [a([1, 1])],
     "Tensor.to(torch.float32): the value is cast, the gradient is cast back to the input's dtype",
     dtype="float32")
case("astype-python-float", lambda x: F.astype(x, float) * 2.0, [a([0.5])], a([1.0]), [a([2.0])],
     "float means float64 (NumPy's spelling); casting to the same dtype is differentiable")


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # mean over an empty axis, on purpose
@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_edge_case(bk, c, request):
    if c.known_bug and (c.known_bug_on is None or bk.name in c.known_bug_on):
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"KNOWN BUG: {c.known_bug}"))
    if c.strict_bug and bk.name == "array_api_strict":
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"KNOWN BUG (array_api_strict): {c.strict_bug}"))
    if c.strict_skip and bk.name == "array_api_strict":
        pytest.skip(c.strict_skip)
    xs = [bk.tensor(x, requires_grad=True) for x in c.inputs]
    with np.errstate(all="ignore"):
        if c.raises is not None:
            with pytest.raises(c.raises):
                c.fn(*xs)
            return
        y = c.fn(*xs)
        expected = np.asarray(c.value, dtype=np.float64)
        got = bk.numpy(y)
        assert got.shape == expected.shape, f"{c.id}: shape {got.shape}, expected {expected.shape} ({c.convention})"
        assert B.dtype_name(y.dtype) == c.dtype, f"{c.id}: dtype {B.dtype_name(y.dtype)}, expected {c.dtype}"
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=c.rtol, atol=c.atol,
                                   err_msg=f"{c.id}: forward value ({c.convention})")
        if c.grads is None:
            return
        seed = np.ones(expected.shape) if c.seed is None else np.asarray(c.seed, dtype=np.float64)
        y.backward(bk.array(seed.astype(c.dtype)))
        for i, (x, g) in enumerate(zip(xs, c.grads)):
            g = np.asarray(g, dtype=np.float64)
            actual = np.zeros(x.shape) if x.grad is None else bk.numpy(x.grad)
            assert actual.shape == g.shape, f"{c.id}: gradient {i} has shape {actual.shape}, expected {g.shape}"
            np.testing.assert_allclose(actual, g, rtol=c.rtol, atol=c.atol if c.grad_atol is None else c.grad_atol,
                                       err_msg=f"{c.id}: gradient of input {i} ({c.convention})")
