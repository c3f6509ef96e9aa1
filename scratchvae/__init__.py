"""scratchvae: variational autoencoders on a from-scratch autograd over NumPy and CuPy.

``import scratchvae`` imports only NumPy and array-api-compat; CuPy, matplotlib and tqdm are
imported where they are used.
"""

from . import anomaly, checkpoint, distributions, functional, nn, optim
from .autograd import Function, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .backend import (
    BackendError,
    get_backend,
    get_default_dtype,
    resolve_backend,
    set_backend,
    set_default_dtype,
    to_numpy,
    using_backend,
)
from .checkpoint import load, save
from .distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence, register_kl
from .elbo import ELBO, iwae_bound, log_likelihood
from .gradcheck import gradcheck
from .profiler import profile
from .random import Generator, manual_seed
from .autograd.grad import grad, value_and_grad
from .save_image import save_image
from . import cuda
from .devices import device
from .creation import ones, ones_like, rand, rand_like, randn, randn_like, zeros, zeros_like
from .functional import (
    abs, amax, amin, cat, clip, exp, expm1, log, log1p, logsumexp, matmul, maximum, mean, minimum, relu, sigmoid,
    softplus, sqrt, square, stack, sum, tanh, where,
)
from .functional import clamp, eq, ge, gt, le, logaddexp, lt, max, min, ne, pow

from . import fast  # noqa: E402,I001  (last: registers the fast layer against the core it replaces)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "tensor", "as_tensor", "no_grad", "enable_grad", "is_grad_enabled",
    "set_backend", "get_backend", "resolve_backend", "set_default_dtype", "get_default_dtype", "using_backend", "to_numpy",
    "BackendError",
    "manual_seed", "Generator", "gradcheck", "profile", "functional", "__version__",
    "nn", "optim", "checkpoint", "save", "load",
    "distributions", "Normal", "Bernoulli", "Categorical", "Independent", "kl_divergence", "register_kl",
    "ELBO", "iwae_bound", "log_likelihood", "anomaly", "fast",
    "grad", "value_and_grad", "save_image",
    "randn", "rand", "zeros", "ones", "randn_like", "rand_like", "zeros_like", "ones_like",
    "abs", "amax", "amin", "cat", "clip", "exp", "expm1", "log", "log1p", "logsumexp", "matmul", "maximum",
    "mean", "minimum", "relu", "sigmoid", "softplus", "sqrt", "square", "stack", "sum", "tanh", "where",
    "cuda", "device", "clamp", "eq", "ge", "gt", "le", "lt", "max", "min", "ne", "pow",
    "logaddexp",
]
