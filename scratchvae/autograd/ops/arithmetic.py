"""Binary arithmetic with NumPy broadcasting: add, sub, mul, div, and neg, pow.

Each backward returns the gradient for each input summed back to that input's shape with the one
helper ``sum_to`` (docs/autograd.md#broadcasting).
"""

from __future__ import annotations

import math

from ..tensor import Function, Tensor, sum_to
from .common import constant


class Add(Function):
    """y = a + b;  dy/da = dy/db = 1."""

    def forward(self, a, b):
        self.saved = (a.shape, b.shape)
        return a + b

    def backward(self, gy):
        sa, sb = self.saved
        return (sum_to(gy, sa) if self.needs[0] else None,
                sum_to(gy, sb) if self.needs[1] else None)


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        self.saved = (a.shape, b.shape)
        return a - b

    def backward(self, gy):
        sa, sb = self.saved
        return (sum_to(gy, sa) if self.needs[0] else None,
                sum_to(-gy, sb) if self.needs[1] else None)


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a (each input saved only if the other needs its gradient)."""

    def forward(self, a, b):
        self.saved = (a if self.needs[1] else None, b if self.needs[0] else None)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        return (sum_to(gy * b, self.inputs[0].data.shape) if self.needs[0] else None,
                sum_to(gy * a, self.inputs[1].data.shape) if self.needs[1] else None)


class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2 = -y/b."""

    def forward(self, a, b):
        y = a / b
        self.saved = (b, y if self.needs[1] else None)
        return y

    def backward(self, gy):
        b, y = self.saved
        ga = gy / b
        return (sum_to(ga, self.inputs[0].data.shape) if self.needs[0] else None,
                sum_to(-ga * y, self.inputs[1].data.shape) if self.needs[1] else None)


class Neg(Function):
    """y = -x."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)


class Pow(Function):
    """y = x^p for a constant Python number p;  dy/dx = p x^(p-1), and exactly 0 for p = 0
    (x^0 = 1 is constant: p x^(p-1) would be 0 * inf = NaN at x = 0)."""

    __slots__ = ("p",)

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.saved = x
        return x ** self.p

    def backward(self, gy):
        x = self.saved
        p = self.p
        if p == 0:
            return (gy * 0.0,)
        if p == 2:
            return (gy * (2.0 * x),)
        return (gy * (p * x ** (p - 1)),)


def add(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Add()(a, constant(b, a))


def sub(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Sub()(a, constant(b, a))


def mul(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Mul()(a, constant(b, a))


def div(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Div()(a, constant(b, a))


def neg(x) -> Tensor:
    return Neg()(x)


def pow(x, p) -> Tensor:
    """x ** p for a constant exponent p (a Python number)."""
    if isinstance(p, Tensor):
        raise TypeError("pow: the exponent must be a Python number; for tensor exponents use exp(p * log(x))")
    return Pow(p)(x)


def rpow(x, base) -> Tensor:
    """base ** x for a constant positive base, as exp(x log base)."""
    from .elementwise import exp

    return exp(x * math.log(base))
