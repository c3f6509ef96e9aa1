"""Everything that changes while a run trains, built from its config: :class:`TrainState`.

The model, the optimizer, the learning-rate schedule, the data loader's position, the two random
generators (binarization draws and reparameterization noise) and the counters.  ``state_dict()`` is
exactly what checkpoint.npz holds, so a resumed run continues with the same batches, the same
binarizations, the same noise and the same Adam moments (docs/training.md#resuming).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backend import dtype_name, get_backend, get_default_dtype
from ..data import DataLoader
from ..models.two_layer_vae import TwoLayerVAE
from ..models.vae import VAE
from ..optim import SGD, Adam, AdamW, IWAESchedule, StepLR
from ..random import Generator
from .config import TrainConfig
from .data import Data

__all__ = ["HostNoise", "TrainState", "build_model", "build_optimizer", "build_scheduler", "build_state", "zero_acc"]


class HostNoise:
    """The reparameterization noise, drawn on the host from one NumPy generator and copied to the backend.

    A NumPy generator's state is a plain dict that a checkpoint stores and restores exactly, on any
    backend (CuPy's generators expose no state); the copy is B x latent numbers per step.  Duck-types
    ``scratchvae.random.Generator`` (``normal``, ``uniform``, ``numpy``).
    """

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def normal(self, shape, dtype=None, backend=None):
        a = self.rng.standard_normal(tuple(shape), dtype=dtype_name(dtype or get_default_dtype()))
        return (backend or get_backend()).from_numpy(a)

    def uniform(self, shape, dtype=None, backend=None):
        a = self.rng.random(tuple(shape), dtype=dtype_name(dtype or get_default_dtype()))
        return (backend or get_backend()).from_numpy(a)

    def numpy(self):
        return self.rng


def build_model(config: TrainConfig, data: Data | None = None, generator=None) -> VAE | TwoLayerVAE:
    """The config's model: a :class:`VAE`, or a :class:`TwoLayerVAE` when ``latent_dim2`` > 0."""
    m = dict(config.model)
    if not m.get("latent_dim2"):
        m.pop("latent_dim2", None)
        m.pop("hidden2", None)
    cls = TwoLayerVAE if "latent_dim2" in m else VAE
    model = cls.mlp(input_dim=784, **m, allow_grey=config.grey_bernoulli and config.bernoulli_on_grey,
                    validate_args=None if config.validate_args else False,
                    dtype=config.dtype, backend=get_backend(), generator=generator)
    if config.output_bias == "pixel_means" and data is not None:
        model.init_output_bias(data.pixel_means)
    return model


def build_optimizer(config: TrainConfig, model: VAE):
    params = list(model.parameters())
    if config.optimizer == "sgd":
        return SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    cls = Adam if config.optimizer == "adam" else AdamW
    return cls(params, lr=config.lr, betas=tuple(config.betas), eps=config.adam_eps, weight_decay=config.weight_decay)


def build_scheduler(config: TrainConfig, optimizer):
    if config.schedule == "step":
        return StepLR(optimizer, config.step_size, config.gamma)
    if config.schedule == "iwae":
        return IWAESchedule(optimizer)
    return None


def zero_acc() -> dict:
    """The sums over an epoch's images, before its first batch."""
    return {"n": 0, "elbo": 0.0, "rec": 0.0, "kl": 0.0, "loss": 0.0, "last_loss": float("nan")}


@dataclass
class TrainState:
    """A run in progress.  ``epoch`` counts the epochs completed, ``global_step`` the optimizer steps
    taken, ``acc`` holds the sums over the current epoch's images so far, and ``elapsed`` the seconds of
    training and evaluation over all sessions."""

    model: VAE
    optimizer: object
    scheduler: object | None
    loader: DataLoader
    noise: HostNoise                 # the reparameterization noise
    bin_rng: np.random.Generator     # the dynamic binarization draws
    epoch: int = 0
    global_step: int = 0
    acc: dict = field(default_factory=zero_acc)
    elapsed: float = 0.0

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "loader": self.loader.state_dict(),
            "rng": {"noise": self.noise.rng.bit_generator.state, "binarize": self.bin_rng.bit_generator.state},
            "progress": {"epoch": self.epoch, "global_step": self.global_step, "acc": dict(self.acc),
                         "elapsed": self.elapsed},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.loader.load_state_dict(state["loader"])
        self.noise.rng.bit_generator.state = state["rng"]["noise"]
        self.bin_rng.bit_generator.state = state["rng"]["binarize"]
        p = state["progress"]
        self.epoch, self.global_step = int(p["epoch"]), int(p["global_step"])
        self.acc = {k: float(v) for k, v in p["acc"].items()}
        self.elapsed = float(p["elapsed"])


def build_state(config: TrainConfig, data: Data) -> TrainState:
    """A fresh run: the model initialised from the seed, its optimizer and schedule, epoch 0."""
    c = config
    model = build_model(c, data, generator=Generator(c.seed))
    optimizer = build_optimizer(c, model)
    scheduler = build_scheduler(c, optimizer)
    loader = DataLoader(len(data.train), c.batch_size, drop_last=c.drop_last, seed=c.seed)
    if len(loader) == 0:
        raise ValueError(f"batch_size {c.batch_size} with drop_last leaves no batch of the "
                         f"{len(data.train)} training images")
    return TrainState(model, optimizer, scheduler, loader, noise=HostNoise([c.seed, 1]),
                      bin_rng=np.random.default_rng([c.seed, 2]))
