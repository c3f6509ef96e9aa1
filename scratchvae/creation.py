"""Tensors made from nothing, by PyTorch's names: randn, rand, zeros, ones and their ``*_like``.

Random draws come from scratchvae's own generator (``scratchvae.manual_seed`` seeds it), on the
current backend, in the default dtype -- or, for ``*_like``, on the backend and in the dtype of the
given tensor.
"""

from __future__ import annotations

from .autograd import Tensor, tensor
from .backend import backend_of, dtype_name, get_backend, get_default_dtype
from .random import default_generator

__all__ = ["randn", "rand", "zeros", "ones", "randn_like", "rand_like", "zeros_like", "ones_like"]


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def _make(data, requires_grad) -> Tensor:
    return tensor(data, requires_grad=requires_grad)


def randn(*size, dtype=None, requires_grad=False, generator=None) -> Tensor:
    """Draws of N(0, 1) of shape ``size`` (``randn(64, 20)`` or ``randn((64, 20))``)."""
    gen = generator or default_generator()
    return _make(gen.normal(_shape(size), dtype=dtype_name(dtype or get_default_dtype()), backend=get_backend()),
                 requires_grad)


def rand(*size, dtype=None, requires_grad=False, generator=None) -> Tensor:
    """Draws of U[0, 1) of shape ``size``."""
    gen = generator or default_generator()
    return _make(gen.uniform(_shape(size), dtype=dtype_name(dtype or get_default_dtype()), backend=get_backend()),
                 requires_grad)


def zeros(*size, dtype=None, requires_grad=False) -> Tensor:
    return _make(get_backend().zeros(_shape(size), dtype), requires_grad)


def ones(*size, dtype=None, requires_grad=False) -> Tensor:
    z = get_backend().zeros(_shape(size), dtype)
    return _make(z + 1, requires_grad)


def randn_like(t: Tensor, dtype=None, requires_grad=False, generator=None) -> Tensor:
    """N(0, 1) draws of ``t``'s shape, on its backend and in its dtype (torch.randn_like)."""
    gen = generator or default_generator()
    return _make(gen.normal(t.shape, dtype=dtype_name(dtype or t.dtype), backend=backend_of(t.data)), requires_grad)


def rand_like(t: Tensor, dtype=None, requires_grad=False, generator=None) -> Tensor:
    gen = generator or default_generator()
    return _make(gen.uniform(t.shape, dtype=dtype_name(dtype or t.dtype), backend=backend_of(t.data)), requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return _make(backend_of(t.data).zeros(t.shape, dtype or t.dtype), requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return _make(backend_of(t.data).zeros(t.shape, dtype or t.dtype) + 1, requires_grad)
