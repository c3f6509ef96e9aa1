"""Every differentiable op, one class per op (forward on arrays, backward on gradients), grouped by
kind into short modules.  The public functions are re-exported as ``scratchvae.functional``."""

from .arithmetic import add, div, mul, neg, pow, rpow, sub
from .elementwise import (
    abs, astype, exp, expm1, log, log1p, log_sigmoid, relu, sigmoid, softplus, sqrt, square, tanh,
)
from .linalg import cholesky, diagonal, logdet_spd, matmul, solve, solve_triangular, tril
from .reduce import amax, amin, logsumexp, max, mean, min, sum
from .select import clamp, clip, logaddexp, maximum, minimum, where
from .compare import eq, ge, gt, le, lt, ne
from .composites import LOG_2PI, bernoulli_log_prob, normal_kl_standard, normal_log_density, reparameterize
from .shape import (
    broadcast_to, cat, concat, concatenate, expand_dims, flatten, getitem, permute, reshape, squeeze,
    stack, transpose, unsqueeze,
)

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "rpow",
    "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "tanh", "sigmoid", "relu", "softplus",
    "log_sigmoid", "astype",
    "LOG_2PI", "bernoulli_log_prob", "normal_kl_standard", "reparameterize", "normal_log_density",
    "matmul", "cholesky", "solve", "solve_triangular", "diagonal", "tril", "logdet_spd",
    "sum", "mean", "max", "min", "amax", "amin", "logsumexp",
    "where", "clip", "clamp", "maximum", "minimum", "logaddexp",
    "le", "lt", "ge", "gt", "eq", "ne",
    "reshape", "transpose", "permute", "broadcast_to", "getitem", "concatenate", "concat", "cat", "stack",
    "expand_dims", "unsqueeze", "squeeze", "flatten",
]
