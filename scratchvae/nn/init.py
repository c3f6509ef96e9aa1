"""Initialisers: fill a parameter with constants or random draws, in place of its old values.

Every draw comes from a ``scratchvae.random.Generator`` (``generator=``, default: the global one
seeded by ``scratchvae.manual_seed``), in the parameter's own dtype and on its own backend, so a
float32 GPU parameter is filled with float32 GPU numbers and nothing crosses to the host.

Fans follow this library's weight layout (in_features, out_features) -- y = x W -- so for a 2-D
weight fan_in = shape[0] and fan_out = shape[1] (PyTorch's layout is the transpose).
docs/nn.md#initialisation.
"""

from __future__ import annotations

import math

from ..backend import backend_of, dtype_name, namespace
from ..random import default_generator

__all__ = [
    "calculate_gain", "zeros_", "ones_", "constant_", "normal_", "uniform_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The factor by which ``nonlinearity`` shrinks the standard deviation, to be undone by the
    init: 1 (linear, sigmoid), 5/3 (tanh), sqrt(2) (relu), sqrt(2 / (1 + a^2)) (leaky_relu, slope a)."""
    linear = ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        if isinstance(a, bool) or not isinstance(a, (int, float)):
            raise ValueError(f"calculate_gain: the negative slope must be a number, got {a!r}")
        return math.sqrt(2.0 / (1.0 + a * a))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(
        f"calculate_gain: unknown nonlinearity {nonlinearity!r}; use one of linear, sigmoid, tanh, relu, "
        "leaky_relu, selu"
    )


def _fans(t):
    shape = tuple(t.shape)
    if len(shape) != 2:
        raise ValueError(
            f"fan-based initialisation needs a 2-D weight (in_features, out_features), got shape {shape}; "
            "use uniform_/normal_ for other shapes"
        )
    return shape[0], shape[1]


def _draw(t, kind, generator):
    g = generator if generator is not None else default_generator()
    d = t.data
    fn = g.uniform if kind == "uniform" else g.normal
    return fn(tuple(d.shape), dtype_name(d.dtype), backend_of(d))


def zeros_(t):
    """t <- 0."""
    t.data = namespace(t.data).zeros_like(t.data)
    return t


def ones_(t):
    """t <- 1."""
    t.data = namespace(t.data).ones_like(t.data)
    return t


def constant_(t, value: float):
    """t <- value."""
    t.data = namespace(t.data).full_like(t.data, value)
    return t


def uniform_(t, a: float = 0.0, b: float = 1.0, generator=None):
    """t ~ U(a, b), elementwise independent."""
    if not b >= a:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    t.data = a + (b - a) * _draw(t, "uniform", generator)
    return t


def normal_(t, mean: float = 0.0, std: float = 1.0, generator=None):
    """t ~ N(mean, std^2), elementwise independent."""
    if not std >= 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    t.data = mean + std * _draw(t, "normal", generator)
    return t


def xavier_uniform_(t, gain: float = 1.0, generator=None):
    """Glorot: t ~ U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)), so Var = gain^2 2 / (fan_in + fan_out)."""
    fan_in, fan_out = _fans(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t, gain: float = 1.0, generator=None):
    """Glorot: t ~ N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(t, a, mode, nonlinearity):
    fan_in, fan_out = _fans(t)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He: t ~ U(-bound, bound), bound = gain sqrt(3 / fan) (std = gain / sqrt(fan)); ``a`` is the
    leaky-ReLU slope that sets the gain.  With a = sqrt(5) this is Linear's default, bound = 1/sqrt(fan_in)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He: t ~ N(0, std^2), std = gain / sqrt(fan)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)
