"""``torch.cuda.is_available()`` and ``device_count()``: whether the "cuda" device (the CuPy backend) can be used.

Asking never raises: a missing CuPy, driver or GPU all answer False / 0 (``set_backend("cupy")``
gives the error that says which one is missing).
"""

from __future__ import annotations

from .backend import BackendError, resolve_backend

__all__ = ["is_available", "device_count"]


def is_available() -> bool:
    """True when the CuPy backend starts: CuPy installed and at least one CUDA GPU visible."""
    try:
        resolve_backend("cupy")
    except BackendError:
        return False
    return True


def device_count() -> int:
    """The number of visible CUDA GPUs (0 without CuPy or a GPU)."""
    if not is_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())
