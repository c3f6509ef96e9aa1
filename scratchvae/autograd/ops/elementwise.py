"""Elementwise functions, each with its derivative written in terms of what forward computed.

The stable ones never overflow: softplus(x) = max(x, 0) + log1p(exp(-|x|)) and
log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)) only ever exponentiate a non-positive number
(docs/autograd.md#stable-functions).
"""

from __future__ import annotations

from ...backend import dtype_name, namespace
from ..fastpath import replaceable
from ..tensor import Function, Tensor


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


def _stable_sigmoid(xp, x):
    """1 / (1 + e^-x) = e^min(x, 0) / (1 + e^-|x|): no exponent is ever positive, so nothing overflows."""
    return xp.exp(xp.minimum(x, 0.0)) / (1.0 + xp.exp(-xp.abs(x)))


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed without overflow;  dy/dx = y (1 - y)."""

    def forward(self, x):
        y = _stable_sigmoid(namespace(x), x)
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
        return (gy * namespace(gy).astype(self.saved > 0, gy.dtype),)


class Softplus(Function):
    """y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|);  dy/dx = sigmoid(x)."""

    def forward(self, x):
        self.saved = x
        xp = namespace(x)
        return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return (gy * _stable_sigmoid(namespace(gy), self.saved),)


class LogSigmoid(Function):
    """y = log sigmoid(x) = min(x, 0) - log1p(e^-|x|);  dy/dx = sigmoid(-x)."""

    def forward(self, x):
        self.saved = x
        xp = namespace(x)
        return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return (gy * _stable_sigmoid(namespace(gy), -self.saved),)


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


@replaceable
def sigmoid(x) -> Tensor:
    return Sigmoid()(x)


@replaceable
def relu(x) -> Tensor:
    return ReLU()(x)


@replaceable
def softplus(x) -> Tensor:
    """log(1 + e^x), stable for any x (never overflows)."""
    return Softplus()(x)


@replaceable
def log_sigmoid(x) -> Tensor:
    """log sigmoid(x) = -softplus(-x), stable for any x."""
    return LogSigmoid()(x)


def astype(x, dtype) -> Tensor:
    if dtype_name(x.dtype) == dtype_name(dtype):
        return x
    return AsType(dtype)(x)
