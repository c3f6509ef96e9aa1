"""The functional view of reverse mode, for readers of HIPS autograd and JAX: ``grad(f)`` and
``value_and_grad(f)`` turn a function returning a scalar Tensor into one returning its gradient.

The arguments named by ``argnums`` may be Tensors, or lists, tuples and dicts of them (a pytree,
nested to any depth); the gradient comes back in the same structure.  Each one is differentiated
through a fresh leaf that shares its data, so the caller's tensors and their ``.grad`` are never
touched.  docs/for_pytorch_users.md#the-functional-api.
"""

from __future__ import annotations

from .grad_mode import enable_grad
from .placement import as_tensor
from .tensor import Tensor

__all__ = ["grad", "value_and_grad"]


def _map(fn, tree):
    if isinstance(tree, dict):
        return {k: _map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(fn, v) for v in tree)
    return fn(tree)


def _leaf(x) -> Tensor:
    t = as_tensor(x)
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out.requires_grad, out._ctx = t.data, None, True, None
    return out


def _grad_of(leaf: Tensor) -> Tensor:
    """The gradient that reached ``leaf`` (zeros where it did not influence the output)."""
    from ..backend import namespace

    g = leaf.grad if leaf.grad is not None else namespace(leaf.data).zeros_like(leaf.data)
    return as_tensor(g)


def value_and_grad(f, argnums=0):
    """A function computing (f(*args), df/d args[argnums]) in one forward and one backward pass."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    def wrapped(*args, **kwargs):
        args = list(args)
        for i in nums:
            args[i] = _map(_leaf, args[i])
        with enable_grad():
            out = f(*args, **kwargs)
        if not isinstance(out, Tensor) or out.size != 1:
            raise TypeError(f"grad: f must return a single-element Tensor (a scalar loss), got "
                            f"{type(out).__name__}{'' if not isinstance(out, Tensor) else ' of shape ' + str(out.shape)}")
        if out.requires_grad:
            out.backward()
        grads = tuple(_map(_grad_of, args[i]) for i in nums)
        return out.detach(), (grads[0] if single else grads)

    return wrapped


def grad(f, argnums=0):
    """A function computing df/d args[argnums] (the gradient alone; see value_and_grad)."""
    vg = value_and_grad(f, argnums)

    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped
