"""Helpers shared by the op modules: wrapping constants, and axis bookkeeping for reductions."""

from __future__ import annotations

from ...arrays import constant_like, is_integer_scalar, is_number
from ...backend import namespace
from ..tensor import Tensor


def constant(x, like: Tensor) -> Tensor:
    """A constant (no-grad) Tensor for a Python number or array used in an op with ``like``.

    Python numbers take ``like``'s dtype (x * 2.0 stays float32), as in NumPy and PyTorch.  A NumPy
    array next to a device tensor is NOT moved: the op then reports the device mismatch.
    """
    if isinstance(x, Tensor):
        return x
    out = Tensor.__new__(Tensor)
    out.data = constant_like(x, like.data) if is_number(x) else x
    out.grad, out.requires_grad, out._ctx = None, False, None
    return out


def normalize_axes(axis, ndim):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative axes.

    A 0-d array accepts axis 0 and -1 as PyTorch does (its one "dimension" is itself) and reduces
    over nothing.
    """
    if axis is None:
        return tuple(range(ndim))
    if is_integer_scalar(axis):
        axis = (axis,)
    out = []
    for a in map(int, axis):
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        if ndim:
            out.append(a % ndim)
    return tuple(sorted(out))


def torch_alias(value, alias, name: str, alias_name: str, default=None):
    """An argument given under its NumPy name (axis=, keepdims=) or its PyTorch one (dim=, keepdim=):
    the same thing, so at most one may be given."""
    if alias is None:
        return default if value is None else value
    if value is not None:
        raise TypeError(f"give {name}= or {alias_name}= (the same argument), not both")
    return alias


def check_axis(axis: int, ndim: int, what: str = "axis") -> int:
    """One axis of an ``ndim``-dimensional array, negatives counted from the end, as non-negative;
    out of range is an error (never wrapped round to another axis)."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what} {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def keepdims_shape(shape, axes):
    """The shape a reduction over ``axes`` has with keepdims=True."""
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def expand_reduced(gy, shape, axes, keepdims):
    """Reshape the gradient of a reduction so it broadcasts against the input of ``shape``."""
    if keepdims or not axes:
        return gy
    return namespace(gy).reshape(gy, keepdims_shape(shape, axes))
