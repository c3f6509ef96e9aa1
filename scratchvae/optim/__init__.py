"""Optimizers, gradient clipping and learning-rate schedules (docs/nn.md#optimizers)."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .lr_scheduler import IWAESchedule, LambdaLR, StepLR, iwae_schedule
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "lr_scheduler",
           "StepLR", "LambdaLR", "IWAESchedule", "iwae_schedule"]
