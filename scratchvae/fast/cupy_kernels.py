"""Single-kernel CuPy versions of the fused ops' elementwise chains.

On a GPU a small batch is launch-bound: x l - softplus(l) as separate array calls is five kernel
launches and five trips through memory; here it is one.  Each kernel computes exactly the formula
of the op it serves (scratchvae/autograd/ops/fused.py), and tests/test_fused.py compares the two
where a GPU is present.  Imported only when an op sees a CuPy array.
"""

from __future__ import annotations

import functools


def is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def cupy_module():
    import cupy

    return cupy


# CUDA's C++ math overloads (exp, log1p, expm1, fabs, fmax, fmin, sqrt) serve float and double alike.
_SOFTPLUS = "(fmax(l, (T)0) + log1p(exp(-fabs(l))))"
_SIGMOID = "(exp(fmin(l, (T)0)) / ((T)1 + exp(-fabs(l))))"

#: name -> (input parameters, output parameters, loop body) of each ElementwiseKernel.  Plain
#: strings, so tests/test_fused.py can compile them with nvcc on a machine without a GPU.
KERNELS = {
    # (x l - max(l, 0)) - log1p(e^-|l|), not x l - softplus(l), which cancels (fused.py).
    "bernoulli_log_prob": ("T x, T l", "T y", "y = (x * l - fmax(l, (T)0)) - log1p(exp(-fabs(l)))"),
    "bernoulli_log_prob_grad": ("T gy, T x, T l", "T gl", f"gl = gy * (x - {_SIGMOID})"),
    "softplus": ("T l", "T y", f"y = {_SOFTPLUS}"),
    "sigmoid": ("T l", "T y", f"y = {_SIGMOID}"),
    "normal_kl_standard": ("T m, T t", "T y, T e2", "e2 = expm1((T)2 * t); y = (T)0.5 * (m * m + e2 - (T)2 * t)"),
    "reparameterize": ("T loc, T t, T eps", "T z, T se", "se = exp(t) * eps; z = loc + se"),
    # Linear + activation (scratchvae.nn.linear): the bias add and the activation in place on the
    # product x W, and the activation's derivative read off the output.
    "bias_relu": ("T b", "T y", "T s = y + b; y = s < (T)0 ? (T)0 : s"),  # NaN passes, as in max()
    "bias_tanh": ("T b", "T y", "y = tanh(y + b)"),
    "relu_grad": ("T gy, T y", "T g", "g = y > (T)0 ? gy : (T)0"),
    "tanh_grad": ("T gy, T y", "T g", "g = gy * ((T)1 - y * y)"),
    # Adam's update (scratchvae.optim.adam.adam_step) for one parameter: p, m and v are read and
    # written in place, one launch instead of twelve (Chainer's Adam kernel has this form).
    "adam_step": ("T g, T b1, T b2, T step_size, T eps_hat", "T p, T m, T v",
                  ("m = b1 * m + ((T)1 - b1) * g; v = b2 * v + ((T)1 - b2) * (g * g); "
                   "p -= step_size * (m / (sqrt(v) + eps_hat))")),
}


@functools.lru_cache(maxsize=None)
def _kernel(name):
    import cupy

    params_in, params_out, body = KERNELS[name]
    return cupy.ElementwiseKernel(params_in, params_out, body, f"scratchvae_{name}")


def bernoulli_log_prob(x, l):
    return _kernel("bernoulli_log_prob")(x, l)


def bernoulli_log_prob_grad(gy, x, l):
    return _kernel("bernoulli_log_prob_grad")(gy, x, l)


def softplus(l):
    return _kernel("softplus")(l)


def sigmoid(l):
    return _kernel("sigmoid")(l)


def normal_kl_standard(m, t):
    """Returns (kl, expm1(2 t)); the second is what the backward needs."""
    return _kernel("normal_kl_standard")(m, t)


def reparameterize(loc, t, eps):
    """Returns (z, exp(t) eps)."""
    return _kernel("reparameterize")(loc, t, eps)


def adam_step(p, g, m, v, b1, b2, step_size, eps_hat):
    """Adam's update of ``p``, ``m``, ``v`` in place; the scalars go in the arrays' dtype."""
    t = p.dtype.type
    _kernel("adam_step")(g, t(b1), t(b2), t(step_size), t(eps_hat), p, m, v)


def bias_activation(y, b, activation):
    """y = act(y + b) in place (act "relu" or "tanh"); b broadcasts over y's rows."""
    _kernel(f"bias_{activation}")(b, y)
    return y


def activation_grad(gy, y, activation):
    """gy * act'(y) with act' read off the output y."""
    return _kernel(f"{activation}_grad")(gy, y)
