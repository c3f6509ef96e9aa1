"""Anomaly mode: find the first op whose forward or backward produces NaN or Inf.

A NaN rarely fails where it is born: it flows on through the graph and surfaces later as a NaN loss
or as a confusing validation error many ops downstream.  Inside ``detect_anomaly()`` every op's
output (forward) and every gradient an op's backward returns is checked, and the first non-finite
one raises ``AnomalyError`` naming the op, its input shapes and dtypes, how many elements are NaN
or Inf, and where in the code the op was created::

    with scratchvae.anomaly.detect_anomaly():
        loss = -elbo(x, encode, decode, prior).objective.mean()
        loss.backward()

How: the engine has no hook for this, so the context manager patches ``Function.__call__`` and the
``backward`` of every Function subclass on entry and restores them on exit.  That is acceptable for
a debug mode but global: do not enter it while other threads run ops.  Each check copies one
boolean from the device to the host per op, so expect a slowdown (a debugging tool, not a default).
"""

from __future__ import annotations

import os
import sys
import threading
import weakref

from .autograd.tensor import Function
from .backend import backend_of, dtype_name, is_floating, namespace

__all__ = ["detect_anomaly", "AnomalyError"]


class AnomalyError(RuntimeError):
    """An op produced NaN or Inf (forward) or a NaN/Inf gradient (backward) under detect_anomaly()."""


_lock = threading.Lock()
_state = {"depth": 0, "forward": [], "backward": [], "orig_call": None, "orig_backward": {}}
_sites: dict = {}  # id(Function) -> "where it was created", removed when its output tensor dies

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
# the patched entry points

def _checked_call(self, *inputs):
    orig = _state["orig_call"]
    cls = type(self)
    if cls not in _state["orig_backward"]:
        _patch_backward(cls)
    out = orig(self, *inputs)
    site = None
    if out._ctx is self:  # recorded in a graph: remember where, for a backward report
        site = _site()
        key = id(self)
        _sites[key] = site
        weakref.finalize(out, _sites.pop, key, None)
    if _state["forward"][-1] and not _finite(out.data):
        bad = [i for i, t in enumerate(inputs) if not _finite(t.data)]
        if bad:
            origin = (f"input(s) {bad} were already non-finite when they reached it: they were not produced by an "
                      "op inside detect_anomaly() (data, a parameter, or a tensor computed before entering it)")
        else:
            origin = "all its inputs were finite, so this op is where the non-finite values were born"
        raise AnomalyError(
            f"detect_anomaly: forward of op '{self.name}' produced {_describe_bad(out.data)} in its output of "
            f"shape {tuple(out.shape)}; {origin}.\n  input shapes: {_shapes([t.data for t in inputs])}\n"
            f"  created at: {site or _site()}"
        )
    return out


def _make_backward(cls, orig):
    def backward(self, gy):
        gxs = orig(self, gy)
        if _state["backward"][-1]:
            for i, g in enumerate(gxs):
                if g is not None and not _finite(g):
                    inputs = self.inputs or ()
                    upstream = ("the incoming gradient was finite, so this op's backward is where it was born"
                                if _finite(gy) else "the incoming gradient was already non-finite")
                    raise AnomalyError(
                        f"detect_anomaly: backward of op '{self.name}' produced {_describe_bad(g)} in the gradient "
                        f"of input {i} (shape {tuple(int(s) for s in g.shape)}); {upstream}.\n"
                        f"  input shapes: {_shapes([t.data for t in inputs])}\n"
                        f"  created at: {_sites.get(id(self), 'unknown (created outside detect_anomaly())')}"
                    )
        return gxs

    backward.__wrapped__ = orig
    backward.__qualname__ = f"{cls.__qualname__}.backward"
    return backward


def _patch_backward(cls):
    """Wrap the backward that ``cls`` uses, in the class that defines it (once per defining class)."""
    for owner in cls.__mro__:
        if "backward" in owner.__dict__:
            break
    else:  # pragma: no cover - Function itself defines backward
        return
    if owner is not Function and owner not in _state["orig_backward"]:
        orig = owner.__dict__["backward"]
        _state["orig_backward"][owner] = orig
        owner.backward = _make_backward(owner, orig)
    _state["orig_backward"].setdefault(cls, None)  # seen; its defining class is patched


def _all_subclasses(cls):
    out, stack = [], [cls]
    while stack:
        c = stack.pop()
        for s in c.__subclasses__():
            out.append(s)
            stack.append(s)
    return out


def _install():
    _state["orig_call"] = Function.__dict__["__call__"]
    Function.__call__ = _checked_call
    for cls in _all_subclasses(Function):
        _patch_backward(cls)


def _uninstall():
    Function.__call__ = _state["orig_call"]
    for owner, orig in _state["orig_backward"].items():
        if orig is not None:
            owner.backward = orig
    _state["orig_backward"].clear()
    _state["orig_call"] = None


class detect_anomaly:
    """Context manager: raise AnomalyError at the first op producing NaN/Inf (forward or backward).

    ``check_forward=False`` checks only gradients (like torch.autograd.detect_anomaly), for code that
    produces infinities on purpose in the forward pass (e.g. -inf logits that a later op masks).
    Nested uses are fine; the innermost flags apply.  Patches the engine globally while active.
    """

    def __init__(self, check_forward: bool = True, check_backward: bool = True):
        self.check_forward = check_forward
        self.check_backward = check_backward

    def __enter__(self):
        with _lock:
            if _state["depth"] == 0:
                _install()
            _state["depth"] += 1
            _state["forward"].append(self.check_forward)
            _state["backward"].append(self.check_backward)
        return self

    def __exit__(self, *exc):
        with _lock:
            _state["forward"].pop()
            _state["backward"].pop()
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _uninstall()
        return False
