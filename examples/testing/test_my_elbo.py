"""Testing my own ELBO code with scratchvae.testing -- written from docs/testing.md alone.

My ELBO code is plain NumPy for a factor-analysis model z ~ N(0, I), x | z ~ N(W z + b, diag(psi))
with a diagonal Gaussian q = N(m, diag(s^2)).  scratchvae's LinearGaussian is the same model, so
it supplies the exact targets; the statistical assertions decide whether my estimators hit them.

Run it with ``pytest examples/testing/test_my_elbo.py``.
"""

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.distributions import Independent, Normal
from scratchvae.models import LinearGaussian
from scratchvae.testing import (
    assert_lower_bound,
    assert_monotone_in_k,
    assert_unbiased,
    exact_elbo,
    exact_log_marginal,
)

W = np.array([[1.0, 0.9], [0.8, 1.0], [0.5, 0.7]])
b = np.array([0.3, -0.2, 0.1])
psi = np.array([0.5, 0.4, 0.6])
x = np.array([0.5, 1.0, -0.3])
m = np.array([0.2, 0.4])  # q = N(m, diag(s^2)), deliberately not the posterior
s = np.array([0.6, 0.5])


# -- my code under test ------------------------------------------------------------------------------

def log_lik(x, z, half=0.5):
    """log N(x; W z + b, diag(psi)) for a stack of latents z (..., 2)."""
    r = x - z @ W.T - b
    return -(0.5 * np.log(2 * np.pi * psi) + half * r**2 / psi).sum(-1)


def kl_to_prior(m, s, log_var=np.log):
    """KL(N(m, diag(s^2)) || N(0, I)) = sum (s^2 + m^2 - 1 - log s^2) / 2."""
    return 0.5 * (s**2 + m**2 - 1 - log_var(s**2)).sum()


def closed_form_elbo(x, m, s, trace=True):
    """E_q[log p(x|z)] - KL in closed form: the residual at the mean plus the trace term."""
    r = x - W @ m - b
    tr = ((W**2 / psi[:, None]).sum(0) * s**2).sum() if trace else 0.0
    ell = -0.5 * (np.log(2 * np.pi * psi).sum() + (r**2 / psi).sum() + tr)
    return ell - kl_to_prior(m, s)


def mc_elbo(x, m, s, n, rng, log_var=np.log):
    """n independent one-sample Monte-Carlo ELBOs (reparameterized: z = m + s eps)."""
    z = m + s * rng.standard_normal((n, len(m)))
    return log_lik(x, z) - kl_to_prior(m, s, log_var)


def iwae(x, m, s, k, n, rng, half=0.5):
    """n independent IWAE_k estimates: log (1/k) sum_i p(x, z_i) / q(z_i), z_i ~ q."""
    z = m + s * rng.standard_normal((n, k, len(m)))
    log_prior = -0.5 * (np.log(2 * np.pi) + z**2).sum(-1)
    log_q = -(0.5 * np.log(2 * np.pi * s**2) + half * ((z - m) / s) ** 2).sum(-1)
    lw = log_lik(x, z) + log_prior - log_q
    top = lw.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(lw - top).sum(axis=1, keepdims=True)))[:, 0] - np.log(k)


# -- the exact targets, from scratchvae's LinearGaussian ----------------------------------------------

model = LinearGaussian(W, b, psi, dtype="float64")
q = Independent(Normal(sv.tensor(m[None]), sv.tensor(s[None])), 1)
EXACT_ELBO = exact_elbo(model, x[None], q)[0]
LOG_PX = exact_log_marginal(model, x[None])[0]


# -- the tests ---------------------------------------------------------------------------------------

def test_closed_form_elbo():
    assert_unbiased(lambda: closed_form_elbo(x, m, s), EXACT_ELBO, n_initial=2, n_max=2)  # no variance


def test_closed_form_elbo_without_the_trace_term_is_caught():
    with pytest.raises(AssertionError, match="z = inf"):
        assert_unbiased(lambda: closed_form_elbo(x, m, s, trace=False), EXACT_ELBO, n_initial=2, n_max=2)


def test_mc_elbo_is_unbiased_and_a_lower_bound():
    rng = np.random.default_rng(0)
    assert_unbiased(lambda: mc_elbo(x, m, s, 1000, rng), EXACT_ELBO)
    assert_lower_bound(lambda: mc_elbo(x, m, s, 1000, rng), LOG_PX)


def test_mc_elbo_with_log_sigma_for_log_sigma_squared_is_caught():
    rng = np.random.default_rng(1)
    with pytest.raises(AssertionError, match="E\\[estimate\\] != exact"):
        assert_unbiased(lambda: mc_elbo(x, m, s, 1000, rng, log_var=lambda v: np.log(np.sqrt(v))), EXACT_ELBO)


def test_iwae_is_the_elbo_at_k1_and_increases_towards_log_px():
    rng = np.random.default_rng(2)
    assert_unbiased(lambda: iwae(x, m, s, 1, 1000, rng), EXACT_ELBO)
    assert_monotone_in_k(lambda k: (lambda: iwae(x, m, s, k, 1000, rng)), [1, 4, 16], exact=LOG_PX)


def test_iwae_missing_a_half_in_log_q_is_caught():
    rng = np.random.default_rng(3)
    with pytest.raises(AssertionError):
        assert_unbiased(lambda: iwae(x, m, s, 1, 1000, rng, half=1.0), EXACT_ELBO)
    with pytest.raises(AssertionError, match="exceeds exact"):
        assert_monotone_in_k(lambda k: (lambda: iwae(x, m, s, k, 1000, rng, half=1.0)), [1, 4, 16], exact=LOG_PX)
