"""What a training run depends on: :class:`TrainConfig`, its checks, and :func:`make_config`.

A config is the defaults, then a preset (``scratchvae.models.presets``), then the caller's
overrides.  It is saved as the run folder's config.json (``run_folder.py``) and rebuilt from there by
``--resume`` and ``evaluate``.  Field meanings: docs/training.md#options.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..models.presets import get_preset

__all__ = ["TrainConfig", "check_count", "make_config"]


def check_count(name: str, value, minimum: int = 1, unset_ok: bool = False):
    """``value`` when it is an integer >= ``minimum`` (or None with ``unset_ok``), else a ValueError
    naming ``name``: the one check of every count (epochs, batch sizes, --n-test, --k, -n) that the
    config and every command apply."""
    if value is None and unset_ok:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}{' (or unset for all)' if unset_ok else ''}, got {value!r}")
    return value


_FLOATS = ("lr", "beta", "warmup_epochs", "free_bits", "adam_eps", "weight_decay", "momentum", "gamma", "clip_grad")

_MODEL_DEFAULTS = {"hidden": [400], "latent_dim": 20, "activation": "relu", "likelihood": "bernoulli",
                   "gaussian_scale": "learned", "fixed_scale": 0.1, "encoder_head": "log_var", "init": "pytorch",
                   "hidden2": [], "latent_dim2": 0}  # latent_dim2 > 0: a second stochastic layer z1 -> z2
_CHOICES = {
    "data": ("auto", "embedded", "mnist"),
    "binarize": ("grey", "dynamic", "fixed"),
    "output_bias": ("zero", "pixel_means"),
    "optimizer": ("adam", "adamw", "sgd"),
    "schedule": ("constant", "step", "iwae"),
    "loss_reduction": ("mean", "sum"),
    "objective": ("elbo", "iwae"),
    "grad_estimator": ("pathwise", "stl", "dreg"),
    "backend": ("numpy", "cupy", "array_api_strict"),
    "dtype": ("float32", "float64"),
    "budget_clock": ("wall", "cpu"),
}


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as config.json.  Field meanings: docs/training.md#options."""

    preset: str | None = None
    model: dict = field(default_factory=lambda: dict(_MODEL_DEFAULTS))
    output_bias: str = "zero"
    # data
    data: str = "auto"
    data_dir: str | None = None
    verify_data: bool = True
    binarize: str = "dynamic"
    bernoulli_on_grey: bool = False
    validation: int = 0
    n_train: int | None = None
    n_test: int | None = None
    # objective
    beta: float = 1.0
    warmup_epochs: float = 0.0
    free_bits: float = 0.0
    n_samples: int = 1          # k: the draws per image, averaged (elbo) or importance-weighted (iwae)
    objective: str = "elbo"
    grad_estimator: str = "pathwise"
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    drop_last: bool = False
    optimizer: str = "adam"
    lr: float = 1e-3
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    step_size: int = 10
    gamma: float = 0.5
    clip_grad: float | None = None
    loss_reduction: str = "mean"
    # the run
    seed: int = 0
    backend: str = "numpy"
    dtype: str = "float32"
    validate_args: bool = True
    eval_every: int = 1
    eval_batch_size: int = 1000
    time_budget: float | None = None
    budget_clock: str = "wall"  # what time_budget counts: "wall" seconds or this process's "cpu" seconds
    figures: bool = True
    keep_checkpoints: int = 2

    def check(self) -> TrainConfig:
        """Raise ValueError naming the first option that is out of range or inconsistent."""
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(choices)}")
        unknown = set(self.model) - set(_MODEL_DEFAULTS) - {"min_scale"}
        if unknown:
            raise ValueError(f"unknown model option(s) {sorted(unknown)}; known: {sorted(_MODEL_DEFAULTS)}")
        for name in ("epochs", "batch_size", "n_samples", "eval_every", "eval_batch_size", "step_size",
                     "keep_checkpoints"):
            check_count(name, getattr(self, name))
        for name in ("n_train", "n_test"):
            check_count(name, getattr(self, name), unset_ok=True)
        floats = [(name, getattr(self, name)) for name in _FLOATS] + [("fixed_scale", self.model.get("fixed_scale"))]
        for name, v in floats:
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not isinstance(self.validation, int) or self.validation < 0:
            raise ValueError(f"validation must be a number of images >= 0, got {self.validation!r}")
        checks = [("lr", self.lr > 0), ("beta", self.beta >= 0), ("warmup_epochs", self.warmup_epochs >= 0),
                  ("free_bits", self.free_bits >= 0), ("adam_eps", self.adam_eps >= 0),
                  ("weight_decay", self.weight_decay >= 0), ("momentum", self.momentum >= 0), ("gamma", self.gamma > 0),
                  ("fixed_scale", self.model.get("fixed_scale", 0.1) > 0),
                  ("clip_grad", self.clip_grad is None or self.clip_grad > 0),
                  ("time_budget", self.time_budget is None or self.time_budget > 0)]
        for name, ok in checks:
            if not ok:
                value = self.model.get(name) if name == "fixed_scale" else getattr(self, name)
                raise ValueError(f"{name} is out of range: {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if (self.objective, self.grad_estimator) == ("elbo", "dreg"):
            raise ValueError("grad_estimator 'dreg' is the IWAE bound's estimator; use --objective iwae, or 'stl' "
                             "for the ELBO")
        if (self.objective, self.grad_estimator) != ("elbo", "pathwise") and (
                self.beta != 1.0 or self.warmup_epochs or self.free_bits):
            raise ValueError(f"beta, warm-up and free bits weight the analytic KL of the pathwise ELBO; objective "
                             f"{self.objective!r} with grad_estimator {self.grad_estimator!r} has no separate KL "
                             "term: leave them at 1, 0 and 0")
        m = self.model
        if m.get("likelihood", "bernoulli") == "bernoulli" and self.binarize == "grey" and not self.bernoulli_on_grey:
            raise ValueError(
                "a Bernoulli likelihood on grey levels (binarize 'grey') is not a normalized likelihood "
                "(docs/data.md): binarize the data (--binarize dynamic), use --likelihood gaussian, or pass "
                "--bernoulli-on-grey to accept the cross-entropy loss as pytorch/examples does")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config saved as ``values`` (config.json, a checkpoint's metadata), not yet checked; keys
        that are not fields (``data_source``) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def grey_bernoulli(self) -> bool:
        """True when a Bernoulli likelihood is fitted to grey levels (an accepted cross-entropy, not a likelihood)."""
        return self.model.get("likelihood", "bernoulli") == "bernoulli" and self.binarize == "grey"


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """A checked TrainConfig: the defaults, then the preset (if any), then ``overrides`` (None = keep).

    Model options may be given inside ``model={...}`` or at top level (hidden, latent_dim, activation,
    likelihood, gaussian_scale, fixed_scale, encoder_head, init).
    """
    values = TrainConfig().to_dict()
    if preset is not None:
        p = get_preset(preset)
        values["model"] = {**values["model"], **p.pop("model", {})}
        values.update(p)
        values["preset"] = preset
    model_over = dict(overrides.pop("model", None) or {})
    for k in list(overrides):
        if k in _MODEL_DEFAULTS or k == "min_scale":
            v = overrides.pop(k)
            if v is not None:
                model_over[k] = v
    values["model"] = {**values["model"], **model_over}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for k, v in overrides.items():
        if k not in names:
            raise ValueError(f"unknown training option {k!r}")
        if v is not None:
            values[k] = v
    return TrainConfig(**values).check()
