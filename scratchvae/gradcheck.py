"""Check the engine's gradients against central finite differences.

For an output y = fn(inputs) the check projects onto fixed random weights r, f(x) = <r, y(x)>,
so it works for outputs of any shape.  The analytic gradient is y.backward(r); the numeric one is

    d f / d x_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)      (error O(eps^2))

element by element for small inputs, and along random directions v for large ones,
(f(x + eps v) - f(x - eps v)) / (2 eps) ~ <grad f, v>.  docs/autograd.md#gradient-checking.
"""

from __future__ import annotations

import numpy as np

from .autograd.tensor import Tensor, no_grad
from .backend import backend_of, dtype_name

__all__ = ["gradcheck"]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, max_elementwise=256, n_directions=6, seed=0):
    """Assert that ``fn``'s engine gradients match central differences; return True.

    ``inputs``: a sequence of float64 Tensors; those with ``requires_grad=True`` are checked.
    An input of at most ``max_elementwise`` elements is checked element by element, a larger one
    along ``n_directions`` random directions.  A mismatch raises AssertionError naming the input,
    the worst element (or direction), and its analytic and numeric values.
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if dtype_name(inputs[i].dtype) != "float64":
            raise ValueError(
                f"gradcheck: input {i} is {dtype_name(inputs[i].dtype)}; finite differences need float64 "
                "(in float32 the rounding error of f(x +- eps) swamps the derivative) -- use "
                "x.astype('float64') or scratchvae.set_default_dtype('float64')"
            )

    rng = np.random.default_rng(seed)
    y = fn(*inputs)
    if not isinstance(y, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(y).__name__}")
    backend = backend_of(y.data)
    r_host = rng.standard_normal(y.shape)
    r = backend.from_numpy(r_host.astype(dtype_name(y.dtype)))

    saved_grads = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    try:
        y.backward(r)
        analytic = {}
        for i in checked:
            g = inputs[i].grad
            analytic[i] = np.zeros(inputs[i].shape) if g is None else backend_of(g).to_numpy(g).astype(np.float64)
    finally:
        for i, g in zip(checked, saved_grads):
            inputs[i].grad = g

    def f(i, x_host):
        args = list(inputs)
        args[i] = Tensor.__new__(Tensor)
        args[i].data, args[i].grad, args[i].requires_grad, args[i]._ctx = (
            backend_of(inputs[i].data).from_numpy(x_host), None, False, None)
        with no_grad():
            out = fn(*args)
        return float(np.sum(backend_of(out.data).to_numpy(out.data) * r_host))

    for i in checked:
        x0 = inputs[i].numpy().astype(np.float64)
        g = analytic[i]
        if x0.size <= max_elementwise:
            numeric = np.empty_like(x0)
            flat = numeric.reshape(-1)
            for k in range(x0.size):
                xp_, xm_ = x0.copy(), x0.copy()
                xp_.reshape(-1)[k] += eps
                xm_.reshape(-1)[k] -= eps
                flat[k] = (f(i, xp_) - f(i, xm_)) / (2 * eps)
            excess = np.abs(g - numeric) - (atol + rtol * np.abs(numeric))
            if not np.all(np.isfinite(g)) or np.any(excess > 0):
                bad = np.where(np.isfinite(g), excess, np.inf)
                k = tuple(int(j) for j in np.unravel_index(int(np.argmax(bad)), x0.shape)) if x0.ndim else ()
                raise AssertionError(
                    f"gradcheck: the gradient of input {i} (shape {x0.shape}) is wrong at element {k}: "
                    f"analytic {float(g[k])!r}, numeric {float(numeric[k])!r} "
                    f"(|difference| {abs(g[k] - numeric[k]):.3g} "
                    f"> atol + rtol * |numeric| = {atol + rtol * abs(numeric[k]):.3g})"
                )
        else:
            for d in range(n_directions):
                v = rng.standard_normal(x0.shape)
                numeric = (f(i, x0 + eps * v) - f(i, x0 - eps * v)) / (2 * eps)
                exact = float(np.sum(g * v))
                if not np.isfinite(exact) or abs(exact - numeric) > atol * np.sqrt(x0.size) + rtol * abs(numeric):
                    raise AssertionError(
                        f"gradcheck: the gradient of input {i} (shape {x0.shape}) is wrong along random direction "
                        f"{d}: analytic directional derivative {exact!r}, numeric {float(numeric)!r} "
                        f"(|difference| {abs(exact - numeric):.3g})"
                    )
    return True
