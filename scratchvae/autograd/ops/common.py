"""Helpers shared by the op modules: wrapping constants, and axis bookkeeping for reductions."""

from __future__ import annotations

import numpy as np

from ...backend import is_floating, namespace
from ..tensor import Tensor


def as_tensor(x, like: Tensor) -> Tensor:
    """A constant (no-grad) Tensor for a Python number or array used in an op with ``like``.

    Python numbers take ``like``'s dtype (x * 2.0 stays float32), as in NumPy and PyTorch.  A NumPy
    array next to a device tensor is NOT moved: the op then reports the device mismatch.
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float, bool, np.generic)):
        d = like.data
        if type(d) is np.ndarray:
            arr = np.asarray(x, dtype=d.dtype if d.dtype.kind == "f" or not isinstance(x, float) else None)
        else:
            keep = is_floating(d.dtype) or not isinstance(x, float)
            arr = namespace(d).asarray(x, dtype=d.dtype if keep else None, device=d.device)
    else:
        arr = x
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out.requires_grad, out._ctx = arr, None, False, None
    return out


def normalize_axes(axis, ndim):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(out))


def keepdims_shape(shape, axes):
    """The shape a reduction over ``axes`` has with keepdims=True."""
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def expand_reduced(gy, shape, axes, keepdims):
    """Reshape the gradient of a reduction so it broadcasts against the input of ``shape``."""
    if keepdims or not axes:
        return gy
    return namespace(gy).reshape(gy, keepdims_shape(shape, axes))
