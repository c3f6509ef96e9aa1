"""Ops that choose between values: where, clip (clamp), maximum, minimum, and the smooth maximum logaddexp."""

from __future__ import annotations

from ...backend import namespace
from ..tensor import Function, Tensor, sum_to
from .common import constant


class Where(Function):
    """y = a where cond else b (cond is a plain boolean array);  ga = gy where cond, gb = gy elsewhere."""

    __slots__ = ("cond",)

    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        self.saved = (a.shape, b.shape)
        return namespace(a).where(self.cond, a, b)

    def backward(self, gy):
        xp = namespace(gy)
        sa, sb = self.saved
        return (sum_to(xp.where(self.cond, gy, 0.0), sa) if self.needs[0] else None,
                sum_to(xp.where(self.cond, 0.0, gy), sb) if self.needs[1] else None)


class Clip(Function):
    """y = min(max(x, lo), hi);  dy/dx = 1 inside [lo, hi] (ends included, as in PyTorch), else 0."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.saved = x
        return namespace(x).clip(x, min=self.lo, max=self.hi)

    def backward(self, gy):
        x = self.saved
        if self.lo is None:
            inside = x <= self.hi
        elif self.hi is None:
            inside = x >= self.lo
        else:
            inside = (x >= self.lo) & (x <= self.hi)
        xp = namespace(gy)
        return (gy * xp.astype(inside, gy.dtype),)


class Maximum(Function):
    """y = max(a, b) elementwise;  the gradient goes to the larger input, half to each on ties."""

    _sign = 1.0

    def forward(self, a, b):
        self.saved = (a, b)
        xp = namespace(a)
        return xp.maximum(a, b) if self._sign > 0 else xp.minimum(a, b)

    def backward(self, gy):
        a, b = self.saved
        xp = namespace(gy)
        wins = (a > b) if self._sign > 0 else (a < b)
        share = xp.astype(wins, gy.dtype) + 0.5 * xp.astype(a == b, gy.dtype)
        return (sum_to(gy * share, a.shape) if self.needs[0] else None,
                sum_to(gy * (1.0 - share), b.shape) if self.needs[1] else None)


class Minimum(Maximum):
    """y = min(a, b) elementwise;  the gradient goes to the smaller input, half to each on ties."""

    _sign = -1.0


def where(cond, a, b) -> Tensor:
    cond = cond.data if isinstance(cond, Tensor) else cond
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Where(cond)(a, constant(b, a))


def clip(x, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clip: give min, max or both")
    return Clip(min, max)(x)


clamp = clip  # PyTorch's name: torch.clamp(x, min=, max=)


def _plain(a, b, name: str, logical: str):
    """maximum / minimum of plain arrays; of boolean masks, their logical or / and."""
    xp = namespace(a)
    if a.dtype == xp.bool:
        return getattr(xp, logical)(a, b)
    return getattr(xp, name)(a, b)


def maximum(a, b) -> Tensor:
    """max(a, b) elementwise; of two plain arrays (masks from ``le``/``gt``, say) a plain array."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor) and hasattr(a, "shape"):
        return _plain(a, b, "maximum", "logical_or")
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Maximum()(a, constant(b, a))


def minimum(a, b) -> Tensor:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor) and hasattr(a, "shape"):
        return _plain(a, b, "minimum", "logical_and")
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Minimum()(a, constant(b, a))


def logaddexp(a, b) -> Tensor:
    """log(exp(a) + exp(b)) elementwise (torch.logaddexp, np.logaddexp), without overflow:
    max(a, b) + log1p(exp(-|a - b|)); either side may be a number."""
    from .arithmetic import add, neg, sub
    from .elementwise import abs, exp, log1p

    if not isinstance(a, Tensor):
        a = constant(a, b)
    b = constant(b, a)
    return add(maximum(a, b), log1p(exp(neg(abs(sub(a, b))))))
