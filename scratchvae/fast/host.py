"""Host memory tuning for the applications (the NumPy side of the fast layer)."""

from __future__ import annotations

import os

__all__ = ["tune_host_allocator"]


def tune_host_allocator() -> bool:
    """Keep freed host memory in the process instead of returning it to the OS after every op.

    Each op allocates fresh arrays; glibc returns large freed blocks to the OS at once and the next
    allocation of the same size page-faults its memory back in, which costs more than the
    arithmetic for arrays of a few hundred KB (Adam on a 784 x 200 weight ran 4x slower).  Raising
    malloc's trim and mmap thresholds keeps those blocks for reuse.  Process-wide, so it is called
    by the applications (``scratchvae train``, ``evaluate``, ``bench``), not on import.  Returns
    False where the C library is not glibc (nothing is changed there).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = mallopt(M_TRIM_THRESHOLD, 512 * 2**20) == 1
    ok = mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1 and ok  # 32 MiB: glibc's upper limit on 64-bit
    return ok
