"""STL and DReG on two stochastic layers: log q(z1|x) + log q(z2|z1) with phi detached but z1 live.

A two-layer linear-Gaussian model (one-dimensional z1 and z2) has an exact posterior that the
TwoLayerVAE's layers can represent, so log w is log p(x) for every draw: there STL's and DReG's
encoder gradients are exactly zero per sample, the pathwise one is not.  Away from it, on a small
nonlinear model, each estimator's mean gradient equals the pathwise one's (both unbiased for the
same bound), checked by the shared z-test (scratchvae.testing).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import nn
from scratchvae.models import TwoLayerVAE
from scratchvae.testing import assert_gradient_unbiased

pytestmark = pytest.mark.usefixtures("float64")

E, S1, W, W0, SIGMA = 0.8, 0.6, np.array([1.0, -0.5]), np.array([0.2, -0.1]), 0.5


def _set(m, name, value):
    p = dict(m.named_parameters())[name]
    v = np.asarray(value, dtype="float64")
    v = np.full(p.shape, float(v)) if v.ndim == 0 else v.reshape(p.shape)  # a number fills the parameter
    p.data = sv.get_backend().from_numpy(v)


def _exact_model():
    """z2 ~ N(0, 1), z1 | z2 ~ N(E z2, S1^2), x | z1 ~ N(W z1 + W0, SIGMA^2 I); q set to the posterior:
    q(z1|x) = p(z1|x) and q(z2|z1) = p(z2|z1, x) = p(z2|z1).  Returns the model and log p(x)'s function."""
    m = TwoLayerVAE.mlp(2, [], 1, [], 1, likelihood="gaussian", gaussian_scale="fixed", fixed_scale=SIGMA,
                        dtype="float64", generator=sv.Generator(0))
    v1 = E**2 + S1**2  # the marginal variance of z1
    prec = 1 / v1 + W @ W / SIGMA**2  # p(z1|x): precision, and mean W.(x - W0) / (SIGMA^2 prec)
    _set(m, "encoder.mean_head.weight", W / (SIGMA**2 * prec))
    _set(m, "encoder.mean_head.bias", -(W @ W0) / (SIGMA**2 * prec))
    _set(m, "encoder.scale_head.weight", 0.0)
    _set(m, "encoder.scale_head.bias", -0.5 * math.log(prec))
    _set(m, "encoder_z2.mean_head.weight", E / v1)  # p(z2|z1) = N(E z1 / v1, 1 - E^2 / v1)
    _set(m, "encoder_z2.mean_head.bias", 0.0)
    _set(m, "encoder_z2.scale_head.weight", 0.0)
    _set(m, "encoder_z2.scale_head.bias", 0.5 * math.log(1 - E**2 / v1))
    _set(m, "decoder_z1.mean_head.weight", E)
    _set(m, "decoder_z1.mean_head.bias", 0.0)
    _set(m, "decoder_z1.scale_head.weight", 0.0)
    _set(m, "decoder_z1.scale_head.bias", math.log(S1))
    _set(m, "decoder.0.weight", W)
    _set(m, "decoder.0.bias", W0)
    cov = v1 * np.outer(W, W) + SIGMA**2 * np.eye(2)

    def log_px(x):
        d = x - W0
        return -0.5 * (np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) + np.log(np.linalg.det(cov))
                       + 2 * math.log(2 * math.pi))

    return m, log_px


def _grads(m, fn, seed, names=None):
    """Gradients of -sum(fn(generator)) with respect to the named parameters (all when None)."""
    params = [(n, p) for n, p in m.named_parameters() if names is None or n.split(".")[0] in names]
    m.zero_grad()
    (-fn(sv.Generator(seed)).sum()).backward()
    return tuple(sv.to_numpy(p.grad).copy() for _, p in params)


X = np.random.default_rng(3).normal(size=(4, 2))
ENCODERS = ("encoder", "encoder_z2")


def test_log_w_is_log_px_for_every_draw_at_the_exact_posterior():
    m, log_px = _exact_model()
    for seed in range(3):
        lw = sv.to_numpy(m.iwae_bound(X, 1, generator=sv.Generator(seed)))
        np.testing.assert_allclose(lw, log_px(X), rtol=1e-12)  # the test's premise: q is the posterior


@pytest.mark.parametrize("objective, estimator, k", [("elbo", "stl", 1), ("elbo", "stl", 3), ("iwae", "stl", 4),
                                                     ("iwae", "dreg", 1), ("iwae", "dreg", 4)])
def test_encoder_gradients_are_exactly_zero_at_the_exact_posterior(objective, estimator, k):
    m, _ = _exact_model()
    for seed in range(4):
        g = _grads(m, lambda gen: m.training_objective(X, objective, k, estimator, generator=gen).objective, seed,
                   ENCODERS)
        assert max(np.abs(a).max() for a in g) < 1e-10, (objective, estimator, k, g)
    g = _grads(m, lambda gen: m.training_objective(X, objective, k, "pathwise", generator=gen).objective, 0,
               ENCODERS)
    assert max(np.abs(a).max() for a in g) > 1e-3  # the pathwise estimator keeps its score terms


def _nonlinear():
    m = TwoLayerVAE.mlp(6, [5], 3, [4], 2, generator=sv.Generator(0), dtype="float64")
    rng = np.random.default_rng(100)
    for name, p in m.named_parameters():
        if name.endswith("bias"):  # away from Glorot's zero biases, so nothing is symmetric by accident
            p.data = sv.get_backend().from_numpy(rng.normal(0, 0.3, p.shape))
    return m, (np.random.default_rng(1).random((3, 6)) > 0.5).astype("float64")


@pytest.mark.parametrize("objective, estimator, k", [("elbo", "stl", 2), ("iwae", "dreg", 3)])
def test_the_estimators_are_unbiased_for_the_pathwise_gradient(objective, estimator, k):
    m, x = _nonlinear()
    seeds = iter(range(10**6))

    def difference():  # estimator - pathwise on the same noise: mean 0 when both estimate one gradient
        s = next(seeds)
        a = _grads(m, lambda gen: m.training_objective(x, objective, k, estimator, generator=gen).objective, s)
        b = _grads(m, lambda gen: m.training_objective(x, objective, k, "pathwise", generator=gen).objective, s)
        return tuple(u - v for u, v in zip(a, b))

    zeros = tuple(np.zeros(p.shape) for p in m.parameters())
    assert_gradient_unbiased(difference, zeros, n_initial=300, n_max=2400, atol=1e-10)
    # and the value is the bound, whatever the gradient
    v = [sv.to_numpy(m.training_objective(x, objective, k, est, generator=sv.Generator(5)).objective)
         for est in ("pathwise", estimator)]
    np.testing.assert_allclose(v[1], v[0], rtol=1e-12)


def test_the_draw_keeps_no_stale_density_and_the_refusals_stay():
    m, x = _nonlinear()
    with pytest.raises(ValueError, match="grad_estimator"):
        m.training_objective(x, "elbo", 2, "dreg")  # DReG is for IWAE
    with pytest.raises(ValueError, match="beta"):
        m.training_objective(x, "iwae", 2, "dreg", beta=0.5)
    # the detached density at the draw equals the live one in value
    q = m.posterior(sv.tensor(x))
    z = q.rsample((2,), generator=sv.Generator(1))
    np.testing.assert_allclose(sv.to_numpy(q.with_detached_parameters().log_prob(z)), sv.to_numpy(q.log_prob(z)),
                               rtol=1e-12)


def test_functional_call_replaces_and_restores():
    lin = nn.Linear(3, 2, generator=sv.Generator(0))
    x = sv.tensor(np.ones((1, 3)))
    w = sv.tensor(np.full((3, 2), 2.0), requires_grad=True)
    y = nn.functional_call(lin, {"weight": w}, (x,))
    np.testing.assert_allclose(sv.to_numpy(y), 6.0 + sv.to_numpy(lin.bias)[None])
    y.sum().backward()
    assert lin.weight.grad is None and w.grad is not None  # the gradient reached the replacement only
    assert isinstance(lin.weight, nn.Parameter) and dict(lin.named_parameters())["weight"] is lin.weight
    with pytest.raises(KeyError, match="no parameter"):
        nn.functional_call(lin, {"wieght": w}, (x,))
    before = lin.weight
    with pytest.raises(ValueError):
        nn.functional_call(lin, {"weight": sv.tensor(np.ones((4, 2)))}, (x,))  # a shape error inside the call
    assert lin.weight is before  # restored after the error
