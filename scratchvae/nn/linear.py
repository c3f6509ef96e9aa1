"""The affine layer y = x W + b as ONE graph node with a hand-written backward.

A chain matmul -> add would record two nodes and keep the intermediate x W alive; the fused op
records one and saves only x and W.  Weights are laid out (in_features, out_features), so the
forward is a plain ``x @ W`` with no transpose.  docs/nn.md#linear.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor
from ..autograd.ops import cupy_kernels
from ..autograd.ops.cupy_kernels import is_cupy
from ..autograd.ops.elementwise import _relu_mask
from ..backend import _make, dtype_name, get_backend, get_default_dtype, namespace
from . import init
from .module import Module, Parameter

__all__ = ["FUSED_ACTIVATIONS", "Linear", "LinearFunction", "linear"]


#: Activations a Linear node can apply itself (Linear followed by ReLU/Tanh in an MLP).
FUSED_ACTIVATIONS = ("relu", "tanh")


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
        if activation is not None and activation not in FUSED_ACTIVATIONS:
            raise ValueError(f"linear: activation must be one of {FUSED_ACTIVATIONS} or None, got {activation!r}")
        self.activation = activation

    def forward(self, x, w, b=None):
        if w.ndim != 2:
            raise ValueError(f"the weight must be 2-D (in_features, out_features), got shape {tuple(w.shape)}")
        if x.ndim == 0 or x.shape[-1] != w.shape[0]:
            raise ValueError(
                f"the input's last axis has {x.shape[-1] if x.ndim else 'no'} features but the weight expects "
                f"in_features={w.shape[0]} (weight shape {tuple(w.shape)})"
            )
        if b is not None and tuple(b.shape) != (w.shape[1],):
            raise ValueError(f"the bias must have shape ({w.shape[1]},) to match the weight, got {tuple(b.shape)}")
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
                gy = gy * _relu_mask(xp, y, gy.dtype)
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
    if bias is None:
        return LinearFunction(activation)(x, weight)
    return LinearFunction(activation)(x, weight, bias)


class Linear(Module):
    """An affine layer y = x W + b with W of shape (in_features, out_features).

    Default initialisation (PyTorch's, so results are comparable with PyTorch code):
    W ~ U(-1/sqrt(in), 1/sqrt(in)) -- Kaiming-uniform with a = sqrt(5) -- and
    b ~ U(-1/sqrt(in), 1/sqrt(in)).  Var(W) = 1/(3 in), so each output's variance is a third of
    the mean squared input whatever the width: activations neither grow nor vanish with ``in``.
    docs/nn.md#initialisation.  Parameters are created in ``dtype`` (default: the default dtype)
    on ``backend`` (default: the current backend); ``generator`` is a scratchvae.random.Generator.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype=None, backend=None, generator=None):
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"Linear: {what} must be a positive integer, got {n!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        be = get_backend() if backend is None else (backend if not isinstance(backend, str) else _make(backend))
        name = dtype_name(dtype or get_default_dtype())
        self.weight = Parameter(be.from_numpy(np.zeros((self.in_features, self.out_features), dtype=name)))
        if bias:
            self.bias = Parameter(be.from_numpy(np.zeros((self.out_features,), dtype=name)))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        """Draw W and b afresh with the default initialisation (W first, then b)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
