"""A multilayer perceptron: Linear layers with an activation between them (docs/nn.md#mlp)."""

from __future__ import annotations

import copy

from .activation import ACTIVATIONS, ReLU, Tanh
from .linear import Linear, linear
from .module import Module, Sequential

__all__ = ["MLP"]


def _make_activation(spec, what):
    """A fresh activation Module from a name ("tanh"), a Module class (Tanh) or an instance
    (deep-copied, so no two positions share parameters)."""
    if isinstance(spec, str):
        try:
            return ACTIVATIONS[spec.lower()]()
        except KeyError:
            raise ValueError(f"MLP: unknown {what} {spec!r}; use one of {sorted(ACTIVATIONS)}, "
                             "a Module class or a Module instance") from None
    if isinstance(spec, type) and issubclass(spec, Module):
        return spec()
    if isinstance(spec, Module):
        return copy.deepcopy(spec)
    raise TypeError(f"MLP: {what} must be a name, a Module class or a Module instance, got {spec!r}")


class MLP(Sequential):
    """Linear(sizes[0], sizes[1]), act, Linear(sizes[1], sizes[2]), act, ..., Linear(sizes[-2], sizes[-1])
    [, final_activation].

    Layers are registered as "0", "1", ... like a Sequential, so the first weight is "0.weight".
    ``generator`` (a scratchvae.random.Generator) draws every layer's initial values, in order.
    """

    def __init__(self, sizes, activation="relu", final_activation=None, bias: bool = True, *,
                 dtype=None, backend=None, generator=None):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(Linear(sizes[i], sizes[i + 1], bias, dtype=dtype, backend=backend, generator=generator))
            if i < len(sizes) - 2:
                layers.append(_make_activation(activation, "activation"))
        if final_activation is not None:
            layers.append(_make_activation(final_activation, "final_activation"))
        super().__init__(*layers)
        self.sizes = tuple(sizes)

    def forward(self, x):
        """The layers in order, each Linear followed by a plain ReLU or Tanh run as one fused node
        (``linear(..., activation=)``): the same numbers as the two apart, one node fewer."""
        layers = list(self._modules.values())
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


# Exact types only: a subclass may change forward, and then it must run as written.
_FUSABLE = {ReLU: "relu", Tanh: "tanh"}
