"""Comparisons by PyTorch's function names: ``le``, ``lt``, ``ge``, ``gt``, ``eq``, ``ne``.

They answer what the operators answer (``torch.le(a, b)`` is ``a <= b``): a plain boolean backend
array, with no gradient, ready for :func:`~scratchvae.functional.where` or as a mask.  Either side
may be a Tensor, a backend array or a Python number.
"""

from __future__ import annotations

from ..tensor import Tensor

__all__ = ["le", "lt", "ge", "gt", "eq", "ne"]


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def le(a, b):
    return _raw(a) <= _raw(b)


def lt(a, b):
    return _raw(a) < _raw(b)


def ge(a, b):
    return _raw(a) >= _raw(b)


def gt(a, b):
    return _raw(a) > _raw(b)


def eq(a, b):
    return _raw(a) == _raw(b)


def ne(a, b):
    return _raw(a) != _raw(b)
