"""Ops that move elements without arithmetic: reshape, transpose, broadcast_to, indexing,
concatenate and stack.  Their backward moves the gradient back the same way."""

from __future__ import annotations

from ...arrays import index_array, is_integer_scalar
from ...backend import backend_of, namespace
from ..tensor import Function, Tensor, sum_to
from .common import check_axis, torch_alias


class Reshape(Function):
    """y = x viewed with another shape;  gx = gy reshaped back."""

    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.saved = x.shape
        return namespace(x).reshape(x, self.shape)

    def backward(self, gy):
        return (namespace(gy).reshape(gy, self.saved),)


class Transpose(Function):
    """y = x with axes permuted (reversed when ``axes`` is None);  gx = gy with the inverse permutation."""

    __slots__ = ("axes",)

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = self.axes
        if axes is None:
            axes = tuple(range(x.ndim))[::-1]
        self.axes = tuple(check_axis(a, x.ndim) for a in axes)
        if sorted(self.axes) != list(range(x.ndim)):
            raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes")
        return namespace(x).permute_dims(x, self.axes)

    def backward(self, gy):
        inverse = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))
        return (namespace(gy).permute_dims(gy, inverse),)


class BroadcastTo(Function):
    """y = x broadcast to ``shape``;  gx = sum_to(gy, x.shape)."""

    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.saved = x.shape
        return namespace(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return (sum_to(gy, self.saved),)


def _is_basic(index) -> bool:
    """True for integers (Python or NumPy), slices, None and Ellipsis: indices that never repeat an element."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (slice, type(None), type(Ellipsis))) or is_integer_scalar(i) for i in items)


class GetItem(Function):
    """y = x[index];  gx = zeros with gy written (basic) or scatter-added (integer arrays) at ``index``."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.saved = x.shape
        return x[self.index]

    def backward(self, gy):
        xp = namespace(gy)
        gx = xp.zeros(self.saved, dtype=gy.dtype, device=getattr(gy, "device", None))
        if _is_basic(self.index):
            index = self.index
            if None in index:  # setitem takes no newaxis: drop it and the size-1 axes it made
                index = tuple(i for i in index if i is not None)
                gy = xp.reshape(gy, gx[index].shape)
            gx[index] = gy
            return (gx,)
        # Integer-array indices may repeat an element, whose gradients must add up.
        return (backend_of(gy).scatter_add(gx, self.index, gy),)


class Take(Function):
    """y = x[index] for one integer index array along axis 0 (a gather, e.g. a minibatch);
    gx = zeros with gy scatter-added at ``index`` (repeated rows add up)."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.saved = x.shape
        return namespace(x).take(x, self.index, axis=0)

    def backward(self, gy):
        xp = namespace(gy)
        gx = xp.zeros(self.saved, dtype=gy.dtype, device=getattr(gy, "device", None))
        return (backend_of(gy).scatter_add(gx, self.index, gy),)


class Concat(Function):
    """y = concatenate(xs, axis);  each gx is the slice of gy that came from it."""

    __slots__ = ("axis",)

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        if xs[0].ndim == 0:
            raise ValueError("0-d arrays cannot be concatenated; stack them instead")
        self.axis = check_axis(self.axis, xs[0].ndim)
        self.saved = [x.shape[self.axis] for x in xs]
        return namespace(xs[0]).concat(list(xs), axis=self.axis)

    def backward(self, gy):
        out, start = [], 0
        lead = (slice(None),) * self.axis
        for n, need in zip(self.saved, self.needs):
            out.append(gy[lead + (slice(start, start + n), Ellipsis)] if need else None)
            start += n
        return tuple(out)


class Stack(Function):
    """y = stack(xs, axis);  each gx is gy indexed at its position along ``axis``."""

    __slots__ = ("axis",)

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        self.axis = check_axis(self.axis, xs[0].ndim + 1)
        return namespace(xs[0]).stack(list(xs), axis=self.axis)

    def backward(self, gy):
        lead = (slice(None),) * self.axis
        return tuple(gy[lead + (i, Ellipsis)] if need else None for i, need in enumerate(self.needs))


def reshape(x, shape) -> Tensor:
    if is_integer_scalar(shape):
        shape = (shape,)
    return Reshape(tuple(int(s) for s in shape))(x)


def transpose(x, axes=None) -> Tensor:
    return Transpose(None if axes is None else tuple(axes))(x)


permute = transpose


def broadcast_to(x, shape) -> Tensor:
    return BroadcastTo(shape)(x)


def _device_index(index, like):
    """Host integer index arrays (NumPy, lists) moved to ``like``'s backend; Tensors unwrapped."""
    def one(i):
        return i.data if isinstance(i, Tensor) else index_array(i, like)

    if isinstance(index, tuple):
        return tuple(one(i) for i in index)
    return one(index)


def getitem(x, index) -> Tensor:
    """x[index] for basic slicing (ints, slices, None, ...) and integer-array (gather) indexing."""
    if _is_basic(index):
        # NumPy fills missing trailing axes implicitly; the Array API asks for an explicit "...".
        index = index if isinstance(index, tuple) else (index,)
        if Ellipsis not in index:
            index = index + (Ellipsis,)
        return GetItem(index)(x)
    index = _device_index(index, x.data)
    if not isinstance(index, tuple) and getattr(index, "ndim", 0) == 1 and "int" in str(index.dtype):
        return Take(index)(x)
    return GetItem(index)(x)


def concatenate(tensors, axis=None, *, dim=None) -> Tensor:
    """Join along ``axis`` (PyTorch: ``dim``), default 0."""
    return Concat(torch_alias(axis, dim, "axis", "dim", 0))(*tensors)


concat = cat = concatenate


def stack(tensors, axis=None, *, dim=None) -> Tensor:
    return Stack(torch_alias(axis, dim, "axis", "dim", 0))(*tensors)


def expand_dims(x, axis) -> Tensor:
    shape = list(x.shape)
    shape.insert(check_axis(axis, len(shape) + 1, "expand_dims: axis"), 1)
    return reshape(x, tuple(shape))


def unsqueeze(x, dim) -> Tensor:
    """A new axis of size 1 at ``dim`` (torch.unsqueeze; NumPy: expand_dims)."""
    return expand_dims(x, dim)


def squeeze(x, axis=None, *, dim=None) -> Tensor:
    """Remove the size-1 axis ``axis`` (PyTorch: ``dim``), or every size-1 axis when none is given."""
    axis = torch_alias(axis, dim, "axis", "dim")
    shape = list(x.shape)
    if axis is None:
        return reshape(x, tuple(s for s in shape if s != 1))
    axis = check_axis(axis, len(shape), "squeeze: axis")
    if shape[axis] != 1:
        raise ValueError(f"squeeze: axis {axis} has size {shape[axis]}, not 1 (shape {tuple(shape)})")
    del shape[axis]
    return reshape(x, tuple(shape))


def flatten(x, start_axis=1, end_axis=-1) -> Tensor:
    """Merge the axes ``start_axis`` to ``end_axis`` into one (keeps the batch axis by default, as
    nn.Flatten does; Tensor.flatten() starts at 0, as torch.flatten does)."""
    shape = x.shape
    nd = max(len(shape), 1)
    start = check_axis(start_axis, nd, "flatten: start_axis")
    end = check_axis(end_axis, nd, "flatten: end_axis")
    if end < start:
        raise ValueError(f"flatten: end_axis {end_axis} comes before start_axis {start_axis}")
    n = 1
    for s in shape[start:end + 1]:
        n *= s
    return reshape(x, tuple(shape[:start]) + (n,) + tuple(shape[end + 1:]))
