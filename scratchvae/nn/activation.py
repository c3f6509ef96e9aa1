"""Activation layers: parameter-free Modules wrapping the functional forms (docs/nn.md#activations)."""

from __future__ import annotations

from . import functional as NF
from .module import Module

__all__ = ["Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus", "ACTIVATIONS"]


class Identity(Module):
    """y = x."""

    def forward(self, x):
        return x


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x):
        return NF.relu(x)


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return NF.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """y = tanh x."""

    def forward(self, x):
        return NF.tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + e^-x), computed without overflow."""

    def forward(self, x):
        return NF.sigmoid(x)


class Softplus(Module):
    """y = log(1 + e^(beta x)) / beta, computed without overflow (the engine's stable softplus)."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Softplus: beta must be > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, x):
        if self.beta == 1.0:
            return NF.softplus(x)
        return NF.softplus(x * self.beta) / self.beta

    def extra_repr(self):
        return "" if self.beta == 1.0 else f"beta={self.beta}"


# Names accepted wherever an activation can be given as a string (MLP(activation="tanh")).
ACTIVATIONS = {
    "identity": Identity, "linear": Identity, "relu": ReLU, "leaky_relu": LeakyReLU,
    "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus,
}
