"""Adam and AdamW with bias correction and optional AMSGrad (PyTorch's equations;
docs/nn.md#adam)."""

from __future__ import annotations

import math

from ..autograd.fastpath import replaceable
from ..backend import namespace
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW", "adam_step"]


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
        adam_step(namespace(p.data), p.data, grad, m, v, vmax, b1, b2, step_size, eps_hat)


@replaceable
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


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p <- p (1 - lr wd) before the
    Adam step, instead of adding wd p to the gradient.  Default weight_decay 1e-2, as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
