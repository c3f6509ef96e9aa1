"""Grad mode: whether ops record the graph (per thread, like torch.no_grad), and the observer hook."""

from __future__ import annotations

import functools
import threading

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "add_observer", "remove_observer", "observers"]


class _GradMode(threading.local):
    enabled = True


grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return grad_mode.enabled


class no_grad:
    """Context manager (and decorator) in which ops record no graph. Thread-local."""

    _enable = False

    def __enter__(self):
        self._prev = grad_mode.enabled
        grad_mode.enabled = self._enable

    def __exit__(self, *exc):
        grad_mode.enabled = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Re-enable graph recording inside a ``no_grad`` block."""

    _enable = True


# Observers: the one hook for tools that watch every op (scratchvae.profile, detect_anomaly).  Each
# has start(fn, phase), forward(fn, xs, y) and backward(fn, gy, gxs); with none registered, an op
# pays one loop over an empty list.
observers: list = []


def add_observer(observer) -> None:
    observers.append(observer)


def remove_observer(observer) -> None:
    observers.remove(observer)
