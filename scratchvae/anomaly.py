"""Anomaly mode: find the first op whose forward or backward produces NaN or Inf.

A NaN rarely fails where it is born: it flows on through the graph and surfaces later as a NaN loss
or as a confusing validation error many ops downstream.  Inside ``detect_anomaly()`` every op's
output (forward) and every gradient an op's backward returns is checked, and the first non-finite
one raises ``AnomalyError`` naming the op, its input shapes and dtypes, how many elements are NaN
or Inf, and where in the code the op was created::

    with scratchvae.anomaly.detect_anomaly():
        loss = -elbo(x, encode, decode, prior).objective.mean()
        loss.backward()

How: the context manager registers an observer with the engine (``autograd.tensor.add_observer``),
which calls it after every op's forward and backward.  Each check copies one boolean from the
device to the host per op, so expect a slowdown (a debugging tool, not a default).
"""

from __future__ import annotations

import os
import sys

from .autograd.tensor import add_observer, remove_observer
from .backend import backend_of, dtype_name, is_floating, namespace

__all__ = ["detect_anomaly", "AnomalyError"]


class AnomalyError(RuntimeError):
    """An op produced NaN or Inf (forward) or a NaN/Inf gradient (backward) under detect_anomaly()."""


_PKG = os.path.dirname(os.path.abspath(__file__))
_ENGINE = (os.path.join(_PKG, "autograd"), os.path.abspath(__file__))


# --------------------------------------------------------------------------------------------------
# checks

def _finite(a) -> bool:
    if not is_floating(a.dtype):
        return True
    xp = namespace(a)
    r = xp.all(xp.isfinite(a))
    return bool(backend_of(r).to_numpy(r))


def _describe_bad(a) -> str:
    xp = namespace(a)
    n_nan = int(backend_of(a).to_numpy(xp.sum(xp.astype(xp.isnan(a), xp.int64))))
    n_inf = int(backend_of(a).to_numpy(xp.sum(xp.astype(xp.isinf(a), xp.int64))))
    size = 1
    for s in a.shape:
        size *= int(s)
    parts = [f"{n} {kind}" for n, kind in ((n_nan, "NaN"), (n_inf, "Inf")) if n]
    return f"{' and '.join(parts)} of {size} elements"


def _shapes(arrays) -> str:
    return ", ".join(f"{tuple(int(s) for s in a.shape)} {dtype_name(a.dtype)}" for a in arrays)


def _site() -> str:
    """The innermost caller outside the engine, and the innermost outside scratchvae (user code)."""
    f = sys._getframe(2)
    inner = user = None
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if inner is None and not fn.startswith(_ENGINE):
            inner = f"{fn}:{f.f_lineno} in {f.f_code.co_name}"
        if not fn.startswith(_PKG):
            user = f"{fn}:{f.f_lineno} in {f.f_code.co_name}"
            break
        f = f.f_back
    if inner is None:
        return "unknown"
    return inner if user is None or user == inner else f"{inner} (called from {user})"


# --------------------------------------------------------------------------------------------------
# the observer the engine calls for every op (autograd.tensor.add_observer)

class _AnomalyObserver:
    def __init__(self, check_forward, check_backward):
        self.check_forward = check_forward
        self.check_backward = check_backward
        # id(Function) -> where it was created.  Ids of dead Functions are reused by new ones, whose
        # forward overwrites the entry, so the table stays as small as the live graph's high-water mark.
        self.sites: dict = {}

    def start(self, fn, phase):
        pass

    def forward(self, fn, xs, y):
        site = _site()
        self.sites[id(fn)] = site
        if self.check_forward and not _finite(y):
            bad = [i for i, x in enumerate(xs) if not _finite(x)]
            if bad:
                origin = (f"input(s) {bad} were already non-finite when they reached it: they were not produced by "
                          "an op inside detect_anomaly() (data, a parameter, or a tensor computed before entering it)")
            else:
                origin = "all its inputs were finite, so this op is where the non-finite values were born"
            raise AnomalyError(
                f"detect_anomaly: forward of op '{fn.name}' produced {_describe_bad(y)} in its output of "
                f"shape {tuple(int(s) for s in y.shape)}; {origin}.\n  input shapes: {_shapes(xs)}\n"
                f"  created at: {site}"
            )

    def backward(self, fn, gy, gxs):
        if not self.check_backward:
            return
        for i, g in enumerate(gxs):
            if g is not None and not _finite(g):
                upstream = ("the incoming gradient was finite, so this op's backward is where it was born"
                            if _finite(gy) else "the incoming gradient was already non-finite")
                raise AnomalyError(
                    f"detect_anomaly: backward of op '{fn.name}' produced {_describe_bad(g)} in the gradient "
                    f"of input {i} (shape {tuple(int(s) for s in g.shape)}); {upstream}.\n"
                    f"  input shapes: {_shapes([t.data for t in fn.inputs or ()])}\n"
                    f"  created at: {self.sites.get(id(fn), 'unknown (created outside detect_anomaly())')}"
                )


class detect_anomaly:
    """Context manager: raise AnomalyError at the first op producing NaN/Inf (forward or backward).

    ``check_forward=False`` checks only gradients (like torch.autograd.detect_anomaly), for code that
    produces infinities on purpose in the forward pass (e.g. -inf logits that a later op masks).
    Nested uses are fine; each level checks what it was asked to.
    """

    def __init__(self, check_forward: bool = True, check_backward: bool = True):
        self._observer = _AnomalyObserver(check_forward, check_backward)

    def __enter__(self):
        add_observer(self._observer)
        return self

    def __exit__(self, *exc):
        remove_observer(self._observer)
        return False
