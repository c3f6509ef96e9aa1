"""The engine's gradients of a whole VAE loss equal the hand-derived ones of the reference step
in benchmarks/reference_steps.py (written without the engine), and the loss matches PyTorch's
where torch is installed."""

import sys
from pathlib import Path

import numpy as np
import pytest

import scratchvae as sv
import scratchvae.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_steps import TorchVAEStep, init_params, numpy_loss_and_grads  # noqa: E402

SIZES = (30, 16, 4)  # small stand-in for 784-400-20: same graph, fast test


def engine_loss(params, x, eps):
    W1, b1, W21, b21, W22, b22, W3, b3, W4, b4 = params
    h1 = F.relu(x @ W1 + b1)
    mu, logvar = h1 @ W21 + b21, h1 @ W22 + b22
    z = mu + F.exp(0.5 * logvar) * eps
    logits = F.relu(z @ W3 + b3) @ W4 + b4
    rec = F.sum(x * logits - F.softplus(logits))
    kl = 0.5 * F.sum(mu * mu + F.exp(logvar) - 1.0 - logvar)
    return kl - rec


def test_engine_gradients_equal_hand_derived(bk):
    rng = np.random.default_rng(0)
    host = init_params(rng, np.float64, SIZES)
    x_np = (rng.random((8, SIZES[0])) < 0.4).astype(np.float64)
    eps_np = rng.standard_normal((8, SIZES[2]))
    params = [bk.tensor(p, requires_grad=True) for p in host]
    loss = engine_loss(params, bk.tensor(x_np), bk.tensor(eps_np))
    loss.backward()
    ref_loss, ref_grads = numpy_loss_and_grads(host, x_np, eps_np)
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=1e-12)
    for p, g in zip(params, ref_grads):
        np.testing.assert_allclose(bk.numpy(p.grad), g, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not TorchVAEStep.available(), reason="PyTorch not installed (optional cross-check)")
def test_loss_matches_pytorch():
    import torch

    rng = np.random.default_rng(1)
    host = init_params(rng, np.float64, SIZES)
    x_np = (rng.random((8, SIZES[0])) < 0.4).astype(np.float64)
    eps_np = rng.standard_normal((8, SIZES[2]))
    ref = TorchVAEStep(host)
    torch_loss = ref.loss(torch.as_tensor(x_np), torch.as_tensor(eps_np))
    torch_loss.backward()
    params = [sv.tensor(p, requires_grad=True) for p in host]
    loss = engine_loss(params, sv.tensor(x_np), sv.tensor(eps_np))
    loss.backward()
    np.testing.assert_allclose(loss.item(), torch_loss.item(), rtol=1e-12)
    for p, t in zip(params, ref.params):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-9, atol=1e-12)
