"""PyTorch reference implementation of the benchmark's VAE step, on CPU and CUDA (optional).

The same fully connected VAE as ``VAE.mlp`` / ``scratchvae.bench.reference`` -- encoder body
Linear+act layers, mean and spread heads, decoder, Bernoulli likelihood on logits, analytic KL,
loss summed over pixels and batch, ``torch.optim.Adam`` -- written as a PyTorch user would: the
affine layers are ``torch.addmm`` (what ``nn.Linear`` runs), the likelihood is
``binary_cross_entropy_with_logits``.  It takes the library's parameters (weights laid out
(in, out), in ``model.parameters()`` order) and the same noise, so losses compare exactly.

torch is never a dependency of scratchvae: this file lives in benchmarks/ and is imported by
``benchmarks/run.py``, which calls :func:`register` to add the bench backends ``torch-cpu`` and
``torch-cuda`` when torch can be imported.
"""

from __future__ import annotations

import math

__all__ = ["TorchRunner", "TorchVAEStep", "register"]


class TorchVAEStep:
    """One Adam step of the VAE in PyTorch on ``device``; ``available()`` says whether torch imports.

    ``params``: host arrays [W, b] per encoder layer, W_mu, b_mu, W_s, b_s, [W, b] per decoder
    layer (4 L + 6 arrays for L hidden layers).  ``head``: "log_var" (t = log sigma = s / 2) or
    "exp" (t = s).  ``activation``: "relu" or "tanh".
    """

    @staticmethod
    def available():
        try:
            import torch  # noqa: F401
        except ImportError:
            return False
        return True

    def __init__(self, params, device="cpu", lr=1e-3, betas=(0.9, 0.999), eps=1e-8, activation="relu",
                 head="log_var"):
        import torch

        if activation not in ("relu", "tanh") or head not in ("log_var", "exp"):
            raise ValueError(f"TorchVAEStep: unsupported activation {activation!r} or head {head!r}")
        if len(params) < 10 or (len(params) - 6) % 4:
            raise ValueError(f"TorchVAEStep: expected 4 L + 6 parameter arrays, got {len(params)}")
        self.torch = torch
        self.device = device
        self.n_hidden = (len(params) - 6) // 4
        self.act = torch.relu if activation == "relu" else torch.tanh
        self.head = head
        self.params = [torch.tensor(p, device=device, requires_grad=True) for p in params]
        self.opt = torch.optim.Adam(self.params, lr=lr, betas=tuple(betas), eps=eps)

    def _layers(self):
        p, L = self.params, self.n_hidden
        pairs = [(p[i], p[i + 1]) for i in range(0, len(p), 2)]
        return pairs[:L], pairs[L], pairs[L + 1], pairs[L + 2:]

    def _encode(self, x):
        body, (Wm, bm), (Ws, bs), _ = self._layers()
        h = x
        for W, b in body:
            h = self.act(self.torch.addmm(b, h, W))
        mu, s = self.torch.addmm(bm, h, Wm), self.torch.addmm(bs, h, Ws)
        return mu, (0.5 * s if self.head == "log_var" else s)

    def _decode(self, z):
        dec = self._layers()[3]
        h = z
        for W, b in dec[:-1]:
            h = self.act(self.torch.addmm(b, h, W))
        W, b = dec[-1]
        return self.torch.addmm(b, h, W)

    def loss(self, x, eps):
        """sum_n [ BCE-with-logits(x_n) + KL(N(mu, e^{2t}) || N(0, I)) ] (t = log sigma)."""
        torch = self.torch
        mu, t = self._encode(x)
        z = mu + torch.exp(t) * eps
        logits = self._decode(z)
        rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(mu * mu + torch.exp(2 * t) - 1 - 2 * t)
        return rec + kl

    def to_device(self, a):
        return self.torch.as_tensor(a, device=self.device)

    def __call__(self, x, noise):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x, noise)
        loss.backward()
        self.opt.step()
        return loss

    def log_likelihood(self, x, k, seed=0, chunk=100, images_per_call=None):
        """Per-image log (1/k) sum_i p(x, z_i) / q(z_i|x) with z_i ~ q(z|x), ``chunk`` samples at a time
        (a running logsumexp), as ``scratchvae.evaluate`` does; ``x`` a torch tensor on the device."""
        torch = self.torch
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        per_call = images_per_call or max(1, (1000 if self.device == "cpu" else 50_000) // chunk)
        out = []
        with torch.no_grad():
            for a in range(0, x.shape[0], per_call):
                xb = x[a:a + per_call]
                mu, t = self._encode(xb)
                std, sum_t = torch.exp(t), t.sum(dim=1)
                acc = torch.full((xb.shape[0],), -math.inf, dtype=mu.dtype, device=mu.device)
                done = 0
                while done < k:
                    c = min(chunk, k - done)
                    eps = torch.randn((c,) + tuple(mu.shape), generator=gen, dtype=mu.dtype, device=mu.device)
                    z = mu + std * eps
                    logits = self._decode(z.reshape(-1, z.shape[-1])).reshape(c, xb.shape[0], -1)
                    log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, xb.expand_as(logits), reduction="none").sum(dim=2)
                    lw = log_px_z - 0.5 * (z * z).sum(dim=2) + 0.5 * (eps * eps).sum(dim=2) + sum_t
                    acc = torch.logaddexp(acc, torch.logsumexp(lw, dim=0))
                    done += c
                out.append(acc - math.log(k))
        return torch.cat(out)


class TorchRunner:
    """A ``scratchvae.bench`` runner around :class:`TorchVAEStep` (see scratchvae/bench/backends.py)."""

    def __init__(self, problem, host_params, device="cpu"):
        import torch

        self.torch = torch
        a = problem.arch
        self.name = "torch-cpu" if device == "cpu" else "torch-cuda"
        self.device = "cpu" if device == "cpu" else "gpu"
        self.torch_device = device
        self.dtype = getattr(torch, problem.dtype)
        self.ref = TorchVAEStep(host_params, device, a.lr, a.betas, a.adam_eps, a.activation, a.head)

    def activate(self):
        pass

    def put(self, a):
        return self.torch.as_tensor(a, device=self.torch_device, dtype=self.dtype)

    def step(self, x, eps):
        self.ref(x, eps)

    def sync(self):
        if self.torch_device != "cpu":
            self.torch.cuda.synchronize()

    def log_likelihood(self, x_host, k, seed=0):
        return float(self.ref.log_likelihood(self.put(x_host), k, seed).double().mean().cpu())

    def measure_memory(self, step):
        """torch.cuda's allocator peak during one step (after two steps have built Adam's state)."""
        cuda = self.torch.cuda
        step()
        step()
        cuda.synchronize()
        resident = cuda.memory_allocated()
        cuda.reset_peak_memory_stats()
        step()
        cuda.synchronize()
        peak = cuda.max_memory_allocated()
        return {"method": "torch-cuda", "peak_bytes": int(peak), "resident_bytes": int(resident),
                "transient_bytes": int(peak - resident)}


def _torch_env(threads):
    import torch

    env = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        env.update(torch_cuda=torch.version.cuda, torch_gpu=torch.cuda.get_device_name(0))
    return env


def register(threads=None):
    """Register ``torch-cpu`` and ``torch-cuda`` with scratchvae.bench if torch imports; returns their names.

    ``threads`` sets torch's intra-op threads (torch.set_num_threads), like --threads does for BLAS.
    """
    if not TorchVAEStep.available():
        return []
    import torch

    from scratchvae.bench.backends import BackendSpec, register_backend

    if threads:
        torch.set_num_threads(int(threads))

    def cuda_probe():
        return None if torch.cuda.is_available() else "torch sees no CUDA GPU"

    register_backend(BackendSpec(
        "torch-cpu", "cpu", "reference", f"PyTorch {torch.__version__} on the CPU (reference)",
        make=lambda pb, hp, **kw: TorchRunner(pb, hp, "cpu"), env=lambda: _torch_env(threads), memory=None),
        replace=True)
    register_backend(BackendSpec(
        "torch-cuda", "gpu", "reference", f"PyTorch {torch.__version__} on CUDA (reference)",
        make=lambda pb, hp, **kw: TorchRunner(pb, hp, "cuda"), probe=cuda_probe, memory="custom"),
        replace=True)
    return ["torch-cpu", "torch-cuda"]
