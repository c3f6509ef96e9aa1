"""Adam's update without fresh temporaries: the fast version of ``scratchvae.optim.adam.adam_step``.

On NumPy (and CuPy with AMSGrad) every temporary goes into one scratch array through ``out=``;
on CuPy without AMSGrad the whole update is one kernel (Chainer's form).  The same operations in
the same order as the core's ``adam_step``, so the same bits (tests/test_fast.py).
"""

from __future__ import annotations

import numpy as np

from ..backend import namespace
from ..optim.adam import adam_step as reference_adam_step
from . import cupy_kernels

__all__ = ["adam_step", "adam_step_into"]

# One scratch buffer per (array type, dtype), as large as the largest parameter so far.  Each
# update uses it only while it runs, so every optimizer of the process can share it.
scratch_buffers: dict = {}


def scratch(a):
    """A scratch array shaped like ``a``: a view into the shared buffer of its library and dtype."""
    key = (type(a), a.dtype)
    buf = scratch_buffers.get(key)
    if buf is None or buf.size < a.size:
        buf = scratch_buffers[key] = namespace(a).empty(a.size, dtype=a.dtype)
    return buf[:a.size].reshape(a.shape)


def adam_step(xp, p, g, m, v, vmax, b1, b2, step_size, eps_hat):
    """The core's adam_step, on NumPy and CuPy without a fresh temporary (one kernel on CuPy)."""
    if type(p) is np.ndarray:
        adam_step_into(np, p, g, m, v, vmax, b1, b2, step_size, eps_hat, scratch(p))
    elif cupy_kernels.is_cupy(p) and vmax is None:
        cupy_kernels.adam_step(p, g, m, v, b1, b2, step_size, eps_hat)
    elif cupy_kernels.is_cupy(p):
        adam_step_into(cupy_kernels.cupy_module(), p, g, m, v, vmax, b1, b2, step_size, eps_hat, scratch(p))
    else:
        reference_adam_step.reference(xp, p, g, m, v, vmax, b1, b2, step_size, eps_hat)


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
