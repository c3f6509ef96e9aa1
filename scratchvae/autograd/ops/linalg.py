"""Matrix product with NumPy's matmul semantics (batched, broadcast, and the 1-D cases)."""

from __future__ import annotations

from ...backend import namespace
from ..tensor import Function, Tensor, sum_to
from .common import constant


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
        a = constant(a, b)
    return MatMul()(a, constant(b, a))


def _mT(xp, a):
    return a.T if a.ndim == 2 else xp.matrix_transpose(a)


def _symmetrize(xp, a):
    return 0.5 * (a + _mT(xp, a))


class Cholesky(Function):
    """L = chol(A) for symmetric positive definite A (lower triangular, A = L L^T).

    Backward (Murray 2016, eq. 10): with Phi(X) = tril(X) with its diagonal halved,
    dA = sym(L^-T Phi(L^T dL) L^-1).  docs/autograd.md#matrix-functions.
    """

    def forward(self, a):
        xp = namespace(a)
        try:
            L = xp.linalg.cholesky(a)
        except Exception as e:  # numpy LinAlgError, cupy returns NaNs instead (checked below)
            raise ValueError(f"the matrix is not positive definite ({e})") from e
        self.saved = L
        return L

    def backward(self, gL):
        xp = namespace(gL)
        L = self.saved
        n = L.shape[-1]
        P = xp.tril(_mT(xp, L) @ gL)
        P = P - 0.5 * P * xp.eye(n, dtype=L.dtype, device=getattr(L, "device", None))
        # S = L^-T P L^-1, by two solves instead of an inverse
        S = xp.linalg.solve(_mT(xp, L), P)
        S = _mT(xp, xp.linalg.solve(_mT(xp, L), _mT(xp, S)))
        return (_symmetrize(xp, S),)


class Solve(Function):
    """X = A^-1 B (B of shape (..., n, k));  dB = A^-T dX,  dA = -dB X^T."""

    def forward(self, a, b):
        if b.ndim < 2:
            raise ValueError(f"solve needs B of shape (..., n, k), got {tuple(b.shape)}; use b[:, None] for a vector")
        x = namespace(a).linalg.solve(a, b)
        self.saved = (a, x)
        return x

    def backward(self, gx):
        xp = namespace(gx)
        a, x = self.saved
        gb = xp.linalg.solve(_mT(xp, a), gx)
        ga = -gb @ _mT(xp, x)
        return (sum_to(ga, self.inputs[0].data.shape) if self.needs[0] else None,
                sum_to(gb, self.inputs[1].data.shape) if self.needs[1] else None)


class SolveTriangular(Function):
    """X = T^-1 B with T = tril(A) (lower=True) or triu(A) (B of shape (..., n, k));
    dB = T^-T dX,  dA = -tril(dB X^T) (or triu): only the triangle that is read gets a gradient.

    The other triangle of A is never read (as in scipy.linalg.solve_triangular), so its gradient
    is exactly 0 and a gradient step keeps a triangular factor triangular.  The Array API has no
    triangular solver, so the forward solves with T by LU; for a triangular T that is the
    substitution's answer to rounding.  docs/autograd.md#matrix-functions.
    """

    __slots__ = ("lower",)

    def __init__(self, lower=True):
        self.lower = lower

    def forward(self, a, b):
        if b.ndim < 2:
            raise ValueError(
                f"solve_triangular needs B of shape (..., n, k), got {tuple(b.shape)}; use b[:, None] for a vector")
        xp = namespace(a)
        t = xp.tril(a) if self.lower else xp.triu(a)
        x = xp.linalg.solve(t, b)
        self.saved = (t, x if self.needs[0] else None)
        return x

    def backward(self, gx):
        xp = namespace(gx)
        t, x = self.saved
        gb = xp.linalg.solve(_mT(xp, t), gx)
        ga = None
        if self.needs[0]:
            ga = -gb @ _mT(xp, x)
            ga = sum_to(xp.tril(ga) if self.lower else xp.triu(ga), self.inputs[0].data.shape)
        return (ga, sum_to(gb, self.inputs[1].data.shape) if self.needs[1] else None)


class Diagonal(Function):
    """d = diag(A) over the last two axes of A (..., m, n), d of shape (..., min(m, n));
    dA = dd placed on the diagonal of an m x n zero matrix."""

    def forward(self, a):
        self.saved = a.shape[-2:]
        return namespace(a).linalg.diagonal(a)

    def backward(self, gd):
        xp = namespace(gd)
        m, n = self.saved
        eye = xp.eye(m, n, dtype=gd.dtype, device=getattr(gd, "device", None))
        # d_i sits at (i, i): along the rows when m <= n (i runs over rows), else along the columns.
        return ((gd[..., :, None] if m <= n else gd[..., None, :]) * eye,)


class Tril(Function):
    """Lower triangle (k-th diagonal and below);  the gradient is the lower triangle of dY."""

    __slots__ = ("k",)

    def __init__(self, k=0):
        self.k = k

    def forward(self, a):
        if a.ndim < 2:
            raise ValueError(f"tril needs a (..., m, n) matrix, got shape {tuple(a.shape)}")
        return namespace(a).tril(a, k=self.k)

    def backward(self, gy):
        return (namespace(gy).tril(gy, k=self.k),)


def cholesky(a) -> Tensor:
    """Lower Cholesky factor L of a symmetric positive definite matrix (A = L L^T)."""
    return Cholesky()(a)


def solve(a, b) -> Tensor:
    """X with A X = B."""
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return Solve()(a, constant(b, a))


def solve_triangular(a, b, lower=True) -> Tensor:
    """X with T X = B, where T is the lower (``lower=True``) or upper triangle of A; the other
    triangle is ignored and gets no gradient."""
    if not isinstance(a, Tensor):
        a = constant(a, b)
    return SolveTriangular(lower)(a, constant(b, a))


def diagonal(a) -> Tensor:
    return Diagonal()(a)


def tril(a, k=0) -> Tensor:
    return Tril(k)(a)


def logdet_spd(a) -> Tensor:
    """log det A for symmetric positive definite A, as 2 sum log diag(chol(A))."""
    from .elementwise import log
    from .reduce import sum

    return 2.0 * sum(log(diagonal(cholesky(a))), axis=-1)
