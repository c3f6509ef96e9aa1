"""The fast layer: the same formulas as the teaching core, made fast.

Each piece here is registered against the core function it replaces (``@replaceable`` in the
core, scratchvae/autograd/fastpath.py) and tested equal to it, forward and backward, on every
backend (tests/test_fast.py):

========================================  ==============================================
core function (the reference)             fast implementation
========================================  ==============================================
``F.sigmoid``, ``F.softplus``,            one shared exponential, NumPy's log1p correction,
``F.log_sigmoid``, ``F.relu``             bool masks, a CuPy kernel (fast/elementwise.py)
``F.bernoulli_log_prob``                  one fused node, one CuPy kernel each way (fast/fused.py)
``F.normal_kl_standard``                  one fused node (fast/fused.py)
``F.reparameterize``                      one fused node (fast/fused.py)
``nn.functional.linear``                  Linear + ReLU/Tanh as one node, in place (fast/linear.py)
``nn.module.run_layers``                  a Sequential's Linear + ReLU/Tanh pairs fused (fast/linear.py)
``optim.adam.adam_step``                  one scratch array via out=, one CuPy kernel (fast/adam.py)
========================================  ==============================================

``scratchvae.fast.disabled()`` (a context manager) or ``SCRATCHVAE_FAST=0`` in the environment runs
everything on the core's compositions: the reference mode.  docs/autograd.md#the-fast-layer.
"""

from __future__ import annotations

import contextlib

from .. import functional as F
from ..autograd import fastpath
from ..nn.functional import linear as nn_linear
from ..nn.module import run_layers
from ..optim.adam import adam_step as optim_adam_step
from . import adam, elementwise, fused, linear

__all__ = ["disabled", "enabled", "is_enabled", "registered"]

fastpath.register(F.sigmoid, elementwise.sigmoid)
fastpath.register(F.softplus, elementwise.softplus)
fastpath.register(F.log_sigmoid, elementwise.log_sigmoid)
fastpath.register(F.relu, elementwise.relu)
fastpath.register(F.bernoulli_log_prob, fused.bernoulli_log_prob)
fastpath.register(F.normal_kl_standard, fused.normal_kl_standard)
fastpath.register(F.reparameterize, fused.reparameterize)
fastpath.register(nn_linear, linear.linear)
fastpath.register(run_layers, linear.run_layers)
fastpath.register(optim_adam_step, adam.adam_step)

is_enabled = fastpath.is_enabled
registered = fastpath.registered


@contextlib.contextmanager
def _switched(on: bool):
    prev = fastpath.set_enabled(on)
    try:
        yield
    finally:
        fastpath.set_enabled(prev)


def disabled():
    """Run the block on the core's reference compositions (the fast layer off), then restore."""
    return _switched(False)


def enabled():
    """Run the block with the fast layer on (the default), then restore."""
    return _switched(True)
