"""Peak memory of one training step: tracemalloc for NumPy, the CuPy memory pool for the GPU.

NumPy reports every array buffer it allocates to ``tracemalloc``, so with tracing on from before
the runner is built, the traced peak during a step is everything the step's arrays occupy at their
worst moment: parameters, optimizer state, the batch, activations, gradients and temporaries.
CuPy arrays come from its memory pool; a pool hook adds up what the step takes from and returns
to the pool, so the peak is exact at the pool's granularity (blocks are rounded up to 512 bytes).

Each measurement builds a fresh runner (tracing slows a step several times, so the timed runs are
never traced) and runs two untraced-for-peak steps first: Adam's moments and any lazily created
state exist before the measured step starts.
"""

from __future__ import annotations

import gc
import tracemalloc

__all__ = ["step_memory"]


def step_memory(make_runner, x_host, eps_host, method: str | None) -> dict:
    """Peak bytes during one step of the runner ``make_runner()`` builds, measured by ``method``.

    ``method``: "tracemalloc" (NumPy), "cupy-pool", "custom" (the runner's own
    ``measure_memory(step)``, e.g. torch.cuda's peak statistics) or None (not measurable: no numbers).
    Returns ``{"method", "peak_bytes", "resident_bytes", "transient_bytes"}``: the peak during the
    step, what was held just before it (parameters, optimizer state, batch, kept gradients), and
    their difference.
    """
    if method == "tracemalloc":
        return _traced(make_runner, x_host, eps_host)
    if method == "cupy-pool":
        return _cupy_pool(make_runner, x_host, eps_host)
    if method == "custom":
        runner = make_runner()
        runner.activate()
        x, e = runner.put(x_host), runner.put(eps_host)
        return runner.measure_memory(lambda: runner.step(x, e))
    if method is None:
        return {"method": None, "peak_bytes": None, "resident_bytes": None, "transient_bytes": None}
    raise ValueError(f"step_memory: unknown method {method!r}; use tracemalloc, cupy-pool, custom or None")


def _result(method, peak, resident):
    return {"method": method, "peak_bytes": int(peak), "resident_bytes": int(resident),
            "transient_bytes": int(peak - resident)}


def _warmed_up(make_runner, x_host, eps_host):
    """(runner, x, eps) after two steps: optimizer state and caches exist, so the measured step
    allocates only what every step does."""
    runner = make_runner()
    runner.activate()
    x, e = runner.put(x_host), runner.put(eps_host)
    runner.step(x, e)
    runner.step(x, e)
    return runner, x, e


def _traced(make_runner, x_host, eps_host) -> dict:
    if tracemalloc.is_tracing():
        raise RuntimeError("step_memory: tracemalloc is already tracing; stop it first so the peak is the step's own")
    gc.collect()
    tracemalloc.start()
    try:
        runner, x, e = _warmed_up(make_runner, x_host, eps_host)
        gc.collect()
        resident = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        runner.step(x, e)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return _result("tracemalloc", peak, resident)


def _cupy_pool(make_runner, x_host, eps_host) -> dict:
    import cupy

    class PeakHook(cupy.cuda.MemoryHook):
        """Running total of the bytes taken from the pool minus those given back; its maximum."""

        name = "scratchvae_bench_peak"

        def __init__(self):
            self.used = self.peak = 0

        def malloc_postprocess(self, **kw):
            self.used += kw["mem_size"]
            self.peak = max(self.peak, self.used)

        def free_postprocess(self, **kw):
            self.used -= kw["mem_size"]

    pool = cupy.get_default_memory_pool()
    runner, x, e = _warmed_up(make_runner, x_host, eps_host)
    runner.sync()
    gc.collect()
    resident = pool.used_bytes()
    hook = PeakHook()
    with hook:
        runner.step(x, e)
        runner.sync()
    return _result("cupy-pool", resident + hook.peak, resident)
