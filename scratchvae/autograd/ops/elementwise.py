"""Elementwise functions, each with its derivative written in terms of what forward computed.

The stable ones never overflow: softplus(x) = max(x, 0) + log1p(exp(-|x|)) and
log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)) only ever exponentiate a non-positive number
(docs/autograd.md#stable-functions).
"""

from __future__ import annotations

import numpy as np

from ...backend import dtype_name, namespace
from ..tensor import Function, Tensor
from . import cupy_kernels


class Exp(Function):
    """y = e^x;  dy/dx = y."""

    def forward(self, x):
        y = namespace(x).exp(x)
        self.saved = y
        return y

    def backward(self, gy):
        return (gy * self.saved,)


class Log(Function):
    """y = log x;  dy/dx = 1/x."""

    def forward(self, x):
        self.saved = x
        return namespace(x).log(x)

    def backward(self, gy):
        return (gy / self.saved,)


class Log1p(Function):
    """y = log(1 + x), accurate for small x;  dy/dx = 1/(1 + x)."""

    def forward(self, x):
        self.saved = x
        return namespace(x).log1p(x)

    def backward(self, gy):
        return (gy / (1.0 + self.saved),)


class Expm1(Function):
    """y = e^x - 1, accurate for small x;  dy/dx = y + 1."""

    def forward(self, x):
        y = namespace(x).expm1(x)
        self.saved = y
        return y

    def backward(self, gy):
        return (gy * (self.saved + 1.0),)


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y)."""

    def forward(self, x):
        y = namespace(x).sqrt(x)
        self.saved = y
        return y

    def backward(self, gy):
        return (gy / (2.0 * self.saved),)


class Square(Function):
    """y = x^2;  dy/dx = 2x."""

    def forward(self, x):
        self.saved = x
        return x * x

    def backward(self, gy):
        return (gy * (2.0 * self.saved),)


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at 0)."""

    def forward(self, x):
        self.saved = x
        return namespace(x).abs(x)

    def backward(self, gy):
        return (gy * namespace(gy).sign(self.saved),)


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y^2."""

    def forward(self, x):
        y = namespace(x).tanh(x)
        self.saved = y
        return y

    def backward(self, gy):
        y = self.saved
        return (gy * (1.0 - y * y),)


def _exp_neg_abs(xp, x):
    """(e, u) = (exp(-|x|), 1 + e): what softplus, log-sigmoid and sigmoid of x are made of.

    The exponent is never positive, so nothing overflows for any finite x; e lies in (0, 1].
    """
    e = xp.exp(-xp.abs(x))
    return e, 1.0 + e


def _log1p_small(xp, e, u):
    """log(1 + e) for e in [0, 1] with u = 1 + e: the term that makes softplus and log_sigmoid stable.

    NumPy's log1p is a scalar libm loop, about 5x slower than its vectorized log, and on a VAE's
    logits it is the single most expensive call of a training step.  On NumPy we therefore use
    Goldberg's correction, log(u) - ((u - 1) - e) / u: exact when u rounds to 1 (it returns e),
    within 4 ulp elsewhere (tests/test_stability.py).  Other backends have a fast log1p and use it.
    """
    if type(e) is np.ndarray:
        return xp.log(u) - ((u - 1.0) - e) / u
    return xp.log1p(e)


def _sigmoid(xp, x, e=None, u=None):
    """1 / (1 + e^-x) from e = exp(-|x|) and u = 1 + e (computed here unless given).

    It is 1/u for x >= 0 and e/u (= e^x / (1 + e^x)) for x < 0: no exponent is ever positive.  A
    0/1 mask picks the numerator exactly (a mask product: where() is several times slower in
    NumPy), so an op that already has e and u gets the sigmoid without another exponential.
    """
    if e is None:
        e, u = _exp_neg_abs(xp, x)
    neg = xp.astype(x < 0, e.dtype)
    return (e * neg + (1.0 - neg)) / u


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed without overflow;  dy/dx = y (1 - y)."""

    def forward(self, x):
        y = cupy_kernels.sigmoid(x) if cupy_kernels.is_cupy(x) else _sigmoid(namespace(x), x)
        self.saved = y
        return y

    def backward(self, gy):
        y = self.saved
        return (gy * y * (1.0 - y),)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0."""

    def forward(self, x):
        y = namespace(x).maximum(x, 0.0)
        self.saved = y
        return y

    def backward(self, gy):
        return (gy * _relu_mask(namespace(gy), self.saved, gy.dtype),)


def _relu_mask(xp, y, dtype):
    """[y > 0] as a factor: exact, and several times faster than where() in NumPy, which also
    multiplies by the bool mask directly (the Array API needs it cast to the float dtype first)."""
    mask = y > 0
    return mask if type(mask) is np.ndarray else xp.astype(mask, dtype)


class Softplus(Function):
    """y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|);  dy/dx = sigmoid(x).

    The backward's sigmoid is made in the forward from the same e^-|x| (see _sigmoid), and it is
    all the backward keeps.
    """

    def forward(self, x):
        if cupy_kernels.is_cupy(x):
            self.saved = cupy_kernels.sigmoid(x) if self.needs[0] else None
            return cupy_kernels.softplus(x)
        xp = namespace(x)
        e, u = _exp_neg_abs(xp, x)
        self.saved = _sigmoid(xp, x, e, u) if self.needs[0] else None
        return xp.maximum(x, 0.0) + _log1p_small(xp, e, u)

    def backward(self, gy):
        return (gy * self.saved,)


class LogSigmoid(Function):
    """y = log sigmoid(x) = min(x, 0) - log1p(e^-|x|);  dy/dx = sigmoid(-x) (kept from the forward)."""

    def forward(self, x):
        xp = namespace(x)
        e, u = _exp_neg_abs(xp, x)  # |-x| = |x|: the same e and u serve sigmoid(-x)
        self.saved = _sigmoid(xp, -x, e, u) if self.needs[0] else None
        return xp.minimum(x, 0.0) - _log1p_small(xp, e, u)

    def backward(self, gy):
        return (gy * self.saved,)


class AsType(Function):
    """y = x cast to another floating dtype;  the gradient is cast back."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        xp = namespace(x)
        self.saved = x.dtype
        return xp.astype(x, getattr(xp, dtype_name(self.dtype)))

    def backward(self, gy):
        return (namespace(gy).astype(gy, self.saved),)


def exp(x) -> Tensor:
    return Exp()(x)


def log(x) -> Tensor:
    return Log()(x)


def log1p(x) -> Tensor:
    return Log1p()(x)


def expm1(x) -> Tensor:
    return Expm1()(x)


def sqrt(x) -> Tensor:
    return Sqrt()(x)


def square(x) -> Tensor:
    return Square()(x)


def abs(x) -> Tensor:
    return Abs()(x)


def tanh(x) -> Tensor:
    return Tanh()(x)


def sigmoid(x) -> Tensor:
    return Sigmoid()(x)


def relu(x) -> Tensor:
    return ReLU()(x)


def softplus(x) -> Tensor:
    """log(1 + e^x), stable for any x (never overflows)."""
    return Softplus()(x)


def log_sigmoid(x) -> Tensor:
    """log sigmoid(x) = -softplus(-x), stable for any x."""
    return LogSigmoid()(x)


def astype(x, dtype) -> Tensor:
    if dtype_name(x.dtype) == dtype_name(dtype):
        return x
    return AsType(dtype)(x)
