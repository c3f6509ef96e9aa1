"""Benchmarks of scratchvae against the array libraries it runs on (``scratchvae bench``).

One training step of the ``pytorch-example`` and ``iwae-paper`` VAEs swept over batch size, hidden
width and dtype; an epoch of training; importance-sampled evaluation; the engine's per-op overhead.
Backends: the engine on NumPy and CuPy, a hand-written NumPy step with hand-derived gradients (the
speed limit), the step's matrix products alone (the floor), and -- registered from
``benchmarks/torch_reference.py``, never imported by the library -- PyTorch on CPU and CUDA.

    from scratchvae.bench import main
    main(["--quick", "--out", "results/bench"])

Modules: ``timing`` (repeats, sync, first call), ``reference`` (the hand step), ``backends`` (the
registry and runners), ``workloads``, ``memory`` (peak during a step), ``report`` (table, JSON,
plot), ``cli`` (the sweeps and the command line).
"""

from .backends import BACKENDS, BackendSpec, Problem, Runner, register_backend
from .cli import main, run
from .timing import Timing, measure

__all__ = ["BACKENDS", "BackendSpec", "Problem", "Runner", "Timing", "main", "measure", "register_backend", "run"]
