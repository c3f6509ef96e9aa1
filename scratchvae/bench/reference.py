"""The VAE training step written by hand in NumPy, with hand-derived gradients: no engine, no graph.

It is the practical speed limit for any NumPy autograd (the benchmark's ``hand-numpy`` backend)
and an independent check of the engine's gradients (tests/test_reference_step.py, tests/test_vae.py).

The architecture is the fully connected VAE of ``VAE.mlp``: encoder body Linear+act layers, a mean
head and a spread head, decoder Linear+act layers, Bernoulli likelihood on logits, N(0, I) prior,
analytic KL, loss summed over pixels and batch.  ``params`` follows the model's own parameter order
(``list(model.parameters())``, weights laid out (in, out)):

    [W, b] per encoder body layer, W_mu, b_mu, W_s, b_s, [W, b] per decoder layer

so with L hidden layers there are 4 L + 6 arrays (10 for ``pytorch-example``, 14 for ``iwae-paper``).
``head`` says how the spread head's output s becomes t = log sigma: "log_var" t = s / 2, "exp" t = s.

Loss = sum_n [ -sum_pixels (x l - softplus(l)) + KL(q(z|x_n) || N(0, I)) ]  (docs/elbo.md#the-elbo).
"""

from __future__ import annotations

import math

import numpy as np

from ..fast.adam import adam_step_into
from ..fast.elementwise import exp_neg_abs, log1p_small, sigmoid_from

__all__ = [
    "SIZES",
    "HandVAEStep",
    "NumpyVAEStep",
    "hand_log_likelihood",
    "hand_loss_and_grads",
    "init_params",
    "numpy_loss_and_grads",
]

SIZES = (784, 400, 20)
ACTIVATIONS = ("relu", "tanh")
HEADS = ("log_var", "exp")


def init_params(rng, dtype=np.float32, sizes=SIZES):
    """``pytorch-example`` parameters W1, b1, W21, b21, W22, b22, W3, b3, W4, b4 for sizes (d, h, k),
    with PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) initialisation."""
    d, h, k = sizes
    shapes = [(d, h), (h,), (h, k), (k,), (h, k), (k,), (k, h), (h,), (h, d), (d,)]
    fan_in = [d, d, h, h, h, h, k, k, h, h]
    return [rng.uniform(-1 / np.sqrt(f), 1 / np.sqrt(f), s).astype(dtype) for s, f in zip(shapes, fan_in)]


def _bernoulli_log_prob(x, a, want_sigmoid=True):
    """(x a - softplus(a) elementwise, sigmoid(a) or None), both from one exponential e = exp(-|a|).

    Grouped as the composite F.bernoulli_log_prob is, (x a - max(a, 0)) - log1p(e), so that small
    values do not cancel; the array pieces are the fast layer's own (scratchvae/fast/elementwise.py:
    NumPy's cheaper log1p correction, the sigmoid from the same e), so the comparison is fair.
    """
    e, u = exp_neg_abs(np, a)
    lp = (x * a - np.maximum(a, 0)) - log1p_small(np, e, u)
    return lp, (sigmoid_from(np, a, e, u) if want_sigmoid else None)


def _check(activation, head, params):
    if activation not in ACTIVATIONS:
        raise ValueError(f"hand VAE step: activation must be one of {ACTIVATIONS}, got {activation!r}")
    if head not in HEADS:
        raise ValueError(f"hand VAE step: head must be one of {HEADS}, got {head!r}")
    n = len(params)
    if n < 10 or (n - 6) % 4:
        raise ValueError(f"hand VAE step: expected 4 L + 6 parameter arrays (L >= 1 hidden layers), got {n}")
    return (n - 6) // 4


def _layers(params, n_hidden):
    """(encoder body layers, (W_mu, b_mu), (W_s, b_s), decoder layers), each layer a (W, b) pair."""
    pairs = [(params[i], params[i + 1]) for i in range(0, len(params), 2)]
    return pairs[:n_hidden], pairs[n_hidden], pairs[n_hidden + 1], pairs[n_hidden + 2:]


def _affine_act(h, W, b, activation):
    """act(h W + b), the bias and the activation applied in place to the fresh product (as the
    engine's fused Linear + activation does)."""
    a = h @ W
    a += b
    return np.maximum(a, 0, out=a) if activation == "relu" else np.tanh(a, out=a)


def _encode(params, x, activation, head):
    """Forward through the encoder: (body caches, mu, t = log sigma, n_hidden)."""
    n_hidden = _check(activation, head, params)
    body, (Wm, bm), (Ws, bs), _ = _layers(params, n_hidden)
    caches, h = [], x
    for W, b in body:
        out = _affine_act(h, W, b, activation)
        caches.append((h, out))  # both derivatives read off the output: [out > 0], 1 - out^2
        h = out
    mu = h @ Wm + bm
    s = h @ Ws + bs
    t = 0.5 * s if head == "log_var" else s
    return caches, h, mu, t, n_hidden


def _decode(dec, z, activation):
    caches, h = [], z
    for W, b in dec[:-1]:
        out = _affine_act(h, W, b, activation)
        caches.append((h, out))
        h = out
    W, b = dec[-1]
    return caches, h, h @ W + b


def _act_grad(g, saved, activation):
    return g * (saved > 0) if activation == "relu" else g * (1 - saved * saved)


def hand_loss_and_grads(params, x, eps, activation="relu", head="log_var"):
    """(loss, gradients in the order of ``params``) for the batch ``x`` with reparameterization noise ``eps``.

    Hand-derived, with t = log sigma: dL/dlogits = sigmoid(l) - x; dKL/dmu = mu;
    dKL/dt = sigma^2 - 1; z = mu + e^t eps gives dz/dmu = 1, dz/dt = e^t eps; for the "log_var"
    head t = s/2, so dL/ds = dL/dt / 2.
    """
    enc_caches, h, mu, t, n_hidden = _encode(params, x, activation, head)
    _, (Wm, _), (Ws, _), dec = _layers(params, n_hidden)
    std = np.exp(t)
    se = std * eps
    z = mu + se
    dec_caches, h_last, logits = _decode(dec, z, activation)
    var = std * std
    log_px_z, sigmoid = _bernoulli_log_prob(x, logits)
    rec = np.sum(log_px_z)
    kl = 0.5 * np.sum(mu * mu + var - 1 - 2 * t)
    loss = kl - rec

    grads = [None] * len(params)
    pos = len(params)
    g = sigmoid - x
    # decoder, last layer first
    ins = [c[0] for c in dec_caches] + [h_last]
    for i in range(len(dec) - 1, -1, -1):
        W, _ = dec[i]
        pos -= 2
        grads[pos] = ins[i].T @ g
        grads[pos + 1] = g.sum(axis=0)
        g = g @ W.T
        if i > 0:
            g = _act_grad(g, dec_caches[i - 1][1], activation)
    g_mu = g + mu
    g_t = g * se + (var - 1)
    g_s = 0.5 * g_t if head == "log_var" else g_t
    pos -= 4
    grads[pos], grads[pos + 1] = h.T @ g_mu, g_mu.sum(axis=0)
    grads[pos + 2], grads[pos + 3] = h.T @ g_s, g_s.sum(axis=0)
    g = g_mu @ Wm.T + g_s @ Ws.T
    for i in range(n_hidden - 1, -1, -1):
        h_in, saved = enc_caches[i]
        g = _act_grad(g, saved, activation)
        pos -= 2
        grads[pos] = h_in.T @ g
        grads[pos + 1] = g.sum(axis=0)
        if i > 0:
            g = g @ params[pos].T
    return loss, grads


def numpy_loss_and_grads(params, x, eps):
    """The ``pytorch-example`` step's loss and gradients (ReLU, log-variance head): see :func:`hand_loss_and_grads`."""
    return hand_loss_and_grads(params, x, eps, "relu", "log_var")


class HandVAEStep:
    """One Adam step (PyTorch's equations) on the hand-written loss, updating ``params`` in place.

    ``__call__(x, eps)`` returns the loss before the update as a Python float.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, activation="relu", head="log_var"):
        _check(activation, head, params)
        self.params = params
        self.activation, self.head = activation, head
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self._buf = np.empty(max(p.size for p in params), params[0].dtype)
        self.t = 0

    def loss_and_grads(self, x, noise):
        return hand_loss_and_grads(self.params, x, noise, self.activation, self.head)

    def __call__(self, x, noise):
        loss, grads = self.loss_and_grads(x, noise)
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        step_size, eps_hat = self.lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            # scratchvae.optim.Adam's own NumPy update, so the comparison is of the engine.
            buf = self._buf[:p.size].reshape(p.shape)
            adam_step_into(np, p, g, m, v, None, self.b1, self.b2, step_size, eps_hat, buf)
        return float(loss)


class NumpyVAEStep(HandVAEStep):
    """The ``pytorch-example`` hand step (ReLU, log-variance head); Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr, betas, eps, "relu", "log_var")


def hand_log_likelihood(params, x, k, rng, activation="relu", head="log_var", chunk=100):
    """Per-image importance-sampled log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x)
    (docs/elbo.md#log-likelihood), ``chunk`` samples at a time folded into a running logsumexp.

    log w = log p(x|z) + log p(z) - log q(z|x); with z = mu + sigma eps the Gaussian terms are
    -z^2/2 and -eps^2/2 - t per dim (the log 2 pi halves cancel).
    """
    _, _, mu, t, n_hidden = _encode(params, x, activation, head)
    dec = _layers(params, n_hidden)[3]
    b, d = mu.shape
    std = np.exp(t)
    sum_t = t.sum(axis=1)
    acc = np.full(b, -np.inf, dtype=mu.dtype)
    done = 0
    while done < k:
        c = min(chunk, k - done)
        eps = rng.standard_normal((c, b, d), dtype=mu.dtype)
        z = mu + std * eps
        logits = _decode(dec, z.reshape(c * b, d), activation)[2].reshape(c, b, -1)
        log_px_z = np.sum(_bernoulli_log_prob(x, logits, want_sigmoid=False)[0], axis=2)
        lw = log_px_z - 0.5 * np.sum(z * z, axis=2) + 0.5 * np.sum(eps * eps, axis=2) + sum_t
        m = np.maximum(acc, lw.max(axis=0))
        acc = m + np.log(np.exp(acc - m) + np.exp(lw - m).sum(axis=0))
        done += c
    return acc - math.log(k)
