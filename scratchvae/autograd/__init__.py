"""Reverse-mode automatic differentiation over backend arrays (docs/autograd.md)."""

from .tensor import Function, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad, sum_to, tensor

__all__ = ["Tensor", "Function", "tensor", "as_tensor", "no_grad", "enable_grad", "is_grad_enabled", "sum_to"]
