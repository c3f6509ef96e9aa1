"""The Distribution base class, the shape vocabulary, and the validation switch.

Shapes follow PyTorch: a distribution holds a *batch* of independent distributions
(``batch_shape``), each over values of ``event_shape``.  A draw with ``sample_shape`` S has shape
``S + batch_shape + event_shape`` and ``log_prob`` of it has shape ``S + batch_shape``: the event
dimensions are summed, never averaged (docs/elbo.md#reduction-contract).

Parameters are engine Tensors.  Arrays and Python numbers are accepted and turned into Tensors
(numbers next to a Tensor take that Tensor's backend and dtype), so gradients flow to whatever
produced the parameters.
"""

from __future__ import annotations

import numbers

from .. import functional as F
from ..autograd import Tensor, as_tensor, no_grad
from ..autograd.tensor import tensor as _tensor
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

__all__ = ["Distribution", "set_default_validate_args", "get_default_validate_args"]

_VALIDATE = {"default": True}


def set_default_validate_args(value: bool) -> None:
    """Switch argument validation on (the default) or off for distributions created afterwards.

    Validation costs one device -> host sync per checked parameter; turn it off in a tuned training
    loop once the model is known to be sound.  ``validate_args=`` on a distribution overrides it.
    """
    _VALIDATE["default"] = bool(value)


def get_default_validate_args() -> bool:
    return _VALIDATE["default"]


class Distribution:
    """Base class: ``sample``, ``rsample``, ``log_prob``, ``entropy``, ``mean``, ``variance``, ``stddev``."""

    #: True where ``rsample`` is a reparameterized (differentiable) sampler.
    has_rsample = False

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = tuple(int(s) for s in batch_shape)
        self._event_shape = tuple(int(s) for s in event_shape)
        self._validate_args = get_default_validate_args() if validate_args is None else bool(validate_args)

    # -- shapes ------------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    @property
    def validate_args(self) -> bool:
        return self._validate_args

    def _extended_shape(self, sample_shape=()) -> tuple:
        if isinstance(sample_shape, int):
            sample_shape = (sample_shape,)
        return tuple(sample_shape) + self._batch_shape + self._event_shape

    # -- the interface -----------------------------------------------------------------------------
    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        """A reparameterized draw: differentiable with respect to the parameters."""
        raise NotImplementedError(
            f"{type(self).__name__} has no reparameterized sampler (rsample); its samples carry no gradient. "
            "Use sample() for draws, or a score-function estimator for gradients"
        )

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        """A draw of shape ``sample_shape + batch_shape + event_shape``, cut from the graph."""
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self).__name__}.sample is not implemented")
        with no_grad():
            return self.rsample(sample_shape, generator=generator).detach()

    def log_prob(self, value) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.log_prob is not implemented")

    def entropy(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.entropy is not implemented")

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.mean is not implemented")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.variance is not implemented")

    @property
    def stddev(self) -> Tensor:
        return F.sqrt(self.variance)

    def __repr__(self):
        return f"{type(self).__name__}(batch_shape={self._batch_shape}, event_shape={self._event_shape})"

    # -- helpers for subclasses --------------------------------------------------------------------
    def _value(self, value, like: Tensor) -> Tensor:
        """``value`` as a Tensor next to the parameter ``like`` (numbers take its backend and dtype)."""
        return _as_tensor(value, like)


# --------------------------------------------------------------------------------------------------
# Turning user parameters into Tensors on one backend, in one dtype, of one (broadcast) shape

def _is_number(x) -> bool:
    """A Python number or a NumPy scalar (NumPy registers its scalar types as ``numbers.Number``)."""
    return isinstance(x, numbers.Number)


def _as_tensor(x, like: Tensor | None = None) -> Tensor:
    """A Tensor from a Tensor, a backend or NumPy array, or a Python number: ``as_tensor`` with
    two rules of its own for numbers.

    Next to ``like``, a number takes like's dtype even when that is an integer one; with no
    ``like``, numbers, lists and tuples take the default dtype (a NumPy array keeps its dtype).
    Backend arrays and Tensors are never moved.
    """
    if like is None and (_is_number(x) or isinstance(x, (list, tuple))):
        x = host_array(x, get_default_dtype())
    elif like is not None and _is_number(x):
        return as_tensor(x, like, dtype=like.dtype)
    return as_tensor(x, like)


def _float_params(*values) -> list:
    """Tensors for the given parameters: one backend, one floating dtype (the widest given).

    The first Tensor or array among ``values`` fixes the backend; Python numbers take its dtype.
    Integer parameters become the default float dtype.
    """
    if _same_float_tensors(values):  # the common case, checked cheaply: nothing to convert
        return list(values)
    ref = None
    for v in values:
        if isinstance(v, Tensor):
            ref = v
            break
    if ref is None:
        for v in values:
            if v is not None and not is_host_data(v):
                ref = _tensor(v)  # a backend array
                break
    out = [None if v is None else _as_tensor(v, ref) for v in values]
    present = [t for t in out if t is not None]
    names = {dtype_name(t.dtype) for t in present if is_floating(t.dtype)}
    target = "float64" if "float64" in names else ("float32" if "float32" in names else get_default_dtype())
    return [None if t is None else (t if dtype_name(t.dtype) == target else F.astype(t, target)) for t in out]


def _same_float_tensors(values) -> bool:
    """True when every value is None or a Tensor of one array type and one floating dtype."""
    first = values[0]
    if not isinstance(first, Tensor):
        return False
    kind, dtype = type(first.data), first.data.dtype
    for v in values:
        if v is not None and not (isinstance(v, Tensor) and type(v.data) is kind and v.data.dtype == dtype):
            return False
    return is_floating(dtype)


def _broadcast_shape(*shapes) -> tuple:
    """The shape that arrays of ``shapes`` broadcast to: axes aligned from the right, and on each
    axis every size is 1 or one common size."""
    if shapes and all(s == shapes[0] for s in shapes):
        return tuple(shapes[0])
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(-ndim, 0):
        sizes = {int(s[axis]) for s in shapes if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            raise ValueError(f"parameters of shapes {', '.join(str(s) for s in shapes)} do not broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _broadcast_all(*tensors) -> tuple:
    """Broadcast parameters to one shape (a graph op, so gradients sum back to each parameter)."""
    shape = _broadcast_shape(*(t.shape for t in tensors))
    return shape, [t if t.shape == shape else F.broadcast_to(t, shape) for t in tensors]


def _backend_of(t: Tensor):
    return backend_of(t.data) if t is not None else get_backend()


def _xp(t: Tensor):
    return namespace(t.data)
