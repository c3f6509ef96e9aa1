"""See where the time goes: per-op time and call counts, forward and backward.

    with scratchvae.profile() as p:
        loss = model.loss(x)
        loss.backward()
    print(p.table())

Times are wall-clock per op call.  On CuPy the profiler synchronizes the stream before reading the
clock (``sync=True``), since kernel launches return before the GPU has run them; that makes the
profiled run slower, but each op's time is its own.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

from .autograd.tensor import add_observer, remove_observer

__all__ = ["profile", "Profile"]


def _synchronize(arrays):
    cupy = sys.modules.get("cupy")
    if cupy is not None and any(isinstance(a, cupy.ndarray) for a in arrays if a is not None):
        cupy.cuda.get_current_stream().synchronize()


class Profile:
    """Collected statistics: ``stats[(op, phase)] = [calls, seconds]``."""

    def __init__(self, sync=True):
        self.sync = sync
        self.stats = defaultdict(lambda: [0, 0.0])
        self._t0 = 0.0
        self.wall = 0.0

    # -- observer protocol (called by the engine for every op) --
    def start(self, fn, phase):
        if self.sync and phase == "backward" and fn.inputs is not None:
            _synchronize([t.data for t in fn.inputs])
        self._t0 = time.perf_counter()

    def forward(self, fn, xs, y):
        if self.sync:
            _synchronize([y])
        self._record(fn, "forward")

    def backward(self, fn, gy, gxs):
        if self.sync:
            _synchronize(list(gxs))
        self._record(fn, "backward")

    def _record(self, fn, phase):
        entry = self.stats[(type(fn).__name__, phase)]
        entry[0] += 1
        entry[1] += time.perf_counter() - self._t0

    # -- reporting --
    def total(self) -> float:
        return sum(s for _, s in self.stats.values())

    def table(self, top=None) -> str:
        """A markdown table, slowest first: op, phase, calls, total ms, us per call, share."""
        total = self.total() or 1.0
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1][1])[:top]
        lines = ["| op | phase | calls | total (ms) | per call (us) | share |", "|---|---|---:|---:|---:|---:|"]
        for (op, phase), (n, sec) in rows:
            lines.append(f"| {op} | {phase} | {n} | {sec * 1e3:.3f} | {sec / n * 1e6:.1f} | {sec / total:.1%} |")
        lines.append(f"\nops: {self.total() * 1e3:.3f} ms of {self.wall * 1e3:.3f} ms wall time inside the block")
        return "\n".join(lines)

    def __enter__(self):
        add_observer(self)
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        remove_observer(self)
        self.wall = time.perf_counter() - self._wall0


def profile(sync=True) -> Profile:
    """Context manager recording time and calls per op (forward and backward)."""
    return Profile(sync)
