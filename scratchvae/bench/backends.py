"""What the benchmark runs on: a registry of backends, each able to build a *runner* for a problem.

A problem is one point of a sweep (:class:`Problem`: preset, batch size, hidden width, dtype).  A
runner holds one model's parameters and optimizer state on one backend and exposes

* ``put(host_array)``  -- copy a host array to where the runner computes (host -> device);
* ``step(x, eps)``     -- one training step (forward, backward, Adam) on a batch and its
  reparameterization noise, without waiting for the device;
* ``sync()``           -- wait for the device (no-op on the CPU);
* ``log_likelihood(x_host, k, seed)`` -- the importance-sampled log p(x), mean over the images.

Built in: ``numpy`` and ``cupy`` (the engine), ``array-api-strict`` (the engine on the test
suite's non-CPU stand-in device: exercises the GPU code path without a GPU, timings meaningless),
``hand-numpy`` (scratchvae.bench.reference: hand-derived gradients, the speed limit of a NumPy
engine), and ``numpy-gemm`` / ``cupy-gemm`` (only the matrix products of the step: the floor).
The PyTorch references register themselves from ``benchmarks/torch_reference.py`` through
:func:`register_backend`; the library never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise

import numpy as np

from .reference import HandVAEStep, hand_log_likelihood
from .timing import cupy_sync, no_sync

__all__ = [
    "BACKENDS",
    "Arch",
    "BackendSpec",
    "Problem",
    "Runner",
    "backend_names",
    "gemm_flops",
    "gemm_plan",
    "get_backend_spec",
    "host_parameters",
    "register_backend",
]


# --------------------------------------------------------------------------------------------------
# the problem

@dataclass(frozen=True)
class Arch:
    """The fully connected VAE of a preset (784 -> hidden... -> latent, two heads, reversed decoder) and its Adam."""

    input_dim: int
    hidden: tuple
    latent: int
    activation: str
    head: str
    lr: float
    betas: tuple
    adam_eps: float
    binarize: str
    batch_size: int

    def linear_sizes(self) -> list:
        """(in, out) of every Linear layer, in the model's parameter order: body, mean head, spread head, decoder."""
        body = list(pairwise((self.input_dim, *self.hidden)))
        heads = [(self.hidden[-1], self.latent)] * 2
        return body + heads + list(pairwise((self.latent, *self.hidden[::-1], self.input_dim)))


def preset_arch(preset: str, width: int | None = None) -> Arch:
    """The architecture of ``preset``, with every hidden layer ``width`` wide when given."""
    from ..models.presets import get_preset

    p = get_preset(preset)
    m = p["model"]
    hidden = tuple(int(width) for _ in m["hidden"]) if width else tuple(m["hidden"])
    return Arch(784, hidden, int(m["latent_dim"]), m["activation"], m["encoder_head"], float(p["lr"]),
                tuple(p["betas"]), float(p["adam_eps"]), p["binarize"], int(p["batch_size"]))


@dataclass(frozen=True)
class Problem:
    """One point of a sweep: the ``preset``'s VAE with ``batch`` images per step, hidden layers
    ``width`` wide (None: the preset's own) and parameters in ``dtype``."""

    preset: str
    batch: int
    width: int | None = None
    dtype: str = "float32"

    @cached_property
    def arch(self) -> Arch:
        return preset_arch(self.preset, self.width)

    @property
    def hidden_width(self) -> int:
        return int(self.arch.hidden[0])

    def label(self) -> str:
        return f"{self.preset} batch {self.batch} width {self.hidden_width} {self.dtype}"


def host_parameters(problem: Problem, seed: int = 0) -> list:
    """The model's initial parameters as host arrays, in ``model.parameters()`` order.

    Drawn by the library's own constructor (``VAE.mlp`` with the preset's initialisation) on NumPy,
    so every backend starts from the same numbers.  iwae-paper's data-dependent output bias is left
    out: it changes no timing.
    """
    from ..backend import to_numpy
    from ..models.vae import VAE
    from ..random import Generator

    model = VAE.mlp(**_model_kwargs(problem), validate_args=False, dtype=problem.dtype, backend="numpy",
                    generator=Generator(seed))
    return [np.array(to_numpy(p.data), copy=True) for p in model.parameters()]


def _model_kwargs(problem: Problem) -> dict:
    from ..models.presets import get_preset

    p = get_preset(problem.preset)
    kw = dict(p["model"], input_dim=784, hidden=list(problem.arch.hidden))
    kw["allow_grey"] = bool(p["binarize"] == "grey" and p.get("bernoulli_on_grey"))
    return kw


# --------------------------------------------------------------------------------------------------
# runners

class Runner:
    """One backend's model + optimizer for one problem (module docstring)."""

    name = "?"
    device = "cpu"

    def activate(self) -> None:
        """Make this runner's backend and dtype current (engine runners; others do nothing)."""

    def put(self, a: np.ndarray):
        return a

    def step(self, x, eps) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        no_sync()

    def log_likelihood(self, x_host: np.ndarray, k: int, seed: int = 0) -> float:
        """Mean over the images of the importance-sampled log p(x) with ``k`` samples (nats)."""
        raise NotImplementedError(f"{self.name}: no importance-sampled evaluation")


class _FixedNoise:
    """Hands the runner's prepared noise to ``rsample`` (duck-types scratchvae.random.Generator)."""

    def __init__(self, eps):
        self.eps = eps

    def normal(self, shape, dtype=None, backend=None):
        from ..backend import namespace

        return namespace(self.eps).reshape(self.eps, tuple(shape))


class EngineRunner(Runner):
    """scratchvae itself: the preset's VAE built by ``VAE.mlp``, ``batch_loss`` and ``build_optimizer``
    from ``scratchvae.train``, i.e. the public model/optim API a training run uses.

    Distribution argument checks are off (``validate_args=False``, the CLI's ``--no-validate``)
    unless ``validate=True``: each check costs a device -> host sync, and the references make none.
    """

    def __init__(self, problem: Problem, host_params: list, backend: str = "numpy", validate: bool = False,
                 fast: bool = True):
        from ..models.vae import VAE
        from ..random import Generator
        from ..train import build_optimizer, make_config

        self.fast = fast  # False: the fast layer off (scratchvae.fast.disabled()), the teaching core alone
        self.name = {"numpy": "numpy", "cupy": "cupy", "array_api_strict": "array-api-strict"}[backend]
        if not fast:
            self.name += "-reference"
        self.device = "gpu" if backend == "cupy" else "cpu"
        self.backend_name, self.dtype = backend, problem.dtype
        self.config = make_config(problem.preset, dtype=problem.dtype, hidden=list(problem.arch.hidden),
                                  data="embedded", backend=backend, validate_args=validate)
        self.activate()  # the runner's backend and dtype are current from here on (run.py restores them)
        # Its own generator: the initial values are overwritten below, and the global stream stays untouched.
        self.model = VAE.mlp(**_model_kwargs(problem), validate_args=None if validate else False,
                             dtype=problem.dtype, backend=self.backend, generator=Generator(0))
        for p, host in zip(self.model.parameters(), host_params):
            p.data = self.backend.from_numpy(np.ascontiguousarray(host, dtype=problem.dtype))
        self.optimizer = build_optimizer(self.config, self.model)

    def activate(self):
        from ..autograd.fastpath import set_enabled
        from ..backend import set_backend, set_default_dtype

        self.backend = set_backend(self.backend_name)
        set_default_dtype(self.dtype)
        set_enabled(self.fast)

    def put(self, a):
        return self.backend.from_numpy(np.ascontiguousarray(a, dtype=self.dtype))

    def sync(self):
        if self.backend_name == "cupy":
            cupy_sync()

    def loss(self, x, eps):
        from ..autograd.tensor import tensor
        from ..train import batch_loss

        loss, _ = batch_loss(self.model, tensor(x), self.config, 1.0, generator=_FixedNoise(eps))
        return loss

    def step(self, x, eps):
        self.optimizer.zero_grad()
        self.loss(x, eps).backward()
        self.optimizer.step()

    def log_likelihood(self, x_host, k, seed=0):
        from ..evaluate import log_likelihood_stats
        from ..random import Generator

        # The library's own evaluation (scratchvae.evaluate), with its per-backend batching.
        return log_likelihood_stats(self.model, x_host, k=k, generator=Generator(seed))["log_px"]


class HandRunner(Runner):
    """scratchvae.bench.reference: the step with hand-derived gradients, in place, no graph."""

    name = "hand-numpy"

    def __init__(self, problem: Problem, host_params: list):
        a = problem.arch
        self.dtype = problem.dtype
        self.step_fn = HandVAEStep([np.array(p, dtype=problem.dtype, copy=True) for p in host_params], a.lr,
                                   a.betas, a.adam_eps, a.activation, a.head)

    def put(self, a):
        return np.ascontiguousarray(a, dtype=self.dtype)

    def step(self, x, eps):
        self.step_fn(x, eps)

    def log_likelihood(self, x_host, k, seed=0):
        a = self.step_fn
        rng = np.random.default_rng(seed)
        chunk = min(k, 100)
        per_call = max(1, 1000 // chunk)  # the engine's NumPy batching (scratchvae.evaluate)
        out = [hand_log_likelihood(a.params, self.put(x_host[i:i + per_call]), k, rng, a.activation, a.head, chunk)
               for i in range(0, len(x_host), per_call)]
        return float(np.concatenate(out).astype(np.float64).mean())


# --------------------------------------------------------------------------------------------------
# the GEMM floor

def gemm_plan(arch: Arch, batch: int) -> list:
    """The matrix products of one training step, as (m, k, n, what) with cost 2 m k n flops.

    Per Linear layer (in -> out) at batch N: forward X W (N x in @ in x out), weight gradient
    X^T G (in x N @ N x out), and input gradient G W^T (N x out @ out x in) for every layer but
    the first, whose input is the data.  Nothing else of the step is a matrix product.
    """
    plan = []
    for i, (fi, fo) in enumerate(arch.linear_sizes()):
        plan.append((batch, fi, fo, "forward"))
        plan.append((fi, batch, fo, "weight grad"))
        if i > 0:
            plan.append((batch, fo, fi, "input grad"))
    return plan


def gemm_flops(plan: list) -> int:
    return int(sum(2 * m * k * n for m, k, n, _ in plan))


class GemmRunner(Runner):
    """Only the step's matrix products (``gemm_plan``), on operands laid out as the engine's are
    (X^T and W^T as transposed views, so BLAS sees the same transposes): the floor of the step."""

    def __init__(self, problem: Problem, host_params: list, library: str = "numpy"):
        self.name = f"{library}-gemm"
        self.device = "gpu" if library == "cupy" else "cpu"
        if library == "cupy":
            import cupy

            xp, self._sync = cupy, cupy_sync
        else:
            xp, self._sync = np, no_sync
        self.xp = xp
        rng = np.random.default_rng(0)
        dt = problem.dtype

        def arr(*shape):
            return xp.asarray(rng.standard_normal(shape).astype(dt))

        self.ops = []
        n = problem.batch
        for i, (fi, fo) in enumerate(problem.arch.linear_sizes()):
            x, w, g = arr(n, fi), arr(fi, fo), arr(n, fo)
            self.ops.append((x, w))          # X W
            self.ops.append((x.T, g))        # X^T G
            if i > 0:
                self.ops.append((g, w.T))    # G W^T
        self.flops = gemm_flops(gemm_plan(problem.arch, n))

    def step(self, x, eps):
        for a, b in self.ops:
            a @ b

    def sync(self):
        self._sync()


# --------------------------------------------------------------------------------------------------
# the registry

@dataclass
class BackendSpec:
    """A backend the benchmark can run: ``make(problem, host_params)`` builds a :class:`Runner`.

    ``probe()`` returns why it cannot run here (a short string) or None; ``env()`` returns facts
    for the report's environment (versions, threads); ``workloads`` are those it implements;
    ``memory`` is how scratchvae.bench.memory.step_memory measures a step ("tracemalloc",
    "cupy-pool", "custom": the runner's own ``measure_memory(step)``, or None).
    """

    name: str
    device: str
    kind: str                       # "engine" | "hand" | "gemm" | "reference"
    description: str
    make: object
    probe: object = None
    env: object = None
    workloads: tuple = ("step", "epoch", "eval")
    memory: str | None = "tracemalloc"
    default: bool = True            # run when --backends is not given
    extra: dict = field(default_factory=dict)

    def unavailable(self) -> str | None:
        return self.probe() if self.probe is not None else None


def _cupy_probe():
    from ..backend import BackendError, get_backend, set_backend

    prev = get_backend()
    try:
        set_backend("cupy")
    except BackendError as e:
        return str(e).split(" (")[0].split(". ")[0].replace("scratchvae: ", "")
    finally:
        set_backend(prev)
    return None


def _strict_probe():
    try:
        import array_api_strict  # noqa: F401
    except ImportError:
        return "array-api-strict is not installed"
    return None


def _cupy_env():
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {"cupy": cupy.__version__, "gpu": name, "gpu_memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(), "cuda_driver": cupy.cuda.runtime.driverGetVersion()}


BACKENDS: dict = {}


def register_backend(spec: BackendSpec, replace: bool = False) -> BackendSpec:
    """Add a backend to the registry (``benchmarks/torch_reference.py`` adds torch-cpu and torch-cuda)."""
    if spec.name in BACKENDS and not replace:
        raise ValueError(f"bench: a backend named {spec.name!r} is already registered")
    BACKENDS[spec.name] = spec
    return spec


def get_backend_spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        hint = ""
        if name.startswith("torch"):
            hint = (" -- the PyTorch references are not part of the library; run `python benchmarks/run.py` "
                    "from a source checkout with torch installed")
        raise ValueError(f"bench: unknown backend {name!r}; available: {', '.join(BACKENDS)}{hint}")
    return BACKENDS[name]


def backend_names(default_only: bool = False) -> list:
    return [n for n, s in BACKENDS.items() if s.default or not default_only]


register_backend(BackendSpec(
    "numpy", "cpu", "engine", "scratchvae on NumPy (the CPU engine)",
    make=lambda pb, hp, **kw: EngineRunner(pb, hp, "numpy", **kw), workloads=("step", "epoch", "eval", "overhead"),
    extra={"engine": "numpy"}))
register_backend(BackendSpec(
    "numpy-reference", "cpu", "engine",
    "scratchvae on NumPy with the fast layer off (scratchvae.fast.disabled()): the teaching core alone",
    make=lambda pb, hp, **kw: EngineRunner(pb, hp, "numpy", fast=False, **kw),
    workloads=("step", "epoch", "eval", "overhead"), extra={"engine": "numpy", "fast": False}))
register_backend(BackendSpec(
    "hand-numpy", "cpu", "hand", "hand-written NumPy step, hand-derived gradients (the speed limit)",
    make=lambda pb, hp, **kw: HandRunner(pb, hp)))
register_backend(BackendSpec(
    "numpy-gemm", "cpu", "gemm", "only the step's matrix products, NumPy (the floor)",
    make=lambda pb, hp, **kw: GemmRunner(pb, hp, "numpy"), workloads=("step",)))
register_backend(BackendSpec(
    "cupy", "gpu", "engine", "scratchvae on CuPy (the GPU engine, fused elementwise kernels)",
    make=lambda pb, hp, **kw: EngineRunner(pb, hp, "cupy", **kw), probe=_cupy_probe, env=_cupy_env,
    workloads=("step", "epoch", "eval", "overhead"), memory="cupy-pool", extra={"engine": "cupy"}))
register_backend(BackendSpec(
    "cupy-gemm", "gpu", "gemm", "only the step's matrix products, CuPy (the floor)",
    make=lambda pb, hp, **kw: GemmRunner(pb, hp, "cupy"), probe=_cupy_probe, workloads=("step",),
    memory="cupy-pool"))
register_backend(BackendSpec(
    "array-api-strict", "cpu", "engine",
    "scratchvae on array-api-strict's non-CPU test device (checks the device code path; times are not meaningful)",
    make=lambda pb, hp, **kw: EngineRunner(pb, hp, "array_api_strict", **kw), probe=_strict_probe, memory=None,
    default=False, extra={"engine": "array_api_strict"}))
