"""The layers as functions: ``import scratchvae.nn.functional as NF; NF.linear(x, W, b)``.

The activations the engine already has (relu, tanh, sigmoid, softplus) are re-exported from
``scratchvae.functional``; ``linear`` and ``leaky_relu`` are ops of their own; the losses
(binary_cross_entropy, mse_loss, ...) are in nn/losses.py.
"""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..autograd.ops import relu, sigmoid, softplus, tanh
from ..backend import namespace
from .linear import linear
from .losses import (
    binary_cross_entropy, binary_cross_entropy_with_logits, gaussian_nll_loss, log_softmax, mse_loss, softmax,
)

__all__ = ["linear", "relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity", "LeakyReLUFunction",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "gaussian_nll_loss",
           "softmax", "log_softmax"]


class LeakyReLUFunction(Function):
    """y = x where x > 0, else a x;  dy/dx = 1 where x > 0, else a."""

    __slots__ = ("slope",)
    name = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        self.slope = float(negative_slope)

    def forward(self, x):
        xp = namespace(x)
        pos = x > 0
        self.saved = pos  # a boolean mask is all backward needs
        return xp.where(pos, x, self.slope * x)

    def backward(self, gy):
        return (namespace(gy).where(self.saved, gy, self.slope * gy),)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """max(x, 0) + negative_slope * min(x, 0)."""
    return LeakyReLUFunction(negative_slope)(x)


def identity(x: Tensor) -> Tensor:
    return x
