"""Loss functions by PyTorch's names and ``reduction=`` semantics ("mean" | "sum" | "none"), each a
composition of the engine's ops (docs/elbo.md#the-bernoulli-likelihood for why the logits form of
the binary cross-entropy is the one to prefer)."""

from __future__ import annotations

import math

from .. import functional as F
from ..autograd import Tensor, as_tensor

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "gaussian_nll_loss",
           "softmax", "log_softmax"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return loss
    return F.sum(loss) if reduction == "sum" else F.mean(loss)


def binary_cross_entropy_with_logits(logits, target, reduction: str = "mean") -> Tensor:
    """-(x l - softplus(l)) = -log Bernoulli(x | logits l), exact for any logit (the composite
    F.bernoulli_log_prob); prefer it to binary_cross_entropy, which sees only rounded probabilities."""
    return _reduce(-F.bernoulli_log_prob(as_tensor(target, logits), logits), reduction)


def binary_cross_entropy(probs, target, reduction: str = "mean") -> Tensor:
    """-(x log p + (1 - x) log(1 - p)), with each log clamped at -100 exactly as PyTorch documents
    (so p = 0 or 1 gives a finite loss of 100 per element, not inf)."""
    x = as_tensor(target, probs)
    log_p = F.clip(F.log(probs), min=-100.0)
    log_1mp = F.clip(F.log1p(-probs), min=-100.0)
    return _reduce(-(x * log_p + (1.0 - x) * log_1mp), reduction)


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """(input - target)^2."""
    return _reduce(F.square(input - as_tensor(target, input)), reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    """(log max(var, eps) + (input - target)^2 / max(var, eps)) / 2 (+ log(2 pi) / 2 if ``full``),
    as torch.nn.functional.gaussian_nll_loss (var clamped for stability, without a gradient
    below eps)."""
    v = F.clip(as_tensor(var, input), min=eps)
    loss = 0.5 * (F.log(v) + F.square(input - as_tensor(target, input)) / v)
    if full:
        loss = loss + 0.5 * math.log(2.0 * math.pi)
    return _reduce(loss, reduction)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x - logsumexp(x, dim): the log of softmax, computed without exponentiating a large number."""
    return x - F.logsumexp(x, axis=dim, keepdims=True)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(log_softmax(x, dim)): positive, summing to 1 along ``dim``."""
    return F.exp(log_softmax(x, dim))
