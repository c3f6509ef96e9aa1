"""PyTorch ``state_dict``s in and out: the same keys, Linear weights transposed.

PyTorch's ``nn.Linear.weight`` is (out_features, in_features) and its forward is ``x @ W.T``;
scratchvae's is (in_features, out_features) with the forward ``x @ W`` (docs/for_pytorch_users.md).
For a model built with the same attribute names as the PyTorch one (``self.fc1 = nn.Linear(784, 400)``
...), the keys ("fc1.weight", "fc1.bias", "0.weight" in a Sequential) are the same, and only the
Linear weights need transposing.  Values may be NumPy arrays, scratchvae Tensors, or anything with
``.numpy()`` or ``__array__`` -- PyTorch tensors included, without importing torch.
"""

from __future__ import annotations

from ..backend import host_array, to_numpy
from .linear import Linear
from .module import IncompatibleKeys, Module

__all__ = ["load_torch_state_dict", "torch_state_dict"]


def _linear_weights(module: Module) -> dict:
    """{key of each Linear's weight: that Linear}."""
    return {(f"{name}.weight" if name else "weight"): m
            for name, m in module.named_modules() if isinstance(m, Linear)}


def _as_host(value, key: str):
    """A state-dict value as a host array (a torch tensor via .detach().cpu().numpy())."""
    v = value
    for step in ("detach", "cpu"):
        if callable(getattr(v, step, None)):
            v = getattr(v, step)()
    if callable(getattr(v, "numpy", None)):
        v = v.numpy()
    try:
        a = host_array(v)
    except Exception as e:
        raise TypeError(f"load_torch_state_dict: the value of {key!r} is a {type(value).__name__}, which "
                        f"cannot be read as an array ({e})") from e
    if a.dtype.kind not in "fiu" or a.dtype == object:
        raise TypeError(f"load_torch_state_dict: the value of {key!r} is not numeric (dtype {a.dtype})")
    return a


def load_torch_state_dict(module: Module, state_dict, strict: bool = True) -> IncompatibleKeys:
    """Load a PyTorch ``state_dict`` (PyTorch's key names and layout) into ``module``.

    Every Linear weight is checked to be (out_features, in_features) and transposed; everything
    else is loaded as it is by :meth:`Module.load_state_dict` (the same ``strict`` rules: missing
    and unexpected keys and shape mismatches are listed by name, and on an error nothing changes).
    """
    if not isinstance(module, Module):
        raise TypeError(f"load_torch_state_dict: expected a Module, got {type(module).__name__}")
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"load_torch_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
    linears = _linear_weights(module)
    converted, wrong = {}, []
    for key in state_dict.keys():
        a = _as_host(state_dict[key], key)
        lin = linears.get(key)
        if lin is not None:
            want = (lin.out_features, lin.in_features)
            if tuple(a.shape) != want:
                hint = ("; it is already in scratchvae's (in, out) layout: use module.load_state_dict"
                        if tuple(a.shape) == want[::-1] else "")
                wrong.append(f"{key!r} has shape {tuple(a.shape)}, but PyTorch's nn.Linear({lin.in_features}, "
                             f"{lin.out_features}).weight is {want}{hint}")
                continue
            a = a.T
        converted[key] = a
    if wrong:
        raise ValueError("load_torch_state_dict: Linear weights of the wrong shape:\n  " + "\n  ".join(wrong))
    return module.load_state_dict(converted, strict=strict)


def torch_state_dict(module: Module) -> dict:
    """``module``'s parameters as PyTorch would store them: {key: host NumPy array}, Linear weights
    (out_features, in_features).  ``torch.nn.Module.load_state_dict`` takes it after
    ``{k: torch.from_numpy(v) for k, v in ...}``."""
    linears = _linear_weights(module)
    out = {}
    for key, p in module.named_parameters():
        a = to_numpy(p.data)
        out[key] = a.T.copy() if key in linears else a.copy()
    return out
