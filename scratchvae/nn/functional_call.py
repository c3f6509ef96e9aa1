"""functional_call: run a module with some of its parameters replaced, as torch.func.functional_call does.

The use here is the "sticking the landing" and DReG estimators on a hierarchical q: log q(z2 | z1)
must be evaluated with the encoder's parameters cut from the graph while z1, the point it is
evaluated at, keeps its path (docs/math.md#gradient-estimators-for-the-elbo-and-iwae).
"""

from __future__ import annotations

from .module import Module

__all__ = ["functional_call"]


def functional_call(module: Module, parameters: dict, args=(), kwargs=None):
    """``module(*args, **kwargs)`` with the named parameters (names as in ``named_parameters()``)
    replaced by the given tensors for the duration of the call; the module is restored afterwards,
    also when the call raises.  Names the module does not have raise ``KeyError``."""
    if not isinstance(args, tuple):
        args = (args,)
    owners = {}
    for prefix, m in module.named_modules():
        for pname in m._parameters:
            owners[f"{prefix}.{pname}" if prefix else pname] = (m, pname)
    unknown = [n for n in parameters if n not in owners]
    if unknown:
        raise KeyError(f"functional_call: {type(module).__name__} has no parameter(s) {unknown}; "
                       f"its parameters are {list(owners)}")
    saved = []
    try:
        for name, value in parameters.items():
            m, pname = owners[name]
            saved.append((m, pname, m.__dict__[pname]))
            # Plain attribute writes: Module.__setattr__ would register the replacement as a parameter.
            object.__setattr__(m, pname, value)
        return module(*args, **(kwargs or {}))
    finally:
        for m, pname, original in reversed(saved):
            object.__setattr__(m, pname, original)
