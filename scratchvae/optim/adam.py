"""Adam and AdamW with bias correction and optional AMSGrad (PyTorch's equations;
docs/nn.md#adam)."""

from __future__ import annotations

import math

import numpy as np

from ..autograd.ops import cupy_kernels
from ..autograd.ops.cupy_kernels import is_cupy
from ..backend import namespace
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW", "adam_step", "adam_step_into"]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), for step t = 1, 2, ... with g_t the gradient (+ wd p for L2 decay):

    m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) g_t^2,
    p_t = p_{t-1} - lr (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps).

    amsgrad=True uses max(v_1..v_t) in place of v_t.  docs/nn.md#adam.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))
        self._scratch_buffers = {}  # working memory of adam_step_into, never saved (see _scratch)

    def _validate(self, g):
        super()._validate(g)
        betas = tuple(g["betas"])
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), got {g['betas']}")
        g["betas"] = betas
        if not g["eps"] >= 0.0:
            raise ValueError(f"{type(self).__name__}: eps must be >= 0, got {g['eps']}")
        if not g["weight_decay"] >= 0.0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {g['weight_decay']}")

    def _init_state(self, p, group):
        xp = namespace(p.data)
        state = {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        return state

    def _update(self, p, grad, state, group):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        state["step"] = t = state["step"] + 1
        if wd != 0:
            if self._decoupled:
                p.data *= 1.0 - lr * wd      # AdamW: shrink the weights, outside the moments
            else:
                grad = grad + wd * p.data    # Adam: L2 penalty folded into the gradient (new array)
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        # lr m_hat / (sqrt(v_hat) + eps) with the bias corrections moved onto scalars:
        # = (lr sqrt(bc2) / bc1) m / (sqrt(v) + eps sqrt(bc2)), the same number in one pass fewer.
        step_size, eps_hat = lr * math.sqrt(bc2) / bc1, eps * math.sqrt(bc2)
        m, v, vmax = state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
        a = p.data
        if type(a) is np.ndarray:
            adam_step_into(np, a, grad, m, v, vmax, b1, b2, step_size, eps_hat, self._scratch(a))
        elif is_cupy(a) and vmax is None:
            cupy_kernels.adam_step(a, grad, m, v, b1, b2, step_size, eps_hat)
        elif is_cupy(a):
            adam_step_into(cupy_kernels.cupy_module(), a, grad, m, v, vmax, b1, b2, step_size, eps_hat,
                           self._scratch(a))
        else:
            adam_step(namespace(a), a, grad, m, v, vmax, b1, b2, step_size, eps_hat)

    def _scratch(self, a):
        """A scratch array shaped like ``a``: a view into one buffer per (library, dtype) that is
        as large as the largest parameter so far, shared by every parameter's update."""
        key = (type(a), a.dtype)
        buf = self._scratch_buffers.get(key)
        if buf is None or buf.size < a.size:
            buf = self._scratch_buffers[key] = namespace(a).empty(a.size, dtype=a.dtype)
        return buf[:a.size].reshape(a.shape)


def adam_step(xp, p, g, m, v, vmax, b1, b2, step_size, eps_hat):
    """One Adam update of the arrays ``p``, ``m``, ``v`` (and ``vmax`` for AMSGrad), in place:

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   p <- p - step_size m / (sqrt(v) + eps_hat).

    Written with the Array API's operators only, so it runs on any namespace; every temporary is a
    fresh array, scaled in place.
    """
    m *= b1
    tmp = (1.0 - b1) * g
    m += tmp
    v *= b2
    tmp = g * g
    tmp *= 1.0 - b2
    v += tmp
    if vmax is not None:
        vmax[...] = xp.maximum(vmax, v)
        v = vmax
    denom = xp.sqrt(v)
    denom += eps_hat
    step = m / denom
    step *= step_size
    p -= step


def adam_step_into(lib, p, g, m, v, vmax, b1, b2, step_size, eps_hat, buf):
    """:func:`adam_step` with every temporary written into ``buf`` (NumPy and CuPy take ``out=``).

    The same operations in the same order, so the same bits (tests/test_optim.py); on the large
    weight matrices Adam is bound by memory traffic, and one scratch array that stays in cache,
    instead of four fresh ones per parameter, makes it about a third faster.
    """
    m *= b1
    lib.multiply(g, 1.0 - b1, out=buf)
    m += buf
    v *= b2
    lib.multiply(g, g, out=buf)
    buf *= 1.0 - b2
    v += buf
    if vmax is not None:
        lib.maximum(vmax, v, out=vmax)
        v = vmax
    lib.sqrt(v, out=buf)
    buf += eps_hat
    lib.divide(m, buf, out=buf)
    buf *= step_size
    p -= buf


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p <- p (1 - lr wd) before the
    Adam step, instead of adding wd p to the gradient.  Default weight_decay 1e-2, as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
