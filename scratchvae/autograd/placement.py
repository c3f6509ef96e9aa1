"""How data becomes a Tensor: ``tensor()`` (like torch.tensor) and ``as_tensor()`` (user input placed
next to a tensor, never moving what already lives on a backend)."""

from __future__ import annotations

from ..backend import (
    backend_of,
    dtype_name,
    get_backend,
    get_default_dtype,
    host_array,
    is_floating,
    is_host_data,
    namespace,
)
from .tensor import Tensor

__all__ = ["tensor", "as_tensor"]


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """A leaf Tensor from Python numbers, lists, NumPy or backend arrays (like ``torch.tensor``).

    Python data and NumPy arrays are placed on the current backend (host -> device); arrays that
    already live on a backend stay there.  Python floats take the default dtype; arrays keep theirs
    unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    if is_host_data(data):
        host = host_array(data)
        if dtype is None and host.dtype.kind == "f" and not hasattr(data, "dtype"):
            dtype = get_default_dtype()  # Python floats take the default dtype; NumPy data keeps its own
        arr = get_backend().from_numpy(host, dtype)
    else:
        arr = data
        if dtype is not None and dtype_name(arr.dtype) != dtype_name(dtype):
            xp = namespace(arr)
            arr = xp.astype(arr, getattr(xp, dtype_name(dtype)))
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._ctx, out.requires_grad = arr, None, None, False
    if requires_grad:
        out.requires_grad_(True)
    return out


def as_tensor(data, like: Tensor | None = None, dtype=None) -> Tensor:
    """User input -- a Tensor, a backend array, host data (NumPy array, list, Python number) -- as a
    Tensor next to ``like``: the one way the library places what it is given.

    A Tensor is returned as it is and a backend array is wrapped where it lives: neither is ever
    moved.  Host data goes to ``like``'s backend (else the current one) -- the explicit host ->
    device copy -- in ``dtype`` if given, else in ``like``'s floating dtype (numbers, and numeric
    arrays next to a floating ``like``), else as ``tensor()`` would.
    """
    if isinstance(data, Tensor):
        return data if dtype is None else astype(data, dtype)
    if not is_host_data(data):
        return tensor(data, dtype=dtype)
    if like is None:
        return tensor(data, dtype=dtype)
    if dtype is None and is_floating(like.dtype):
        dtype = like.dtype
    return tensor(backend_of(like.data).from_numpy(host_array(data, dtype)))


from .ops import astype  # noqa: E402  (the ops import this module's Tensor first)
