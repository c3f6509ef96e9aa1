"""Function: one op = ``forward`` on arrays + ``backward`` on gradients; and ``sum_to``, the one
helper every backward uses for broadcasting.  docs/autograd.md#the-graph.
"""

from __future__ import annotations

from ..arrays import as_array, check_same_device
from ..backend import namespace
from .grad_mode import grad_mode, observers
from .tensor import Tensor

__all__ = ["Function", "sum_to"]


class Function:
    """Base class of every op.

    Subclasses implement ``forward(*arrays) -> array`` and ``backward(gy) -> tuple of gradients``
    (one per input, ``None`` where ``self.needs[i]`` is False).  ``self.saved`` holds what backward
    needs -- never the output, so the graph has no reference cycles; ``self.needs`` says which
    inputs want a gradient.  Call an op with ``Op(**params)(*tensors)``, or through its function
    in ``scratchvae.functional``.
    """

    __slots__ = ("inputs", "saved", "needs")

    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, gy):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def __call__(self, *inputs: Tensor) -> Tensor:
        xs = [t.data for t in inputs]
        for o in observers:
            o.start(self, "forward")
        try:
            if len(xs) > 1:
                check_same_device(xs)
            self.needs = tuple([t.requires_grad for t in inputs]) if grad_mode.enabled else (False,) * len(xs)
            y = self.forward(*xs)
            if type(y) is not type(xs[0]):  # e.g. a NumPy reduction to 0-d returns a scalar, not an array
                y = as_array(y)
        except (AttributeError, ValueError, TypeError, IndexError) as e:
            raise _op_error(self, inputs, e) from e
        for o in observers:
            o.forward(self, xs, y)
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out.requires_grad, out._ctx = y, None, True in self.needs, None
        if out.requires_grad:  # record the edge to the inputs only when a gradient will flow
            self.inputs, out._ctx = inputs, self
        return out

    def release(self):
        """Drop the inputs and saved arrays after backward (unless retain_graph)."""
        self.inputs = None
        self.saved = None


def sum_to(g, shape):
    """Sum a broadcast gradient ``g`` back down to ``shape`` (the adjoint of broadcast_to).

    Leading axes that broadcasting added are summed away; axes where ``shape`` has size 1 are summed
    with keepdims.  docs/autograd.md#broadcasting.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    xp = namespace(g)
    g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, shape) if g.shape != shape else g


def _op_error(op, inputs, e):
    """The error an op raises: a plain array where a Tensor belongs is named as such, with what to
    do; any other error gets the op's name and input shapes in front."""
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            return TypeError(
                f"{op.name}: input {i} is a {type(t).__module__}.{type(t).__name__}, not a Tensor; wrap it "
                "with scratchvae.tensor(x) first (that places it on the current backend)"
            )
    shapes = ", ".join(str(tuple(t.data.shape)) for t in inputs)
    return type(e)(f"{op.name}: {e} (input shapes {shapes})")
