"""Fast sigmoid, softplus, log-sigmoid and ReLU: the same Functions as the core's
(scratchvae/autograd/ops/elementwise.py), with one shared exponential, NumPy's cheaper log1p
correction, bool masks, and one CuPy kernel where a GPU is in use.  Registered against
``F.sigmoid``, ``F.softplus``, ``F.log_sigmoid`` and ``F.relu``; tests/test_fast.py checks each
against the core op, forward and backward."""

from __future__ import annotations

import numpy as np

from ..autograd.ops.elementwise import LogSigmoid, ReLU, Sigmoid, Softplus
from ..backend import namespace
from . import cupy_kernels


def exp_neg_abs(xp, x):
    """(e, u) = (exp(-|x|), 1 + e): what softplus, log-sigmoid and sigmoid of x are made of.

    The exponent is never positive, so nothing overflows for any finite x; e lies in (0, 1].
    """
    e = xp.exp(-xp.abs(x))
    return e, 1.0 + e


def log1p_small(xp, e, u):
    """log(1 + e) for e in [0, 1] with u = 1 + e: the term that makes softplus and log_sigmoid stable.

    NumPy's log1p is a scalar libm loop, about 5x slower than its vectorized log, and on a VAE's
    logits it is the single most expensive call of a training step.  On NumPy we therefore use
    Goldberg's correction, log(u) - ((u - 1) - e) / u: exact when u rounds to 1 (it returns e),
    within 4 ulp elsewhere (tests/test_stability.py).  Other backends have a fast log1p and use it.
    """
    if type(e) is np.ndarray:
        return xp.log(u) - ((u - 1.0) - e) / u
    return xp.log1p(e)


def sigmoid_from(xp, x, e=None, u=None):
    """1 / (1 + e^-x) from e = exp(-|x|) and u = 1 + e (computed here unless given).

    It is 1/u for x >= 0 and e/u (= e^x / (1 + e^x)) for x < 0: no exponent is ever positive.  A
    0/1 mask picks the numerator exactly (a mask product: where() is several times slower in
    NumPy), so an op that already has e and u gets the sigmoid without another exponential.
    """
    if e is None:
        e, u = exp_neg_abs(xp, x)
    neg = xp.astype(x < 0, e.dtype)
    return (e * neg + (1.0 - neg)) / u


def relu_mask(xp, y, dtype):
    """[y > 0] as a factor: exact, and several times faster than where() in NumPy, which also
    multiplies by the bool mask directly (the Array API needs it cast to the float dtype first)."""
    mask = y > 0
    return mask if type(mask) is np.ndarray else xp.astype(mask, dtype)


class FastSigmoid(Sigmoid):
    name = "sigmoid"

    def forward(self, x):
        y = cupy_kernels.sigmoid(x) if cupy_kernels.is_cupy(x) else sigmoid_from(namespace(x), x)
        self.saved = y
        return y


class FastReLU(ReLU):
    name = "relu"

    def backward(self, gy):
        return (gy * relu_mask(namespace(gy), self.saved, gy.dtype),)


class FastSoftplus(Softplus):
    """The backward's sigmoid is made in the forward from the same e^-|x| (see sigmoid_from), and it
    is all the backward keeps."""

    name = "softplus"

    def forward(self, x):
        if cupy_kernels.is_cupy(x):
            self.saved = cupy_kernels.sigmoid(x) if self.needs[0] else None
            return cupy_kernels.softplus(x)
        xp = namespace(x)
        e, u = exp_neg_abs(xp, x)
        self.saved = sigmoid_from(xp, x, e, u) if self.needs[0] else None
        return xp.maximum(x, 0.0) + log1p_small(xp, e, u)

    def backward(self, gy):
        return (gy * self.saved,)


class FastLogSigmoid(LogSigmoid):
    name = "logsigmoid"

    def forward(self, x):
        xp = namespace(x)
        e, u = exp_neg_abs(xp, x)  # |-x| = |x|: the same e and u serve sigmoid(-x)
        self.saved = sigmoid_from(xp, -x, e, u) if self.needs[0] else None
        return xp.minimum(x, 0.0) - log1p_small(xp, e, u)

    def backward(self, gy):
        return (gy * self.saved,)


def sigmoid(x):
    return FastSigmoid()(x)


def relu(x):
    return FastReLU()(x)


def softplus(x):
    return FastSoftplus()(x)


def log_sigmoid(x):
    return FastLogSigmoid()(x)
