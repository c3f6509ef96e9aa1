"""Timing a function the way a benchmark must: first call apart, warm-up, repeats, min/median/max.

GPU calls return before the device has run them, so every clock reading is preceded by ``sync()``
(for CuPy, the current stream's synchronize); without it a GPU step would look as fast as its
Python launch loop.  The first call is timed on its own and reported apart: on CuPy it includes
compiling (or loading from the disk cache) each elementwise kernel, on NumPy it includes the first
allocation of every buffer, and neither belongs in the per-step time.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from dataclasses import dataclass, field

__all__ = ["Timing", "cupy_sync", "measure", "measure_many", "no_sync"]


def no_sync() -> None:
    """For CPU backends: the result is ready when the call returns."""


def cupy_sync() -> None:
    """Wait for the work queued on CuPy's current stream (no-op when CuPy was never imported)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.cuda.get_current_stream().synchronize()


@dataclass
class Timing:
    """Seconds per call: ``times`` holds one value per repeat (each the mean of ``number`` calls)."""

    times: list = field(default_factory=list)
    number: int = 1
    first_call: float = math.nan

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def as_dict(self, scale: float = 1e3, unit: str = "ms") -> dict:
        """min / median / max / first call in ``unit`` (default milliseconds), plus repeats and number."""
        return {f"{unit}_min": self.min * scale, f"{unit}_median": self.median * scale,
                f"{unit}_max": self.max * scale, f"first_call_{unit}": self.first_call * scale,
                "repeats": len(self.times), "number": self.number}


def measure(fn, *, repeats: int = 5, min_time: float = 0.05, warmup: int = 1, sync=no_sync,
            number: int | None = None, clock=time.perf_counter) -> Timing:
    """Time ``fn()``: first call, ``warmup`` more untimed calls, then ``repeats`` timed repeats.

    Each repeat runs ``number`` calls back to back and records their mean; ``number`` (when not
    given) is chosen so that a repeat lasts about ``min_time`` seconds, which keeps the clock's
    resolution and per-repeat sync out of sub-millisecond steps.  ``sync()`` runs before every
    clock reading.  The garbage collector is left on (a real training loop has it on too), but
    collected before timing starts so one repeat does not pay for the setup's garbage.
    """
    return measure_many({"fn": (fn, sync)}, repeats=repeats, min_time=min_time, warmup=warmup, number=number,
                        clock=clock)["fn"]


def measure_many(fns: dict, *, repeats: int = 5, min_time: float = 0.05, warmup: int = 1,
                 number: int | None = None, clock=time.perf_counter) -> dict:
    """:func:`measure` for several ``{name: (fn, sync)}`` at once, their repeats interleaved.

    Repeat r of every function runs before repeat r + 1 of any, so a slow minute of a busy machine
    slows all of them alike and their ratios stay meaningful.  Returns ``{name: Timing}``.
    """
    if repeats < 1:
        raise ValueError(f"measure: repeats must be >= 1, got {repeats}")
    if number is not None and number < 1:
        raise ValueError(f"measure: number must be >= 1, got {number}")
    firsts, numbers = {}, {}
    for name, (fn, sync) in fns.items():
        sync()
        t0 = clock()
        fn()
        sync()
        firsts[name] = single = clock() - t0
        for _ in range(max(0, warmup)):
            t0 = clock()
            fn()
            sync()
            single = clock() - t0
        if number is not None:
            numbers[name] = number
        else:
            numbers[name] = max(1, math.ceil(min_time / max(single, 1e-9))) if min_time > 0 else 1
    gc.collect()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, sync) in fns.items():
            n = numbers[name]
            t0 = clock()
            for _ in range(n):
                fn()
            sync()
            times[name].append((clock() - t0) / n)
    return {name: Timing(times=times[name], number=numbers[name], first_call=firsts[name]) for name in fns}
