"""Matrix product with NumPy's matmul semantics (batched, broadcast, and the 1-D cases)."""

from __future__ import annotations

from ...backend import namespace
from ..tensor import Function, Tensor, sum_to
from ._common import as_tensor


class MatMul(Function):
    """Y = A @ B;  dA = dY @ B^T, dB = A^T @ dY, summed over broadcast batch axes.

    A 1-D operand is treated as a row (A) or column (B) vector and the added axis is removed
    again, exactly as numpy.matmul does.  docs/autograd.md#matmul.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs arrays of at least one dimension; use * for scalars")
        k_a = a.shape[-1]
        k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(
                f"shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned: the last axis of the first "
                f"({k_a}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} axis of the second ({k_b})"
            )
        self.saved = (a if self.needs[1] else None, b if self.needs[0] else None)
        return a @ b

    def backward(self, gy):
        a, b = self.saved
        shape_a, shape_b = self.inputs[0].data.shape, self.inputs[1].data.shape
        xp = namespace(gy)
        a_vec, b_vec = len(shape_a) == 1, len(shape_b) == 1
        if a_vec:
            gy = xp.expand_dims(gy, axis=-1 if (b_vec and gy.ndim == 0) else gy.ndim - 1)
        if b_vec:
            gy = xp.expand_dims(gy, axis=-1)
        ga = gb = None
        if self.needs[0]:
            b2 = xp.reshape(b, (b.shape[0], 1)) if b_vec else b
            ga = gy @ (b2.T if b2.ndim == 2 else xp.matrix_transpose(b2))
            if a_vec:
                ga = ga[..., 0, :]
            ga = sum_to(ga, shape_a)
        if self.needs[1]:
            a2 = xp.reshape(a, (1, a.shape[0])) if a_vec else a
            gb = (a2.T if a2.ndim == 2 else xp.matrix_transpose(a2)) @ gy
            if b_vec:
                gb = gb[..., 0]
            gb = sum_to(gb, shape_b)
        return ga, gb


def matmul(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    return MatMul()(a, as_tensor(b, a))
