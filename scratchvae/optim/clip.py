"""Gradient clipping by global norm (docs/nn.md#gradient-clipping)."""

from __future__ import annotations

import math

from ..autograd import Tensor
from ..backend import backend_of, namespace

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Rescale the gradients so their global norm is at most ``max_norm``; return the norm before
    clipping, as a Python float.

    norm = (sum over all gradient elements |g|^p)^(1/p)  (p = ``norm_type``; inf: max |g|);
    if norm > max_norm every gradient is multiplied by max_norm / (norm + 1e-6).

    Out of place (``p.grad = p.grad * c``): the engine may give two parameters the same gradient
    array, or a read-only view, so an in-place scale could scale one gradient twice or fail.
    Reading the norm costs one device -> host transfer of a single number.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = [p for p in parameters if p.grad is not None]
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not params:
        return 0.0
    p_ = float(norm_type)
    total = None
    for p in params:
        g = p.grad
        xp = namespace(g)
        if p_ == math.inf:
            part = xp.max(xp.abs(g))
            total = part if total is None else xp.maximum(total, part)
        else:
            a = xp.abs(g)
            part = xp.sum(a * a) if p_ == 2.0 else xp.sum(a ** p_)
            total = part if total is None else total + part
    if p_ != math.inf:
        total = total ** (1.0 / p_)
    norm = float(backend_of(total).to_numpy(total))
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(
            f"clip_grad_norm_: the total gradient norm is {norm}; the loss or a gradient is not finite. "
            "Pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0 or not math.isfinite(norm):
        for p in params:
            p.grad = p.grad * coef
    return norm
