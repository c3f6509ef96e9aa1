"""Exact targets for the estimator assertions, from the tractable models (re-exported by
``scratchvae.testing``).

Thin wrappers over what ``LinearGaussian``, ``NormalNormal`` and ``GaussianMixture`` already
compute in closed form (nothing is restated here), returned as float64 NumPy arrays (one value per
example) ready to be the ``exact`` of ``assert_unbiased`` and its siblings:

* ``exact_elbo(model, x, q)``: ELBO(x, q) for any q the model's closed form takes -- a Gaussian
  q over the latents for ``LinearGaussian`` (``Independent(Normal, 1)`` or ``MultivariateNormal``)
  and ``NormalNormal`` (``Normal``); a ``Categorical`` over the components for ``GaussianMixture``,
  whose latent is discrete;
* ``exact_log_marginal(model, x)``: log p(x), the limit of IWAE_k as k grows and an upper bound
  on every ELBO;
* ``exact_iwae(model, x, q, k=1)``: E[IWAE_1] = ELBO(x, q); other k have no closed form (the
  helper says so), test those with ``assert_monotone_in_k`` and ``assert_lower_bound``;
* ``exact_elbo_gradient(model, x, make_q, params)``: d sum_b ELBO(x_b, q_b) / d params, computed by
  the engine's reverse-mode autograd on the *closed-form* ELBO (no sampling anywhere); for
  ``NormalNormal`` with q = N(m, sigma^2) it agrees with the hand-derived
  ``NormalNormal.elbo_gradients`` (tests/test_testing_kit.py checks it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["exact_elbo", "exact_elbo_gradient", "exact_iwae", "exact_log_marginal"]


def _host(t) -> np.ndarray:
    from .backend import to_numpy

    return np.asarray(to_numpy(t), dtype=np.float64)


def _needs(model, *names):
    missing = [n for n in names if not callable(getattr(model, n, None))]
    if missing:
        raise TypeError(
            f"{type(model).__name__} has no {', '.join(missing)}: exact targets need a tractable model "
            "(scratchvae.models.LinearGaussian, NormalNormal or GaussianMixture, or one with the same methods)"
        )


def exact_elbo(model, x, q) -> np.ndarray:
    """ELBO(x, q) in closed form, shape (B,): ``model.elbo(x, q)`` read back as float64."""
    _needs(model, "elbo")
    return _host(model.elbo(x, q))


def exact_log_marginal(model, x) -> np.ndarray:
    """log p(x), shape (B,): ``model.log_marginal(x)`` read back as float64."""
    _needs(model, "log_marginal")
    return _host(model.log_marginal(x))


def exact_iwae(model, x, q, k: int = 1) -> np.ndarray:
    """E[IWAE_k] where it has a closed form: k = 1, where it is the ELBO (one importance weight:
    E log w = E_q[log p(x, z) - log q(z)]).  Shape (B,)."""
    if int(k) != 1:
        raise ValueError(
            f"exact_iwae: E[IWAE_k] has no closed form for k={k} (only k=1, the ELBO); check larger k with "
            "assert_monotone_in_k(..., exact=exact_log_marginal(model, x)) instead"
        )
    return exact_elbo(model, x, q)


def exact_elbo_gradient(model, x, make_q, params) -> tuple:
    """The gradient of sum over the batch of ELBO(x, make_q(*params)) with respect to each of
    ``params``, by the engine's autograd on the closed-form ``model.elbo`` (exact: no sampling).

    ``params``: numbers or arrays (host or backend), copied to leaf Tensors on the model's backend
    and dtype; ``make_q(*leaves)`` builds q from them (e.g. ``lambda m, s: Normal(m, s)``).  Each
    example's ELBO depends only on its own q, so the gradient of the sum holds every example's
    gradient.  Returns a tuple of float64 NumPy arrays shaped like ``params``.  The model's own
    parameter gradients are left as they were.
    """
    from . import functional as F
    from .autograd import Tensor, as_tensor

    _needs(model, "elbo")
    model_params = list(model.parameters()) if callable(getattr(model, "parameters", None)) else []
    like = model_params[0] if model_params else None
    leaves = [Tensor(as_tensor(p.detach() if isinstance(p, Tensor) else p, like).data, requires_grad=True)
              for p in params]
    saved = [(p, p.grad) for p in model_params]
    try:
        total = F.sum(model.elbo(x, make_q(*leaves)))
        total.backward()
    finally:
        for p, g in saved:
            p.grad = g
    return tuple(np.zeros(tuple(t.shape)) if t.grad is None else _host(t.grad) for t in leaves)
