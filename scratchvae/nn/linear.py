"""The affine layer y = x W + b (optionally followed by ReLU or Tanh).

Weights are laid out (in_features, out_features), so the forward is a plain ``x @ W`` with no
transpose.  The fast layer (scratchvae/fast/linear.py) runs ``linear`` as one graph node with a
hand-written backward; here it is the composition matmul -> add -> activation.  docs/nn.md#linear.
"""

from __future__ import annotations

import math

import operator

from .. import functional as F
from ..autograd import Tensor
from ..autograd.fastpath import replaceable
from ..backend import dtype_name, get_default_dtype, resolve_backend
from . import init
from .module import Module, Parameter

__all__ = ["FUSED_ACTIVATIONS", "Linear", "check_linear_shapes", "linear"]


#: The activations ``linear`` applies itself (an MLP's Linear followed by ReLU or Tanh).
FUSED_ACTIVATIONS = ("relu", "tanh")


def check_linear_shapes(x_shape, w_shape, b_shape=None) -> None:
    """The shape errors of y = x W + b in the layer's words (in_features, out_features)."""
    if len(w_shape) != 2:
        raise ValueError(f"linear: the weight must be 2-D (in_features, out_features), got shape {tuple(w_shape)}")
    if len(x_shape) == 0 or x_shape[-1] != w_shape[0]:
        raise ValueError(
            f"linear: the input's last axis has {x_shape[-1] if len(x_shape) else 'no'} features but the weight "
            f"expects in_features={w_shape[0]} (weight shape {tuple(w_shape)})"
        )
    if b_shape is not None and tuple(b_shape) != (w_shape[1],):
        raise ValueError(f"linear: the bias must have shape ({w_shape[1]},) to match the weight, got {tuple(b_shape)}")


@replaceable
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """y = act(x W + b) for x of shape (..., in), W (in, out), b (out,); ``activation`` None, "relu" or
    "tanh".  docs/nn.md#linear.  (The fast layer runs it as one graph node: scratchvae/fast/linear.py.)"""
    if activation is not None and activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"linear: activation must be one of {FUSED_ACTIVATIONS} or None, got {activation!r}")
    check_linear_shapes(x.shape, weight.shape, None if bias is None else bias.shape)
    y = F.matmul(x, weight)
    if bias is not None:
        y = y + bias
    if activation is None:
        return y
    return F.relu(y) if activation == "relu" else F.tanh(y)


def _is_integer(n) -> bool:
    try:
        operator.index(n)  # int, NumPy integers: anything that is an exact integer
    except TypeError:
        return False
    return True


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
            if not _is_integer(n) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"Linear: {what} must be a positive integer, got {n!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        be = resolve_backend(backend)
        name = dtype_name(dtype or get_default_dtype())
        self.weight = Parameter(be.zeros((self.in_features, self.out_features), name))
        if bias:
            self.bias = Parameter(be.zeros((self.out_features,), name))
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
