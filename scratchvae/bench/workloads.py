"""The benchmark's workloads; each returns result rows (plain dicts) for the report.

* ``step``     -- one training step (forward, backward, Adam) of a preset's VAE at one sweep point;
* ``epoch``    -- one epoch of training as the trainer runs it: shuffled minibatches of the preset's
  size, the preset's preprocessing (dynamic binarization for iwae-paper) and fresh noise drawn on
  the host, copied to the backend every step;
* ``eval``     -- importance-sampled log p(x) with k samples on n test images (k = 5000 on 1,000
  images at ``--full``; fewer by default, with the time scaled to the full size reported as such);
* ``overhead`` -- the engine's own cost per op (forward + backward) on 1-element arrays, against the
  same array-library calls made bare.

Every timed number is a median over repeats with min and max beside it (scratchvae.bench.timing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .backends import Problem, gemm_flops, gemm_plan, host_parameters, preset_arch
from .memory import step_memory
from .timing import measure, measure_many

__all__ = [
    "FULL_EVAL",
    "Settings",
    "bench_epoch",
    "bench_eval",
    "bench_overhead",
    "bench_step",
    "load_images",
    "profile_step",
    "step_inputs",
]

#: The evaluation protocol of Burda et al. (2016): k = 5000 importance samples on 1,000 test images.
FULL_EVAL = (5000, 1000)


@dataclass
class Settings:
    """How hard to measure (run.py fills it from --quick / --full and the options)."""

    repeats: int = 5
    min_time: float = 0.05
    warmup: int = 2
    epoch_repeats: int = 1
    eval_repeats: int = 1
    memory: bool = True
    validate: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# data

def load_images(split: str, data_dir=None):
    """(uint8 images (N, 784), source name): full MNIST from ``data_dir`` (never downloaded here), else
    the embedded subset (10,000 training / 2,000 test images)."""
    if data_dir is not None:
        from ..data import load_mnist

        return load_mnist(split, data_dir=data_dir, download=False, flatten=True, quiet=True)[0], "mnist"
    from ..data import load_embedded

    return load_embedded(split, flatten=True)[0], "embedded"


def _ready(images: np.ndarray, binarize: str, dtype: str) -> np.ndarray:
    """What the model sees: grey levels, or one fixed Bernoulli draw (for a timing, one draw is as good as many)."""
    from ..data import fixed_binarize, grey_levels

    return grey_levels(images, dtype) if binarize == "grey" else fixed_binarize(images, 0, dtype)


def step_inputs(problem: Problem, images: np.ndarray, seed: int = 0):
    """(x, eps) host arrays for one step: the first ``batch`` images (cycled if fewer) and N(0, 1) noise."""
    idx = np.arange(problem.batch) % len(images)
    x = _ready(images[idx], problem.arch.binarize, problem.dtype)
    eps = np.random.default_rng(seed).standard_normal((problem.batch, problem.arch.latent)).astype(problem.dtype)
    return x, eps


def _row(workload: str, spec, **fields) -> dict:
    return {"workload": workload, "backend": spec.name, "device": spec.device, "kind": spec.kind, **fields}


def _error_row(workload, spec, err, **fields):
    text = " ".join(str(err).split()) or type(err).__name__
    return _row(workload, spec, status=f"error: {type(err).__name__}: {text}"[:300], **fields)


# --------------------------------------------------------------------------------------------------
# one training step

def bench_step(specs, problem: Problem, host_params: list, x_host: np.ndarray, eps_host: np.ndarray,
               settings: Settings) -> list:
    """Time each backend's step on ``problem`` (median/min/max ms, first call apart), their repeats
    interleaved; then measure each one's peak memory.  One row per backend, in ``specs`` order."""
    point = {"preset": problem.preset, "batch": problem.batch, "width": problem.hidden_width, "dtype": problem.dtype,
             "gemm_flops": gemm_flops(gemm_plan(problem.arch, problem.batch))}
    rows, fns, firsts = {}, {}, {}
    for spec in specs:
        try:
            runner = spec.make(problem, host_params, validate=settings.validate)
            runner.activate()
            x, e = runner.put(x_host), runner.put(eps_host)

            def step(runner=runner, x=x, e=e):
                runner.activate()  # engine runners: their backend and dtype current (cheap)
                runner.step(x, e)

            # The first call on its own: it fails here, alone, rather than inside the interleaved
            # loop, and its time (kernel compilation, first allocations) is reported apart.
            t0 = time.perf_counter()
            step()
            runner.sync()
            firsts[spec.name] = time.perf_counter() - t0
            fns[spec.name] = (step, runner.sync)
        except Exception as err:  # one failing backend (e.g. out of GPU memory) must not end the sweep
            rows[spec.name] = _error_row("step", spec, err, **point)
    try:
        timings = measure_many(fns, repeats=settings.repeats, min_time=settings.min_time, warmup=settings.warmup)
    except Exception as err:
        timings = {}
        for spec in specs:
            if spec.name in fns:
                rows[spec.name] = _error_row("step", spec, err, **point)
    fns.clear()  # free the runners before the memory measurements build fresh ones
    for spec in specs:
        if spec.name not in timings:
            continue
        t = timings[spec.name]
        t.first_call = firsts[spec.name]
        row = _row("step", spec, **point, **t.as_dict(), samples_per_s=problem.batch / t.median,
                   gflops=point["gemm_flops"] / t.median / 1e9, status="ok")
        if settings.memory and spec.memory is not None:
            try:
                mem = step_memory(lambda spec=spec: spec.make(problem, host_params, validate=settings.validate),
                                  x_host, eps_host, spec.memory)
                row.update(memory_method=mem["method"], peak_bytes=mem["peak_bytes"],
                           resident_bytes=mem["resident_bytes"], transient_bytes=mem["transient_bytes"])
            except Exception as err:
                row["memory_error"] = f"{type(err).__name__}: {err}"
        rows[spec.name] = row
    return [rows[s.name] for s in specs if s.name in rows]


# --------------------------------------------------------------------------------------------------
# one epoch

def bench_epoch(spec, preset: str, dtype: str, images: np.ndarray, source: str, settings: Settings) -> dict:
    """One epoch over ``images`` at the preset's batch size, as the trainer feeds it (module docstring).

    The first epoch (kernel compilation, first allocations) is timed apart; then
    ``settings.epoch_repeats`` epochs give median/min/max seconds.
    """
    from ..data import DataLoader, Preprocessing

    arch = preset_arch(preset)
    problem = Problem(preset, arch.batch_size, None, dtype)
    point = {"preset": preset, "batch": arch.batch_size, "width": problem.hidden_width, "dtype": dtype,
             "images": len(images), "data": source}
    try:
        runner = spec.make(problem, host_parameters(problem, settings.seed), validate=settings.validate)
        runner.activate()
        pp = Preprocessing(arch.binarize, seed=settings.seed, dtype=dtype)
        stored = pp.prepare(images)
        loader = DataLoader(len(stored), arch.batch_size, seed=settings.seed)
        bin_rng = np.random.default_rng([settings.seed, 2])
        noise_rng = np.random.default_rng([settings.seed, 1])
        epoch = [0]

        def one_epoch():
            for idx in loader.batches(epoch[0]):
                x = runner.put(pp.batch(stored[idx], bin_rng))
                e = runner.put(noise_rng.standard_normal((len(idx), arch.latent), dtype=dtype))
                runner.step(x, e)
            epoch[0] += 1

        t = measure(one_epoch, repeats=settings.epoch_repeats, warmup=0, number=1, sync=runner.sync)
        return _row("epoch", spec, **point, **t.as_dict(scale=1.0, unit="s"), steps=len(loader),
                    samples_per_s=len(images) / t.median, status="ok")
    except Exception as err:
        return _error_row("epoch", spec, err, **point)


# --------------------------------------------------------------------------------------------------
# importance-sampled evaluation

def bench_eval(spec, preset: str, dtype: str, images: np.ndarray, source: str, k: int, n: int,
               settings: Settings) -> dict:
    """log p(x) with ``k`` importance samples on the first ``n`` test images (fixed binarization).

    A small call first (10 images, k <= 100) compiles and allocates; it is reported as
    ``first_call_s``.  ``scaled_s`` is the measured time times (5000 x 1000) / (k x n): an
    estimate of the full protocol, not a measurement of it.
    """
    n = min(int(n), len(images))
    problem = Problem(preset, n, None, dtype)
    point = {"preset": preset, "dtype": dtype, "k": int(k), "images": n, "data": source,
             "batch": n, "width": problem.hidden_width}
    try:
        runner = spec.make(problem, host_parameters(problem, settings.seed), validate=settings.validate)
        runner.activate()
        x = _ready(images[:n], preset_arch(preset).binarize, dtype)
        t0 = time.perf_counter()
        runner.log_likelihood(x[:10], min(k, 100), settings.seed)
        first = time.perf_counter() - t0
        times, values = [], []
        for r in range(max(1, settings.eval_repeats)):
            t0 = time.perf_counter()
            values.append(runner.log_likelihood(x, k, settings.seed + r))  # returns a host float: synced
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        full_k, full_n = FULL_EVAL
        return _row("eval", spec, **point, s_min=min(times), s_median=med, s_max=max(times), first_call_s=first,
                    repeats=len(times), samples_per_s=k * n / med, scaled_s=med * (full_k * full_n) / (k * n),
                    scaled_to=f"k={full_k}, {full_n} images", log_px=float(np.mean(values)),
                    status="ok" if (k, n) != FULL_EVAL else "ok (full protocol)")
    except Exception as err:
        return _error_row("eval", spec, err, **point)


# --------------------------------------------------------------------------------------------------
# per-op engine overhead

def _op_cases(xp, F, a_arr, b_arr, g, g0):
    """op -> (engine forward, the bare array calls that op's forward + backward make, output gradient)."""

    def raw_tanh():
        y = xp.tanh(a_arr)
        return g * (1.0 - y * y)

    def raw_softplus():  # the engine's calls: the sigmoid made in the forward from the same e, u
        e = xp.exp(-xp.abs(a_arr))
        u = 1.0 + e
        neg = xp.astype(a_arr < 0, a_arr.dtype)
        s = (e * neg + (1.0 - neg)) / u
        y = xp.maximum(a_arr, 0.0) + (xp.log(u) - ((u - 1.0) - e) / u)
        return y, g * s

    return {
        "add": (lambda a, b: a + b, lambda: a_arr + b_arr, g),
        "mul": (lambda a, b: a * b, lambda: (a_arr * b_arr, g * b_arr, g * a_arr), g),
        "exp": (lambda a, b: F.exp(a), lambda: g * xp.exp(a_arr), g),
        "tanh": (lambda a, b: F.tanh(a), raw_tanh, g),
        "softplus": (lambda a, b: F.softplus(a), raw_softplus, g),
        "sum": (lambda a, b: F.sum(a), lambda: (xp.sum(a_arr), xp.broadcast_to(g0.reshape(1, 1), (1, 1))), g0),
        "matmul": (lambda a, b: a @ b, lambda: (a_arr @ b_arr, g @ b_arr.T, a_arr.T @ g), g),
    }


def bench_overhead(spec, settings: Settings) -> list:
    """Engine forward + backward of one op on (1, 1) float32 arrays minus the same array calls made bare.

    The difference is the engine's own cost per op: building the node, the topological sort, the
    gradient bookkeeping and releasing the graph (target: <= 15 us).
    """
    from .. import functional as F
    from ..autograd.fastpath import set_enabled
    from ..autograd.tensor import tensor
    from ..backend import set_backend, set_default_dtype
    from .timing import cupy_sync, no_sync

    fast_before = set_enabled(spec.extra.get("fast", True))
    try:
        name = spec.extra["engine"]
        backend = set_backend(name)
        set_default_dtype("float32")
        if name == "cupy":
            import cupy as xp

            sync = cupy_sync
        else:
            xp, sync = np, no_sync
        put = backend.from_numpy
        a_arr, b_arr = put(np.full((1, 1), 0.5, np.float32)), put(np.full((1, 1), 0.25, np.float32))
        g, g0 = put(np.ones((1, 1), np.float32)), put(np.ones((), np.float32))
        a, b = tensor(a_arr, requires_grad=True), tensor(b_arr, requires_grad=True)
        rows = []
        for op, (engine_op, raw, grad) in _op_cases(xp, F, a_arr, b_arr, g, g0).items():
            def step(engine_op=engine_op, grad=grad):
                engine_op(a, b).backward(grad)

            te = measure(step, repeats=settings.repeats, min_time=settings.min_time, sync=sync)
            tr = measure(raw, repeats=settings.repeats, min_time=settings.min_time, sync=sync)
            a.grad = b.grad = None
            rows.append(_row("overhead", spec, op=op, engine_us=te.median * 1e6, raw_us=tr.median * 1e6,
                             overhead_us=(te.median - tr.median) * 1e6, engine_us_min=te.min * 1e6,
                             engine_us_max=te.max * 1e6, status="ok"))
        return rows
    except Exception as err:
        return [_error_row("overhead", spec, err, op="-")]
    finally:
        set_enabled(fast_before)


# --------------------------------------------------------------------------------------------------
# where the time goes

def profile_step(spec, problem: Problem, host_params, x_host, eps_host, steps: int = 5, top: int = 12) -> dict:
    """``scratchvae.profile()`` over a few engine steps: time and calls per op, forward and backward."""
    from ..profiler import profile

    runner = spec.make(problem, host_params)
    runner.activate()
    x, e = runner.put(x_host), runner.put(eps_host)
    runner.step(x, e)
    runner.sync()
    with profile() as p:
        for _ in range(steps):
            runner.step(x, e)
        runner.sync()
    return {"backend": spec.name, "point": problem.label(), "steps": steps, "table": p.table(top=top),
            "ops_ms_per_step": p.total() * 1e3 / steps, "wall_ms_per_step": p.wall * 1e3 / steps}
