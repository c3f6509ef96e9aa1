"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (PyTorch's
equations; docs/nn.md#sgd)."""

from __future__ import annotations

from ..backend import namespace
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """With g_t the gradient plus weight decay, g_t = grad + wd p_{t-1}:

    b_1 = g_1,  b_t = mu b_{t-1} + (1 - dampening) g_t;   d_t = g_t + mu b_t (nesterov) or b_t;
    p_t = p_{t-1} - lr d_t.   Without momentum (mu = 0): p_t = p_{t-1} - lr g_t.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, g):
        super()._validate(g)
        if not g["momentum"] >= 0.0:
            raise ValueError(f"SGD: momentum must be >= 0, got {g['momentum']}")
        if not g["weight_decay"] >= 0.0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {g['weight_decay']}")
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={g['momentum']}, dampening={g['dampening']}")

    def _update(self, p, grad, state, group):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd != 0:
            grad = grad + wd * p.data  # a new array: p.grad itself is never written
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # A copy: later steps update the buffer in place, and grad may be shared or read-only.
                buf = state["momentum_buffer"] = namespace(grad).asarray(grad, copy=True)
            else:
                buf *= mu
                buf += (1.0 - group["dampening"]) * grad
            grad = grad + mu * buf if group["nesterov"] else buf
        p.data -= lr * grad
