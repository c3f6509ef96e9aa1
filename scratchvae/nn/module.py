"""Module, Parameter and the containers: how a model finds, names, moves and saves its parameters.

A Module registers every ``Parameter`` and sub-``Module`` assigned to one of its attributes, in
assignment order (a dict, never a set), so ``parameters()`` -- what an optimizer indexes its state
by -- and ``state_dict()`` -- what a checkpoint stores -- come out in the same order on every run.
See docs/nn.md#module.
"""

from __future__ import annotations

import copy
from collections import namedtuple

from ..autograd import Tensor
from ..autograd.fastpath import replaceable
from ..backend import Backend, backend_of, dtype_name, host_array, is_host_data, namespace, resolve_backend

__all__ = ["Parameter", "Module", "Sequential", "ModuleList", "IncompatibleKeys"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad and that a Module registers when it is assigned to an attribute.

    ``data`` may be a backend array (it stays on its backend), a Tensor (its values, cut from any
    graph), or NumPy / Python data (placed on the current backend like ``scratchvae.tensor``).
    The Parameter always owns a copy: optimizers update it in place, which must never write
    through into the array it was made from.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data)
        self.data = namespace(self.data).asarray(self.data, copy=True)
        self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


# What load_state_dict returns when strict=False lets keys go unmatched (as in PyTorch).
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _same_place(a, target: Backend) -> bool:
    src = backend_of(a)
    return src.name == target.name and (target.name != "array_api_strict" or src.device == target.device)


def _place(value, like, what: str):
    """``value`` (a NumPy array, a backend array or a Tensor) as a NEW array on ``like``'s backend
    and in its dtype.  Always a copy: a loaded parameter must never share memory with the state
    dict it came from (the optimizer updates parameters in place)."""
    if isinstance(value, Tensor):
        value = value.data
    target = backend_of(like)
    dtype = dtype_name(like.dtype)
    if is_host_data(value):
        return target.from_numpy(host_array(value, dtype, copy=True))
    try:
        src = backend_of(value)
    except TypeError:
        raise TypeError(
            f"load_state_dict: the value for {what!r} is a {type(value).__module__}.{type(value).__name__}; "
            "expected a NumPy array, a backend array or a Tensor"
        ) from None
    if _same_place(value, target):
        xp = namespace(value)
        return xp.astype(value, like.dtype, copy=True)
    # Another backend or device: an explicit trip through the host, the only allowed crossing.
    return target.from_numpy(host_array(src.to_numpy(value), dtype, copy=True))


class Module:
    """Base class of every layer and model (the PyTorch ``nn.Module`` idea).

    Subclasses call ``super().__init__()`` first, assign Parameters and sub-Modules as attributes,
    and implement ``forward``; calling the module calls ``forward``.
    """

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these registries to exist already.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # -- registration --------------------------------------------------------------------------
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None and isinstance(value, (Parameter, Module)):
            raise AttributeError(
                f"cannot assign {type(value).__name__} '{name}' before Module.__init__() ran; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to parameter '{name}' of {type(self).__name__}: "
                    "assign a Parameter (or None to remove it), or set .data to replace its values"
                )
            params[name] = None
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to sub-module '{name}' of {type(self).__name__}: "
                    "assign a Module (or None to remove it)"
                )
            self._modules[name] = None
        # Also a plain attribute, so reading it costs no __getattr__ lookup.
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self.__dict__.get("_parameters", {}).pop(name, None)
        self.__dict__.get("_modules", {}).pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param):
        """Register ``param`` (a Parameter or None) under ``name`` (same as assigning the attribute)."""
        self._register(name, param, Parameter, self._parameters, "register_parameter")

    def add_module(self, name: str, module):
        """Register ``module`` (a Module or None) under ``name``; used by containers for "0", "1", ..."""
        self._register(name, module, Module, self._modules, "add_module")

    def _register(self, name, value, kind, registry, what):
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{what}: {name!r} must be a {kind.__name__} or None, got {type(value).__name__}")
        if value is None:  # an empty slot that stays in the registry (PyTorch's bias=None)
            registry[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value)

    # -- calling -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- traversal -----------------------------------------------------------------------------
    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = ""):
        """This module and every sub-module, depth first, with dotted names ('' for this one)."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted name, Parameter) pairs: each module's own parameters in assignment order, then its
        sub-modules' in assignment order (PyTorch's order).  A parameter shared by two modules is
        listed once, under its first name."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for pname, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module and then on this one (e.g. a custom initialiser)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- training helpers ----------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Drop every parameter's gradient (``.grad = None``; the next backward starts afresh), or,
        with ``set_to_none=False``, set it to zeros (as in PyTorch)."""
        for p in self.parameters():
            p.grad = None if set_to_none or p.grad is None else namespace(p.grad).zeros_like(p.grad)

    def train(self, mode: bool = True):
        """Set ``.training`` on this module and every sub-module (layers that act differently read it)."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, flag: bool = True):
        """Freeze (False) or unfreeze (True) every parameter."""
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    def to(self, backend=None, dtype=None):
        """Move every parameter (and gradient) to ``backend`` ("numpy" | "cupy" | "array_api_strict"
        | a Backend) and/or cast it to a floating ``dtype``; returns self.

        The Parameter objects stay the same (only their ``.data`` changes), so references held
        elsewhere stay valid.  An optimizer's state is not moved: create the optimizer after
        moving the model, or load its state_dict afterwards.
        """
        target = None if backend is None else resolve_backend(backend)
        if dtype is not None and dtype_name(dtype) not in ("float16", "float32", "float64"):
            raise ValueError(f"Module.to: parameters must stay floating, got dtype {dtype!r}")
        for p in self.parameters():
            p.data = self._convert(p.data, target, dtype)
            if p.grad is not None:
                p.grad = self._convert(p.grad, target, dtype)
        return self

    @staticmethod
    def _convert(a, target, dtype):
        if target is not None and not _same_place(a, target):
            a = target.from_numpy(backend_of(a).to_numpy(a))
        if dtype is not None and dtype_name(a.dtype) != dtype_name(dtype):
            xp = namespace(a)
            a = xp.astype(a, getattr(xp, dtype_name(dtype)))
        return a

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{dotted name: backend array} in ``named_parameters`` order.

        The arrays are copies (unlike PyTorch, which shares storage), so a state kept as "best so
        far" is not changed by later in-place optimizer steps.
        """
        out = {}
        for name, p in self.named_parameters():
            out[name] = namespace(p.data).asarray(p.data, copy=True)
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into the parameters, converted to each parameter's
        backend and dtype (host NumPy arrays from ``scratchvae.load`` are fine).

        ``strict=True``: the keys must match exactly.  Shapes must always match.  On any error
        nothing is changed, and the ValueError lists every missing key, unexpected key and shape
        mismatch.  Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for k, p in own.items():
            if k in state_dict:
                v = state_dict[k]
                shape = tuple(v.shape) if hasattr(v, "shape") else tuple(host_array(v).shape)
                if shape != p.shape:
                    mismatched.append(f"{k!r}: state dict has {shape}, the model has {p.shape}")
        if mismatched or (strict and (missing or unexpected)):
            lines = [f"load_state_dict: the state dict does not fit {type(self).__name__}:"]
            if missing:
                lines.append(f"  missing keys (in the model, not in the state dict): {', '.join(map(repr, missing))}")
            if unexpected:
                lines.append(f"  unexpected keys (in the state dict, not in the model): "
                             f"{', '.join(map(repr, unexpected))}")
            if mismatched:
                lines.append("  shape mismatches: " + "; ".join(mismatched))
            nested = [k for k in unexpected if isinstance(state_dict[k], dict)]
            if nested:
                lines.append(f"  (the values under {', '.join(map(repr, nested))} are dicts: pass the model's own "
                             f"part, e.g. checkpoint[{nested[0]!r}])")
            if not mismatched:
                lines.append("  Pass strict=False to load the keys that match and ignore the rest.")
            raise ValueError("\n".join(lines))
        # Convert everything first, then assign: an error part-way leaves the model untouched.
        new = {k: _place(state_dict[k], p.data, k) for k, p in own.items() if k in state_dict}
        for k, arr in new.items():
            own[k].data = arr
        return IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (e.g. Linear's sizes)."""
        return ""

    def __repr__(self):
        kids = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        lines = [head]
        for name, m in kids:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"

    def __deepcopy__(self, memo):
        # The default deepcopy would route attribute assignment through __setattr__ in an order
        # where the registries may not exist yet; copy the __dict__ wholesale instead.
        new = object.__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            object.__setattr__(new, k, copy.deepcopy(v, memo))
        return new


class _Numbered(Module):
    """Sub-modules registered as "0", "1", ...: append, length, iteration and indexing (a slice
    gives a new container of the same kind over the same modules)."""

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def __getitem__(self, i):
        mods = list(self._modules.values())
        return self._of(mods[i]) if isinstance(i, slice) else mods[i]


class Sequential(_Numbered):
    """Modules applied one after the other; registered as "0", "1", ... (so parameters are named
    "0.weight", "0.bias", ...)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            for name, m in modules[0].items():
                self.add_module(str(name), m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
                self.add_module(str(i), m)

    @staticmethod
    def _of(modules):
        return Sequential(*modules)

    def forward(self, x):
        return run_layers(list(self._modules.values()), x)


@replaceable
def run_layers(layers, x):
    """Each layer in turn: x = layer(x).  (The fast layer runs a Linear and the ReLU or Tanh after
    it as one fused node: scratchvae/fast/linear.py.)"""
    for m in layers:
        x = m(x)
    return x


class ModuleList(_Numbered):
    """A list of sub-modules registered as "0", "1", ... (for models that loop over layers)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    @staticmethod
    def _of(modules):
        return ModuleList(modules)

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self
