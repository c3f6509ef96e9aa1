"""The Tensor and reverse-mode backward: what a student reads first.

A Tensor holds a backend array (``data``), an optional gradient (``grad``, a backend array of the
same shape and dtype) and ``_ctx``, the Function (autograd/function.py) that produced it.  A Function
holds its input Tensors and whatever arrays its backward needs -- never its output -- so the graph
is a DAG of strong references pointing from outputs to inputs and contains no reference cycles:
dropping the loss frees the graph at once, without the cyclic garbage collector.
``backward`` walks that DAG once, outputs before inputs.  See docs/autograd.md.
"""

from __future__ import annotations

from ..arrays import format_array
from ..backend import (
    backend_of,
    device_of,
    dtype_name,
    is_floating,
    namespace,
    resolve_backend,
)
from .grad_mode import observers

__all__ = [
    "Tensor", "Function", "tensor", "as_tensor", "no_grad", "enable_grad", "is_grad_enabled", "sum_to",
    "add_observer", "remove_observer",
]


class Tensor:
    """An array of a backend plus what reverse mode needs: ``requires_grad``, ``grad``, and the op
    that produced it.  Arithmetic operators build the graph; comparisons return plain arrays."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    __array_ufunc__ = None  # numpy_array + tensor defers to Tensor.__radd__ instead of looping
    __hash__ = object.__hash__  # == is elementwise (returns an array), identity hashing stays

    def __init__(self, data, requires_grad=False, dtype=None):
        t = tensor(data, requires_grad=requires_grad, dtype=dtype)
        self.data, self.grad, self.requires_grad, self._ctx = t.data, None, t.requires_grad, None

    # -- properties users know from NumPy / PyTorch ----------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        """The number of elements, an int as in NumPy; called as in PyTorch, ``x.size()`` is the
        shape and ``x.size(d)`` the length of axis d."""
        n = 1
        for s in self.data.shape:
            n *= s
        return _Size(n, self.shape)

    @property
    def T(self):
        return _ops.transpose(self)

    @property
    def device(self):
        return device_of(self.data)

    @property
    def backend(self):
        return backend_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    def __format__(self, spec):
        """``f"{loss:.4f}"`` formats a 0-d tensor's value, as in PyTorch; other tensors only with an empty spec."""
        if self.data.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __len__(self):
        return self.data.shape[0]

    def __repr__(self):
        extra = ""
        if self._ctx is not None:
            extra = f", grad_fn={type(self._ctx).__name__}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        body = format_array(self.numpy())
        return f"tensor({body}, dtype={dtype_name(self.dtype)}, device={self.device}{extra})"

    # -- conversions ---------------------------------------------------------------------------
    def numpy(self):
        """The data as a host NumPy array: an explicit copy for device data, the array itself for NumPy."""
        return backend_of(self.data).to_numpy(self.data)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item: only a tensor of one element converts to a Python number, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (no copy)."""
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out.requires_grad, out._ctx = self.data, None, False, None
        return out

    def requires_grad_(self, flag=True) -> "Tensor":
        if flag and not is_floating(self.dtype):
            raise ValueError(f"requires_grad: only floating tensors can require gradients, got {dtype_name(self.dtype)}")
        self.requires_grad = flag
        return self

    def to(self, backend=None, dtype=None) -> "Tensor":
        """Copy to another backend ("numpy" | "cupy" | "cpu" | "cuda" | Backend) and/or dtype
        (``x.to(np.float64)`` works too, as in PyTorch).  Differentiable in dtype only."""
        if dtype is None and backend is not None and not isinstance(backend, str) and _is_dtype(backend):
            backend, dtype = None, backend
        out = self
        if backend is not None:
            target = resolve_backend(backend)
            src = backend_of(self.data)
            if target is not src:
                data = target.from_numpy(src.to_numpy(self.data))
                out = Tensor.__new__(Tensor)
                out.data, out.grad, out.requires_grad, out._ctx = data, None, self.requires_grad, None
        if dtype is not None:
            out = _ops.astype(out, dtype)
        return out

    def astype(self, dtype) -> "Tensor":
        return _ops.astype(self, dtype)

    # -- reverse mode --------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (times ``grad`` for non-scalars).

        Visits each op once, outputs before inputs, in an order found without recursion (so chains
        of any length work); the gradients arriving at a tensor used several times are summed
        before they flow on.  The graph is released afterwards unless ``retain_graph``.
        docs/autograd.md#backward.
        """
        grad = _output_grad(self, grad)
        if self._ctx is None:  # backward of a leaf itself: d self / d self = 1
            return _accumulate_leaf(self, grad)
        order = _topological_order(self)  # the non-leaf tensors, inputs before outputs
        grads = {id(self): grad}
        for t in reversed(order):
            gy = grads.pop(id(t), None)
            if gy is None:  # no gradient reached t (its consumers' backward returned None)
                continue
            ctx = t._ctx
            gxs = _backward_of(ctx, gy) if observers else ctx.backward(gy)
            for x, gx, need in zip(ctx.inputs, gxs, ctx.needs):
                if not need or gx is None:
                    continue
                if x._ctx is None:  # a leaf: its .grad accumulates
                    _accumulate_leaf(x, gx)
                else:
                    prev = grads.get(id(x))
                    grads[id(x)] = gx if prev is None else prev + gx
        if not retain_graph:
            for t in order:
                t._ctx.release()

    # -- arithmetic operators (defined here, not patched in) -------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        return _ops.pow(self, exponent)

    def __rpow__(self, base):
        return _ops.rpow(self, base)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    # comparisons return plain backend arrays (masks), never Tensors
    def __lt__(self, other):
        return self.data < _raw(other)

    def __le__(self, other):
        return self.data <= _raw(other)

    def __gt__(self, other):
        return self.data > _raw(other)

    def __ge__(self, other):
        return self.data >= _raw(other)

    def __eq__(self, other):
        return self.data == _raw(other)

    def __ne__(self, other):
        return self.data != _raw(other)

    # -- methods mirroring scratchvae.functional (axis=/keepdims= or PyTorch's dim=/keepdim=) --------
    def sum(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _ops.sum(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _ops.mean(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None):
        return _ops.max(self, axis, keepdims, dim=dim)

    def min(self, axis=None, keepdims=False, *, dim=None):
        return _ops.min(self, axis, keepdims, dim=dim)

    def amax(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _ops.amax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def amin(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _ops.amin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def logsumexp(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _ops.logsumexp(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def log1p(self):
        return _ops.log1p(self)

    def expm1(self):
        return _ops.expm1(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def softplus(self):
        return _ops.softplus(self)

    def abs(self):
        return _ops.abs(self)

    def square(self):
        return _ops.square(self)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def permute(self, *axes):
        return self.transpose(*axes)

    def broadcast_to(self, shape):
        return _ops.broadcast_to(self, shape)

    def clip(self, min=None, max=None):
        return _ops.clip(self, min, max)

    clamp = clip

    # -- PyTorch's spellings of the same things ---------------------------------------------------
    def view(self, *shape):
        """reshape under PyTorch's name (the engine's arrays have no separate view semantics)."""
        return self.reshape(*shape)

    def numel(self) -> int:
        return self.size

    def dim(self) -> int:
        return self.ndim

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge the axes start_dim..end_dim (torch.flatten: from the first axis by default)."""
        return _ops.flatten(self, start_dim, end_dim)

    def cpu(self):
        return self.to("numpy")

    def cuda(self):
        return self.to("cupy")


class _Size(int):
    """An int (NumPy's ``size``) that can also be called (PyTorch's ``size()``)."""

    def __new__(cls, n, shape):
        out = super().__new__(cls, n)
        out.shape = shape
        return out

    def __call__(self, dim=None):
        return self.shape if dim is None else self.shape[dim]


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _is_dtype(x) -> bool:
    try:
        dtype_name(x)
    except ValueError:
        return False
    return True


def _output_grad(out: Tensor, grad):
    """The gradient backward starts from: 1 for a single-element output, else ``grad`` (checked)."""
    if not out.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph; create the leaves with "
            "requires_grad=True (and not under no_grad) before computing it"
        )
    if grad is None:
        if out.size != 1:
            raise RuntimeError(
                f"backward: the output has shape {out.shape}; backward() without a gradient is only "
                "defined for a single-element output -- reduce it first (e.g. loss.sum()) or pass "
                "grad= with the output's shape"
            )
        return namespace(out.data).ones_like(out.data)
    grad = grad.data if isinstance(grad, Tensor) else grad
    if tuple(grad.shape) != out.shape:
        raise ValueError(f"backward: grad has shape {tuple(grad.shape)} but the output has shape {out.shape}")
    return grad


def _backward_of(ctx, gy):
    """``ctx.backward(gy)``, with the observers (profiler, anomaly mode) told before and after."""
    for o in observers:
        o.start(ctx, "backward")
    gxs = ctx.backward(gy)
    for o in observers:
        o.backward(ctx, gy, gxs)
    return gxs


def _accumulate_leaf(x: Tensor, g):
    dt = x.data.dtype
    if g.dtype is not dt and g.dtype != dt:  # an input promoted to a wider dtype inside the graph
        g = namespace(g).astype(g, dt)
    # Out of place: `g` may be shared with another leaf's grad (add passes gy to both inputs).
    x.grad = g if x.grad is None else x.grad + g


def _topological_order(root: Tensor):
    """The non-leaf tensors reachable from ``root`` that need a gradient, inputs before outputs
    (an iterative depth-first search: O(nodes + edges), no recursion)."""
    order = []
    seen = set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        ctx = t._ctx
        if ctx.inputs is None:
            raise RuntimeError(
                f"backward: the graph through a tensor produced by {type(ctx).__name__} was already freed "
                "by an earlier backward(); pass retain_graph=True to the first backward() to "
                "backpropagate through it twice"
            )
        stack.append((t, True))
        for p, need in zip(ctx.inputs, ctx.needs):
            if need and p._ctx is not None and id(p) not in seen:
                stack.append((p, False))
    return order


# Last: these modules import Tensor from this one.
from .function import Function, sum_to  # noqa: E402,F401
from .placement import as_tensor, tensor  # noqa: E402,F401
from .grad_mode import add_observer, enable_grad, is_grad_enabled, no_grad, remove_observer  # noqa: E402,F401
from . import ops as _ops  # noqa: E402,I001
