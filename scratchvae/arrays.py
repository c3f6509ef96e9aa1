"""What the engine asks of the array libraries that the Array API leaves open.

The engine's code runs in the namespace of its data (backend.namespace); these few facts differ
between libraries and are answered here, once: whether arrays may be combined (never across
devices), NumPy's 0-d reductions that return scalars, Python numbers as constants next to an
array, host index arrays, and how a Tensor prints its values.
"""

from __future__ import annotations

import numpy as np

from .backend import backend_of, device_of, is_floating, namespace

__all__ = ["check_same_device", "as_array", "constant_like", "is_number", "is_integer_scalar", "index_array",
           "format_array"]


def check_same_device(xs) -> None:
    """Refuse to combine arrays of two libraries or two devices -- never convert silently."""
    t0 = type(xs[0])
    if t0 is np.ndarray and len(xs) == 2 and type(xs[1]) is np.ndarray:  # the common case, cheaply
        return
    for x in xs:
        if type(x) is not t0:
            break
    else:
        if t0 is np.ndarray or all(x.device == xs[0].device for x in xs):
            return
    for x in xs:
        backend_of(x)  # raises TypeError for something that is no array of a supported backend
    devices = ", ".join(device_of(x) for x in xs)
    raise ValueError(
        f"inputs live on different backends/devices ({devices}); move them to one "
        "explicitly with Tensor.to(...) or scratchvae.tensor(...) -- nothing is converted implicitly"
    )


def as_array(y):
    """An op's result as an array: NumPy's reductions to 0-d return scalars (np.float32), not arrays."""
    return np.asarray(y) if isinstance(y, np.generic) else y


def constant_like(x, like):
    """A Python number as a 0-d array next to ``like`` (an array): in like's dtype when like is
    floating or x is not a float (x * 2.0 stays float32, as in NumPy and PyTorch)."""
    if type(like) is np.ndarray:
        return np.asarray(x, dtype=like.dtype if like.dtype.kind == "f" or not isinstance(x, float) else None)
    keep = is_floating(like.dtype) or not isinstance(x, float)
    return namespace(like).asarray(x, dtype=like.dtype if keep else None, device=like.device)


def is_number(x) -> bool:
    """Python and NumPy scalars (what ops accept next to a Tensor as constants)."""
    return isinstance(x, (int, float, bool, np.generic))


def is_integer_scalar(i) -> bool:
    """A Python or NumPy integer (not a bool): a basic index."""
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def index_array(i, like):
    """An index given as a host list or NumPy array, on ``like``'s backend (the host -> device copy).
    An empty list indexes nothing: it becomes an empty integer array, not NumPy's float default."""
    if isinstance(i, list):
        i = np.asarray(i) if i else np.zeros(0, dtype=np.intp)
    if isinstance(i, np.ndarray) and type(like) is not np.ndarray:
        return backend_of(like).from_numpy(i)
    return i


def format_array(a) -> str:
    """The values of a host array as Tensor.__repr__ prints them."""
    return np.array2string(np.asarray(a), separator=", ", threshold=20, edgeitems=2)
