"""Learning-rate schedules stepped once per epoch: step decay and the IWAE paper's schedule
(docs/nn.md#learning-rate-schedules).

As in PyTorch, creating a scheduler sets the epoch-0 rate, and ``scheduler.step()`` after each
epoch sets the rate of the next one.
"""

from __future__ import annotations

__all__ = ["LRScheduler", "StepLR", "LambdaLR", "IWAESchedule", "iwae_schedule", "IWAE_EPOCHS"]

#: Epochs in the IWAE schedule: sum of 3^i for i = 0..7 = 3280.
IWAE_EPOCHS = sum(3 ** i for i in range(8))


def iwae_schedule(epoch: int, base_lr: float = 1e-3) -> float:
    """The learning rate of ``epoch`` (0-based) in Burda et al. (2016)'s schedule: stage i = 0..7
    lasts 3^i epochs at base_lr 10^(-i/7), 3280 epochs in all; later epochs stay at the last rate.

    Stage i starts at epoch (3^i - 1) / 2: epochs 0 | 1-3 | 4-12 | 13-39 | 40-120 | 121-363 | 364-1092 | 1093-3279.
    """
    if epoch < 0:
        raise ValueError(f"iwae_schedule: epoch must be >= 0, got {epoch}")
    i, start = 0, 0
    while i < 7 and epoch >= start + 3 ** i:  # integer arithmetic: no float-log rounding at boundaries
        start += 3 ** i
        i += 1
    return base_lr * 10.0 ** (-i / 7)


class LRScheduler:
    """Base class: sets ``group["lr"] = get_lr()`` for every parameter group of ``optimizer``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def get_lr(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self):
        lrs = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def step(self):
        """Advance one epoch and set the new rate(s)."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (and functions, which cannot be saved)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state_dict: dict):
        """Restore the epoch counter and settings; the optimizer's own state_dict restores its rates."""
        self.__dict__.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in state_dict.items()})


class StepLR(LRScheduler):
    """lr(epoch) = base_lr gamma^floor(epoch / step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self):
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr(epoch) = base_lr lr_lambda(epoch) (the function is not saved in state_dict)."""

    def __init__(self, optimizer, lr_lambda):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def get_lr(self):
        return [b * self.lr_lambda(self.last_epoch) for b in self.base_lrs]


class IWAESchedule(LRScheduler):
    """lr(epoch) = iwae_schedule(epoch, base_lr): with Adam(lr=1e-3) this is the IWAE paper's
    schedule (3^i epochs at 1e-3 10^(-i/7), i = 0..7)."""

    def get_lr(self):
        return [iwae_schedule(self.last_epoch, b) for b in self.base_lrs]
