"""Reference training steps of the `pytorch-example` VAE (784-400-20 ReLU, log-variance head,
Bernoulli decoder on logits, analytic KL, loss summed over pixels and batch, Adam).

- ``NumpyVAEStep``: written by hand in NumPy with hand-derived gradients.  No engine, no graph:
  the practical speed limit for any NumPy autograd, and an independent check of the engine's
  gradients (tests/test_reference_step.py).
- ``TorchVAEStep``: the same step in PyTorch, used only where torch is installed (never a
  dependency of the library).

Both take the same parameters and the same noise, so their losses can be compared exactly.
"""

from __future__ import annotations

import numpy as np

SIZES = (784, 400, 20)


def init_params(rng, dtype=np.float32, sizes=SIZES):
    """W1, b1, W21, b21, W22, b22, W3, b3, W4, b4 with PyTorch's default U(-1/sqrt(fan_in), .) init."""
    d, h, k = sizes
    shapes = [(d, h), (h,), (h, k), (k,), (h, k), (k,), (k, h), (h,), (h, d), (d,)]
    fan_in = [d, d, h, h, h, h, k, k, h, h]
    return [rng.uniform(-1 / np.sqrt(f), 1 / np.sqrt(f), s).astype(dtype) for s, f in zip(shapes, fan_in)]


def _softplus(a):
    # log1p(e) by Goldberg's correction log(u) - ((u - 1) - e)/u: NumPy's float32 log1p is a scalar
    # loop ~5x slower than log; the engine uses the same formula, so the comparison is fair.
    e = np.exp(-np.abs(a))
    u = 1 + e
    return np.maximum(a, 0) + (np.log(u) - ((u - 1) - e) / u)


def _sigmoid(a):
    return np.exp(np.minimum(a, 0)) / (1 + np.exp(-np.abs(a)))


def numpy_loss_and_grads(params, x, eps):
    """Loss = sum_n [ -sum_pixels (x l - softplus(l)) + KL(q(z|x_n) || N(0, I)) ] and its gradients.

    Hand-derived: dL/dl = sigmoid(l) - x; dKL/dmu = mu; dKL/dlogvar = (exp(logvar) - 1) / 2;
    z = mu + exp(logvar / 2) eps gives dz/dmu = 1, dz/dlogvar = eps exp(logvar / 2) / 2.
    """
    W1, b1, W21, b21, W22, b22, W3, b3, W4, b4 = params
    a1 = x @ W1 + b1
    h1 = np.maximum(a1, 0)
    mu = h1 @ W21 + b21
    logvar = h1 @ W22 + b22
    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    a3 = z @ W3 + b3
    h3 = np.maximum(a3, 0)
    logits = h3 @ W4 + b4
    var = std * std
    rec = np.sum(x * logits - _softplus(logits))
    kl = 0.5 * np.sum(mu * mu + var - 1 - logvar)
    loss = kl - rec

    g_logits = _sigmoid(logits) - x
    gW4 = h3.T @ g_logits
    gb4 = g_logits.sum(axis=0)
    g_a3 = (g_logits @ W4.T) * (a3 > 0)
    gW3 = z.T @ g_a3
    gb3 = g_a3.sum(axis=0)
    g_z = g_a3 @ W3.T
    g_mu = g_z + mu
    g_logvar = g_z * eps * (0.5 * std) + 0.5 * (var - 1)
    gW21 = h1.T @ g_mu
    gb21 = g_mu.sum(axis=0)
    gW22 = h1.T @ g_logvar
    gb22 = g_logvar.sum(axis=0)
    g_a1 = (g_mu @ W21.T + g_logvar @ W22.T) * (a1 > 0)
    gW1 = x.T @ g_a1
    gb1 = g_a1.sum(axis=0)
    return loss, [gW1, gb1, gW21, gb21, gW22, gb22, gW3, gb3, gW4, gb4]


class NumpyVAEStep:
    """One Adam step (lr 1e-3, betas (0.9, 0.999), eps 1e-8) on the hand-written loss, in place."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def __call__(self, x, noise):
        loss, grads = numpy_loss_and_grads(self.params, x, noise)
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * (g * g)
            denom = np.sqrt(v)
            denom += self.eps * np.sqrt(c2)
            step = m / denom
            step *= self.lr * np.sqrt(c2) / c1
            p -= step
        return float(loss)


class TorchVAEStep:
    """The same step in PyTorch (CPU or CUDA); ``available()`` says whether torch can be imported."""

    @staticmethod
    def available():
        try:
            import torch  # noqa: F401
        except ImportError:
            return False
        return True

    def __init__(self, params, device="cpu", lr=1e-3):
        import torch

        self.torch = torch
        self.device = device
        self.params = [torch.tensor(p, device=device, requires_grad=True) for p in params]
        self.opt = torch.optim.Adam(self.params, lr=lr)

    def loss(self, x, eps):
        F = self.torch.nn.functional
        W1, b1, W21, b21, W22, b22, W3, b3, W4, b4 = self.params
        h1 = F.relu(x @ W1 + b1)
        mu, logvar = h1 @ W21 + b21, h1 @ W22 + b22
        z = mu + self.torch.exp(0.5 * logvar) * eps
        logits = F.relu(z @ W3 + b3) @ W4 + b4
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * self.torch.sum(1 + logvar - mu * mu - logvar.exp())
        return rec + kl

    def to_device(self, a):
        return self.torch.as_tensor(a, device=self.device)

    def __call__(self, x, noise):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x, noise)
        loss.backward()
        self.opt.step()
        return loss
