"""Fused ops: the hot elementwise chains of a VAE step as single graph nodes.

Each replaces a composite of the core (scratchvae/autograd/ops/composites.py) with one node that
saves only what its backward needs, and on CuPy runs as one kernel (cupy_kernels.py).  Each equals
the composite it is registered against (tests/test_fast.py).
"""

from __future__ import annotations

from ..autograd.ops.common import constant
from ..autograd.tensor import Function, Tensor, sum_to
from ..backend import namespace
from . import cupy_kernels
from .elementwise import exp_neg_abs, log1p_small, sigmoid_from


class BernoulliLogProb(Function):
    """y = x l - softplus(l) = (x l - max(l, 0)) - log1p(e^-|l|) = log Bernoulli(x | logits l);
    dy/dl = x - sigmoid(l), dy/dx = l.  The second form is the one computed: it does not cancel.

    The widest elementwise chain of a VAE step (batch x pixels).  The forward makes sigmoid(l)
    from the same e^-|l| as the softplus (one exponential in all), and the backward needs only
    that and x.  docs/elbo.md#the-bernoulli-likelihood.
    """

    def forward(self, x, logits):
        if cupy_kernels.is_cupy(logits):
            # One kernel each way; the backward's kernel recomputes the sigmoid from the logits.
            self.saved = (x, logits)
            return cupy_kernels.bernoulli_log_prob(x, logits)
        xp = namespace(logits)
        e, u = exp_neg_abs(xp, logits)
        s = sigmoid_from(xp, logits, e, u) if self.needs[1] else None
        self.saved = (x, logits if self.needs[0] else None, s)
        # Not x l - softplus(l): at x = 1, l = 20 that rounds -2e-9 to 0 in float32.  Grouped this
        # way the large terms cancel exactly first and the small log1p(e) survives.
        return (x * logits - xp.maximum(logits, 0.0)) - log1p_small(xp, e, u)

    def backward(self, gy):
        if cupy_kernels.is_cupy(gy):
            x, logits = self.saved
            gl = cupy_kernels.bernoulli_log_prob_grad(gy, x, logits) if self.needs[1] else None
        else:
            x, logits, s = self.saved
            gl = None
            if self.needs[1]:
                gl = x - s  # a fresh array of the output's shape: scaled in place
                gl *= gy
        return (sum_to(gy * logits, x.shape) if self.needs[0] else None,
                None if gl is None else sum_to(gl, self.inputs[1].shape))


class NormalKLStandard(Function):
    """y = KL(N(m, e^{2t}) || N(0, 1)) = (m^2 + expm1(2t) - 2t) / 2 per element, with t = log sigma;
    dy/dm = m, dy/dt = expm1(2t).  docs/elbo.md#two-diagonal-gaussians-step-by-step."""

    def forward(self, m, t):
        if cupy_kernels.is_cupy(m):
            y, e2 = cupy_kernels.normal_kl_standard(m, t)
        else:
            xp = namespace(m)
            e2 = xp.expm1(2.0 * t)
            y = 0.5 * (m * m + e2 - 2.0 * t)
        self.saved = (m, e2)
        return y

    def backward(self, gy):
        m, e2 = self.saved
        return (sum_to(gy * m, m.shape) if self.needs[0] else None,
                sum_to(gy * e2, e2.shape) if self.needs[1] else None)


class Reparameterize(Function):
    """z = loc + e^t eps with t = log sigma and eps a constant draw;  dz/dloc = 1, dz/dt = e^t eps.

    The reparameterization trick as one node (docs/elbo.md#reparameterization)."""

    def forward(self, loc, t, eps):
        if cupy_kernels.is_cupy(loc):
            z, se = cupy_kernels.reparameterize(loc, t, eps)
        else:
            se = namespace(t).exp(t) * eps
            z = loc + se
        self.saved = (loc.shape, se)
        return z

    def backward(self, gy):
        loc_shape, se = self.saved
        return (sum_to(gy, loc_shape) if self.needs[0] else None,
                sum_to(gy * se, self.inputs[1].data.shape) if self.needs[1] else None,
                None)


def bernoulli_log_prob(x, logits) -> Tensor:
    """log Bernoulli(x | logits) = x l - softplus(l), elementwise (stable for any finite l)."""
    return BernoulliLogProb()(constant(x, logits), logits)


def normal_kl_standard(loc, log_scale) -> Tensor:
    """KL(N(loc, exp(log_scale)^2) || N(0, 1)) per element, as one op."""
    return NormalKLStandard()(loc, constant(log_scale, loc))


def reparameterize(loc, log_scale, eps) -> Tensor:
    """loc + exp(log_scale) * eps as one op (eps: a constant array or tensor of noise)."""
    return Reparameterize()(loc, constant(log_scale, loc), constant(eps, loc))
