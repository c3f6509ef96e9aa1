"""Linear (+ ReLU/Tanh) as ONE graph node with a hand-written backward: the fast version of
``scratchvae.nn.functional.linear`` (the core's composition matmul -> add -> activation).

The chain would record up to three nodes and keep the intermediate x W alive; the fused op records
one, adds the bias and applies the activation in place on the fresh product, and saves only x, W
and (for an activation) y.  On CuPy the bias + activation and its derivative are one kernel each.
"""

from __future__ import annotations

import numpy as np

from ..autograd.tensor import Function, Tensor
from ..backend import namespace
from ..nn.activation import ReLU, Tanh
from ..nn.linear import FUSED_ACTIVATIONS, Linear, check_linear_shapes
from . import cupy_kernels
from .cupy_kernels import is_cupy
from .elementwise import relu_mask

__all__ = ["LinearFunction", "linear", "run_layers"]


class LinearFunction(Function):
    """y = act(x W + b) for x of shape (..., in), W (in, out), b (out,), act = identity, relu or tanh.

    Backward (docs/nn.md#linear), with X and G the inputs and output gradients flattened to
    (N, in) and (N, out) over the leading axes, and G first multiplied by act'(y)
    (1 where y > 0 for relu, 1 - y^2 for tanh):
    dL/dx = G W^T,   dL/dW = X^T G,   dL/db = sum over rows of G.

    An MLP's Linear + ReLU (or Tanh) runs as one node: the activation is applied in place to the
    fresh x W + b, so the pair saves one (N, out) array, one graph node and, on CuPy, one kernel
    launch each way (tests/test_nn.py::test_fused_linear_activation_equals_linear_then_activation).
    """

    __slots__ = ("activation",)
    name = "linear"

    def __init__(self, activation=None):
        self.activation = activation

    def forward(self, x, w, b=None):
        act = self.activation
        y = x @ w
        if act is not None and b is not None and is_cupy(y) and y.dtype == b.dtype:
            cupy_kernels.bias_activation(y, b, act)  # y = act(y + b) in place, one kernel
        else:
            if b is not None:
                if y.dtype == b.dtype:
                    y += b  # y is a fresh array: add in place, no second (N, out) buffer
                else:
                    y = y + b
            if act is not None:
                y = _activate(y, act)
        # The activation's derivative is read off its output, so y is kept only when there is one.
        self.saved = (x if self.needs[1] else None, w if self.needs[0] else None, y if act is not None else None)
        return y

    def backward(self, gy):
        x, w, y = self.saved
        xp = namespace(gy)
        act = self.activation
        if act is not None:
            if is_cupy(gy):
                gy = cupy_kernels.activation_grad(gy, y, act)
            elif act == "relu":
                gy = gy * relu_mask(xp, y, gy.dtype)
            else:
                gy = gy * (1.0 - y * y)
        gx = gw = gb = None
        if self.needs[0]:
            gx = gy @ w.T                                     # (..., out) @ (out, in)
        g2 = gy if gy.ndim == 2 else xp.reshape(gy, (-1, gy.shape[-1]))  # leading axes folded into rows
        if self.needs[1]:
            x2 = x if x.ndim == 2 else xp.reshape(x, (-1, x.shape[-1]))
            gw = x2.T @ g2                                    # (in, N) @ (N, out)
        if len(self.needs) > 2 and self.needs[2]:
            gb = xp.sum(g2, axis=0)
        return (gx, gw, gb)


def _activate(y, act):
    """act(y) for a fresh array y, in place where the library allows it (NumPy's out=)."""
    if type(y) is np.ndarray:
        return np.maximum(y, 0, out=y) if act == "relu" else np.tanh(y, out=y)
    xp = namespace(y)
    return xp.maximum(y, 0.0) if act == "relu" else xp.tanh(y)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """y = act(x @ weight + bias) as one fused op (weight of shape (in_features, out_features));
    ``activation`` is None, "relu" or "tanh"."""
    if activation is not None and activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"linear: activation must be one of {FUSED_ACTIVATIONS} or None, got {activation!r}")
    check_linear_shapes(x.shape, weight.shape, None if bias is None else bias.shape)
    if bias is None:
        return LinearFunction(activation)(x, weight)
    return LinearFunction(activation)(x, weight, bias)


# Exact types only: a subclass may change forward, and then it must run as written.
_FUSABLE = {ReLU: "relu", Tanh: "tanh"}


def run_layers(layers, x):
    """``nn.module.run_layers`` with each plain Linear followed by a plain ReLU or Tanh run as one
    fused node (``linear(..., activation=)``): the same numbers as the two apart, one node fewer."""
    i = 0
    while i < len(layers):
        m = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        act = _FUSABLE.get(type(nxt)) if type(m) is Linear else None
        if act is not None:
            x = linear(x, m.weight, m.bias, activation=act)
            i += 2
        else:
            x = m(x)
            i += 1
    return x
