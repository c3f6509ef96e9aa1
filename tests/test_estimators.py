"""The gradient estimators on the linear-Gaussian model, whose ELBO and posterior are exact:
unbiasedness (a z-test with a stated false-alarm rate, scratchvae.testing), zero variance at the
exact posterior for STL and DReG, and the encoder's signal-to-noise ratio against k."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.distributions import MultivariateNormal
from scratchvae.estimators import elbo_objective, iwae_objective
from scratchvae.models import LinearGaussian
from scratchvae.testing import assert_gradient_unbiased

pytestmark = pytest.mark.usefixtures("float64")


def _model():
    rng = np.random.default_rng(0)
    return LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5) * 0.3, noise_var=0.5), rng.normal(size=(3, 5))


def _encoder(model, x, shift=0.0):
    """q(z|x) = N(loc, L L^T) with leaf parameters: the exact posterior, shifted by ``shift``."""
    post = model.posterior(sv.tensor(x))
    loc = sv.tensor(post.loc.numpy() + shift, requires_grad=True)
    L = sv.tensor(post.scale_tril.numpy() * (1.0 + shift), requires_grad=True)
    return loc, L, (lambda xx: MultivariateNormal(loc, scale_tril=L))


def _grads(objective, params, seed):
    for p in params:
        p.grad = None
    (-objective(sv.Generator(seed)).sum()).backward()
    return tuple(p.grad.copy() for p in params)


@pytest.mark.parametrize("estimator, k", [("stl", 1), ("stl", 4), ("dreg", 1), ("dreg", 4)])
def test_encoder_gradient_is_exactly_zero_at_the_exact_posterior(estimator, k):
    model, x = _model()
    loc, L, encode = _encoder(model, x)
    for seed in range(5):
        if k == 1 and estimator == "stl":
            g = _grads(lambda gen: elbo_objective(x, encode, model.decode, model.prior(), 1, "stl", gen), [loc, L], seed)
        else:
            g = _grads(lambda gen: iwae_objective(x, encode, model.decode, model.prior(), k, estimator, gen),
                       [loc, L], seed)
        assert max(np.abs(a).max() for a in g) < 1e-9, (estimator, k, g)
    g = _grads(lambda gen: iwae_objective(x, encode, model.decode, model.prior(), k, "pathwise", gen), [loc, L], 0)
    assert max(np.abs(a).max() for a in g) > 1e-3  # the pathwise estimator is not: its score term remains


@pytest.mark.parametrize("estimator", ["pathwise", "stl"])
def test_elbo_estimators_are_unbiased_for_the_exact_elbo_gradient(estimator):
    model, x = _model()
    loc, L, encode = _encoder(model, x, shift=0.4)
    (-model.elbo(sv.tensor(x), encode(x)).sum()).backward()  # the closed form, differentiated
    exact = (loc.grad.copy(), np.tril(L.grad))
    seeds = iter(range(10**6))
    assert_gradient_unbiased(
        lambda: _grads(lambda gen: elbo_objective(x, encode, model.decode, model.prior(), 1, estimator, gen),
                       [loc, L], next(seeds)),
        exact, n_initial=400, n_max=3200, atol=1e-10)


def test_a_biased_estimator_is_caught():
    model, x = _model()
    loc, L, encode = _encoder(model, x, shift=0.4)
    (-model.elbo(sv.tensor(x), encode(x)).sum()).backward()
    exact = (loc.grad.copy(), np.tril(L.grad))
    seeds = iter(range(10**6))
    with pytest.raises(AssertionError, match="assert_gradient_unbiased"):
        assert_gradient_unbiased(  # IWAE_4's gradient is not the ELBO's
            lambda: _grads(lambda gen: iwae_objective(x, encode, model.decode, model.prior(), 4, "pathwise", gen),
                           [loc, L], next(seeds)),
            exact, n_initial=400, n_max=3200)


def test_dreg_is_unbiased_for_the_iwae_gradient_and_equals_pathwise_on_the_decoder():
    model, x = _model()
    loc, L, encode = _encoder(model, x, shift=0.4)
    params = [loc, L, model.weight, model.bias, model.log_noise_var]

    def both(seed):
        def draw(est):
            return _grads(lambda gen: iwae_objective(x, encode, model.decode, model.prior(), 4, est, gen), params, seed)
        return draw("dreg"), draw("pathwise")

    g_d, g_p = both(0)
    for a, b in zip(g_d[2:], g_p[2:]):  # the same z: the decoder's gradients are the same per sample
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    values = [iwae_objective(x, encode, model.decode, model.prior(), 4, est, sv.Generator(3)).numpy()
              for est in ("pathwise", "stl", "dreg")]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-12)  # the value is the bound, whatever the gradient
    np.testing.assert_allclose(values[2], values[0], rtol=1e-12)
    seeds = iter(range(10**6))

    def difference():  # dreg - pathwise on the same noise: mean 0 if both are unbiased for one gradient
        d, p = both(next(seeds))
        return (d[0] - p[0], np.tril(d[1] - p[1]))

    assert_gradient_unbiased(difference, (np.zeros_like(loc.data), np.zeros_like(L.data)),
                             n_initial=400, n_max=3200, atol=1e-10)


def _snr(estimator, k, n=150):
    model, x = _model()
    loc, L, encode = _encoder(model, x, shift=0.3)
    g = np.array([_grads(lambda gen: iwae_objective(x, encode, model.decode, model.prior(), k, estimator, gen),
                         [loc], seed)[0].ravel() for seed in range(n)])
    return float(np.mean(np.abs(g.mean(axis=0)) / g.std(axis=0)))


def test_encoder_signal_to_noise_falls_with_k_for_pathwise_and_not_for_dreg():
    """Rainforth et al. (2018): the IWAE encoder gradient's SNR shrinks like 1/sqrt(k) for the pathwise
    estimator; DReG's does not shrink (fixed seeds: a deterministic check)."""
    path = [_snr("pathwise", k) for k in (1, 64)]
    dreg = [_snr("dreg", k) for k in (1, 64)]
    assert path[1] < 0.5 * path[0], path
    assert dreg[1] > 0.8 * dreg[0], dreg
    assert dreg[1] > 2.0 * path[1], (dreg, path)


def test_vae_iwae_objective_is_the_iwae_bound_and_trains(bk):
    from scratchvae.models import VAE

    sv.manual_seed(0)
    model = VAE.mlp(12, (8,), 2, generator=sv.Generator(0))
    x = (np.random.default_rng(0).random((6, 12)) < 0.5).astype(np.float32)
    bound = model.iwae_bound(bk.tensor(x), 5, generator=sv.Generator(1))
    for est in ("pathwise", "stl", "dreg"):
        obj = model.iwae_objective(bk.tensor(x), 5, est, generator=sv.Generator(1))
        np.testing.assert_allclose(bk.numpy(obj), bk.numpy(bound), rtol=1e-5)
        model.zero_grad()
        (-obj.mean()).backward()
        assert all(p.grad is not None and np.isfinite(bk.numpy(p.grad)).all() for p in model.parameters())
