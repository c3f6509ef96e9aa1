"""The one hook between the teaching core and the fast layer (scratchvae/fast/).

A core function marked ``@replaceable`` is the reference: a plain composition of primitive ops,
or a primitive op written against the array namespace alone.  The fast layer may register a
faster implementation of the same function (fused graph nodes, CuPy kernels, NumPy ``out=``
tricks), tested equal to it.  Calls go to the fast one unless the layer is switched off by
``scratchvae.fast.disabled()`` or ``SCRATCHVAE_FAST=0``.  The core never imports the fast layer;
the fast layer registers itself when ``scratchvae`` is imported.  docs/autograd.md#the-fast-layer.
"""

from __future__ import annotations

import functools
import os

__all__ = ["replaceable", "register", "is_enabled", "set_enabled", "registered"]


class _Switch:
    on = os.environ.get("SCRATCHVAE_FAST", "1").strip() != "0"


_switch = _Switch()
_registered: list = []  # the replaceable functions that have a fast implementation, in order


def replaceable(reference):
    """Mark ``reference`` as a function the fast layer may replace; calls dispatch on the switch."""

    @functools.wraps(reference)
    def op(*args, **kwargs):
        return (op.fast if _switch.on else reference)(*args, **kwargs)

    op.reference = reference
    op.fast = reference
    return op


def register(op, fast) -> None:
    """Make ``fast`` the implementation of the replaceable function ``op`` while the layer is on."""
    if not hasattr(op, "reference"):
        raise TypeError(f"register: {op!r} is not marked @replaceable, so nothing would call the fast version")
    op.fast = fast
    if op not in _registered:
        _registered.append(op)


def registered() -> list:
    """The replaceable functions with a fast implementation (what tests/test_fast.py walks)."""
    return list(_registered)


def is_enabled() -> bool:
    return _switch.on


def set_enabled(flag: bool) -> bool:
    """Switch the fast layer on or off; returns the previous setting."""
    prev, _switch.on = _switch.on, bool(flag)
    return prev
