"""Layers and models: Module, Parameter, Linear, MLP, activations, initialisers (docs/nn.md)."""

from . import functional, init
from .activation import Identity, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .functional_call import functional_call
from .linear import Linear
from .mlp import MLP
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential
from .torch_state import load_torch_state_dict, torch_state_dict

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "IncompatibleKeys",
    "Linear", "MLP", "Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus",
    "functional", "functional_call", "init", "load_torch_state_dict", "torch_state_dict",
]
