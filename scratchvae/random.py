"""Random numbers on every backend, seeded in one place.

NumPy and CuPy each draw with their own ``Generator``; array-api-strict has no random module, so its
draws come from NumPy and are placed on the array's device (an explicit host -> device copy, the
direction that is allowed).  Noise is drawn in the dtype asked for -- the parameters' dtype -- so a
float32 model never silently computes in float64.
"""

from __future__ import annotations

import numpy as np

from .backend import Backend, dtype_name, get_backend, get_default_dtype, resolve_backend

__all__ = ["Generator", "manual_seed", "default_generator", "randn", "rand"]


class Generator:
    """A seeded source of random numbers for every backend.

    Each backend gets its own stream, created on first use from the same seed, so re-seeding
    reproduces the draws on that backend.
    """

    def __init__(self, seed=None):
        self.seed = seed
        self._streams: dict = {}

    def manual_seed(self, seed):
        self.seed = seed
        self._streams.clear()
        return self

    def _stream(self, backend: Backend):
        key = backend.name
        s = self._streams.get(key)
        if s is None:
            if backend.name == "cupy":
                import cupy

                s = cupy.random.default_rng(self.seed)
            else:
                s = np.random.default_rng(self.seed)
            self._streams[key] = s
        return s

    def normal(self, shape, dtype=None, backend=None):
        """Standard normal draws of ``shape`` in ``dtype`` on ``backend`` (default: the current)."""
        backend = backend or get_backend()
        name = dtype_name(dtype or get_default_dtype())
        a = self._stream(backend).standard_normal(tuple(shape), dtype=name)
        return a if backend.name == "cupy" else backend.from_numpy(a)

    def uniform(self, shape, dtype=None, backend=None):
        """Uniform draws on [0, 1) of ``shape`` in ``dtype`` on ``backend``."""
        backend = backend or get_backend()
        name = dtype_name(dtype or get_default_dtype())
        a = self._stream(backend).random(tuple(shape), dtype=name)
        return a if backend.name == "cupy" else backend.from_numpy(a)

    def numpy(self) -> np.random.Generator:
        """The host NumPy stream (for shuffling indices and other host-side choices)."""
        return self._stream(resolve_backend("numpy"))


_default = Generator(None)


def default_generator() -> Generator:
    return _default


def manual_seed(seed: int) -> Generator:
    """Seed the default generator of every backend (like ``torch.manual_seed``)."""
    return _default.manual_seed(seed)


def randn(*shape, dtype=None, generator=None, backend=None):
    """A plain backend array of standard normal draws (not a Tensor)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return (generator or _default).normal(shape, dtype, backend)


def rand(*shape, dtype=None, generator=None, backend=None):
    """A plain backend array of uniform [0, 1) draws (not a Tensor)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return (generator or _default).uniform(shape, dtype, backend)
