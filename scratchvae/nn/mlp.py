"""A multilayer perceptron: Linear layers with an activation between them (docs/nn.md#mlp)."""

from __future__ import annotations

import copy

from .activation import ACTIVATIONS
from .linear import Linear
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

    Layers are registered as "0", "1", ... like a Sequential, so the first weight is "0.weight"; the
    forward is Sequential's.
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
