"""Reductions: sum, mean, max and the stable logsumexp, over any axes, with or without keepdims."""

from __future__ import annotations

from ...backend import namespace
from ..tensor import Function, Tensor
from .common import expand_reduced, keepdims_shape, normalize_axes, torch_alias


class _Reduction(Function):
    __slots__ = ("axis", "keepdims")

    def __init__(self, axis=None, keepdims=False):
        self.axis = axis
        self.keepdims = keepdims


class Sum(_Reduction):
    """y = sum_i x_i over ``axis``;  the gradient broadcasts gy back over the summed axes."""

    def forward(self, x):
        self.saved = x.shape
        if self.axis is None:  # the common total: no axis bookkeeping
            self.axis = ()
            return namespace(x).sum(x, keepdims=self.keepdims)
        self.axis = normalize_axes(self.axis, x.ndim)
        return namespace(x).sum(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        shape = self.saved
        if gy.ndim:  # a 0-d total broadcasts as it is; partial sums need their axes back first
            gy = expand_reduced(gy, shape, self.axis, self.keepdims)
        return (namespace(gy).broadcast_to(gy, shape),)


class Mean(_Reduction):
    """y = (1/n) sum_i x_i over ``axis``;  dy/dx_i = 1/n."""

    def forward(self, x):
        self.axis = normalize_axes(self.axis, x.ndim)
        self.saved = x.shape
        return namespace(x).mean(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        shape = self.saved
        n = 1
        for a in self.axis:
            n *= shape[a]
        gy = expand_reduced(gy, shape, self.axis, self.keepdims) / n
        return (namespace(gy).broadcast_to(gy, shape),)


class Max(_Reduction):
    """y = max_i x_i over ``axis``;  the gradient goes to the maxima, split evenly between ties."""

    def forward(self, x):
        self.axis = normalize_axes(self.axis, x.ndim)
        y = namespace(x).max(x, axis=self.axis, keepdims=True)
        self.saved = (x, y)
        return y if self.keepdims else namespace(x).reshape(
            y, tuple(s for i, s in enumerate(x.shape) if i not in self.axis))

    def backward(self, gy):
        x, y = self.saved
        xp = namespace(gy)
        mask = xp.astype(x == y, gy.dtype)
        count = xp.sum(mask, axis=self.axis, keepdims=True)
        return (expand_reduced(gy, x.shape, self.axis, self.keepdims) * (mask / count),)


class LogSumExp(_Reduction):
    """y = log sum_i e^{x_i} = m + log sum_i e^{x_i - m} with m = max x;  dy/dx = softmax(x).

    Shifting by the max means exp never overflows and at least one term is exp(0) = 1, so the log
    never sees 0 (docs/autograd.md#stable-functions).  Backward forms the softmax as
    e^{x - m} / s from the same m, which is exact near the max even where y itself is large.
    """

    def forward(self, x):
        xp = namespace(x)
        self.axis = normalize_axes(self.axis, x.ndim)
        if any(x.shape[a] == 0 for a in self.axis):  # an empty sum: log 0 = -inf, as in PyTorch
            m = s = xp.zeros(keepdims_shape(x.shape, self.axis), dtype=x.dtype, device=x.device)
            self.saved = (x, m, s)
            y = m - xp.inf
            return y if self.keepdims else xp.reshape(
                y, tuple(n for i, n in enumerate(x.shape) if i not in self.axis))
        m = xp.max(x, axis=self.axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0.0)  # all -inf (or an inf) along an axis: no shift
        s = xp.sum(xp.exp(x - m), axis=self.axis, keepdims=True)
        self.saved = (x, m, s)
        y = xp.log(s) + m
        return y if self.keepdims else xp.reshape(
            y, tuple(n for i, n in enumerate(x.shape) if i not in self.axis))

    def backward(self, gy):
        x, m, s = self.saved
        xp = namespace(gy)
        return (expand_reduced(gy, x.shape, self.axis, self.keepdims) * (xp.exp(x - m) / s),)


def _axes(axis, keepdims, dim, keepdim):
    return torch_alias(axis, dim, "axis", "dim"), torch_alias(keepdims, keepdim, "keepdims", "keepdim", False)


def sum(x, axis=None, keepdims=None, *, dim=None, keepdim=None) -> Tensor:
    """The sum over ``axis`` (PyTorch: ``dim``), keeping the reduced axes if ``keepdims`` (``keepdim``)."""
    return Sum(*_axes(axis, keepdims, dim, keepdim))(x)


def mean(x, axis=None, keepdims=None, *, dim=None, keepdim=None) -> Tensor:
    return Mean(*_axes(axis, keepdims, dim, keepdim))(x)


def _is_other(a) -> bool:
    """``max(x, other)``: a Tensor or an array (of at least one dimension) where an axis would be."""
    return isinstance(a, Tensor) or getattr(a, "ndim", 0) > 0


def max(x, axis=None, keepdims=False, *, dim=None) -> Tensor:
    """The largest values over ``axis``.  (PyTorch's ``max(dim=)`` also returns the indices: for the
    values alone, as here, it has ``amax``.)  ``max(a, b)`` with a Tensor or array ``b`` is the
    elementwise :func:`maximum`, as ``torch.max(input, other)`` is."""
    if _is_other(axis):
        from .select import maximum

        return maximum(x, axis)
    if dim is not None:
        raise TypeError("max(dim=) in PyTorch returns (values, indices); for the values use amax(x, dim=) "
                        "or max(x, axis=)")
    return Max(axis, keepdims)(x)


def min(x, axis=None, keepdims=False, *, dim=None) -> Tensor:
    from .arithmetic import neg

    if _is_other(axis):
        from .select import minimum

        return minimum(x, axis)

    if dim is not None:
        raise TypeError("min(dim=) in PyTorch returns (values, indices); for the values use amin(x, dim=) "
                        "or min(x, axis=)")
    return neg(Max(axis, keepdims)(neg(x)))


def amax(x, axis=None, keepdims=None, *, dim=None, keepdim=None) -> Tensor:
    """The largest values over ``axis`` / ``dim`` (torch.amax): ``max`` under its PyTorch name."""
    return Max(*_axes(axis, keepdims, dim, keepdim))(x)


def amin(x, axis=None, keepdims=None, *, dim=None, keepdim=None) -> Tensor:
    """The smallest values over ``axis`` / ``dim`` (torch.amin)."""
    from .arithmetic import neg

    return neg(Max(*_axes(axis, keepdims, dim, keepdim))(neg(x)))


def logsumexp(x, axis=None, keepdims=None, *, dim=None, keepdim=None) -> Tensor:
    """log(sum(exp(x), axis)) computed stably (no overflow for any finite x)."""
    return LogSumExp(*_axes(axis, keepdims, dim, keepdim))(x)
