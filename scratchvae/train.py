"""Training a VAE on MNIST: configuration, data, the loop, checkpoints and resuming (docs/training.md).

``train(config, run_dir)`` runs the whole thing and writes a run folder::

    run_dir/config.json       the full configuration (what --resume and `evaluate` rebuild from)
    run_dir/metrics.jsonl     one JSON object per epoch: train / validation / test ELBO parts, lr, times
    run_dir/checkpoint.npz    model, optimizer, scheduler, data-loader and random-generator state,
                              written atomically at the end of every epoch (and on Ctrl-C)
    run_dir/figures/*.png     reconstructions, samples, latent space, training curves (at the end)

Resuming restores every piece of state, so a resumed run computes exactly the numbers the
uninterrupted run would have (same batches, same binarizations, same noise, same Adam moments).
A NaN or infinite loss stops the run before the step is applied, with a message naming the step;
the checkpoint of the last finished epoch is left as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from . import functional as F
from .autograd.tensor import tensor as _tensor
from .backend import _state as _backend_state
from .backend import (
    backend_of,
    dtype_name,
    get_backend,
    get_default_dtype,
    namespace,
    set_backend,
    set_default_dtype,
)
from .data import (
    DataLoader,
    Preprocessing,
    fixed_binarize,
    grey_levels,
    load_embedded,
    load_mnist,
    mnist_available,
    pixel_means,
    validation_split,
)
from .data.mnist import cache_dir
from .distributions import ValidationError
from .evaluate import elbo_stats
from .models.presets import get_preset
from .models.vae import VAE
from .optim import SGD, Adam, AdamW, IWAESchedule, StepLR, clip_grad_norm_
from .random import Generator

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "METRICS",
    "TEST_BINARIZATION_SEED",
    "Data",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "batch_loss",
    "load_config",
    "load_run",
    "load_test_data",
    "make_config",
    "prepare_data",
    "train",
]

CONFIG, METRICS, CHECKPOINT, FIGURES = "config.json", "metrics.jsonl", "checkpoint.npz", "figures"
#: Binary test and validation sets are ONE Bernoulli draw of the grey images from this fixed seed,
#: whatever the training seed: every run is evaluated on the same binary images.
TEST_BINARIZATION_SEED = 0

_MODEL_DEFAULTS = {"hidden": [400], "latent_dim": 20, "activation": "relu", "likelihood": "bernoulli",
                   "gaussian_scale": "learned", "fixed_scale": 0.1, "encoder_head": "log_var", "init": "pytorch"}
_CHOICES = {
    "data": ("auto", "embedded", "mnist"),
    "binarize": ("grey", "dynamic", "fixed"),
    "output_bias": ("zero", "pixel_means"),
    "optimizer": ("adam", "adamw", "sgd"),
    "schedule": ("constant", "step", "iwae"),
    "loss_reduction": ("mean", "sum"),
    "backend": ("numpy", "cupy", "array_api_strict"),
    "dtype": ("float32", "float64"),
}


class TrainingDiverged(RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite; ``step``, ``epoch`` and ``checkpoint`` say where."""

    def __init__(self, message, step=None, epoch=None, checkpoint=None):
        super().__init__(message)
        self.step, self.epoch, self.checkpoint = step, epoch, checkpoint


# --------------------------------------------------------------------------------------------------
# configuration

@dataclass
class TrainConfig:
    """Everything a run depends on; saved as config.json.  Field meanings: docs/training.md#options."""

    preset: str | None = None
    model: dict = field(default_factory=lambda: dict(_MODEL_DEFAULTS))
    output_bias: str = "zero"
    # data
    data: str = "auto"
    data_dir: str | None = None
    binarize: str = "dynamic"
    bernoulli_on_grey: bool = False
    validation: int = 0
    n_train: int | None = None
    n_test: int | None = None
    # objective
    beta: float = 1.0
    warmup_epochs: float = 0.0
    free_bits: float = 0.0
    n_samples: int = 1
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
    figures: bool = True

    def check(self) -> TrainConfig:
        """Raise ValueError naming the first option that is out of range or inconsistent."""
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(choices)}")
        unknown = set(self.model) - set(_MODEL_DEFAULTS) - {"min_scale"}
        if unknown:
            raise ValueError(f"unknown model option(s) {sorted(unknown)}; known: {sorted(_MODEL_DEFAULTS)}")
        for name in ("epochs", "batch_size", "n_samples", "eval_every", "eval_batch_size", "step_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer (or unset for all), got {v!r}")
        if not isinstance(self.validation, int) or self.validation < 0:
            raise ValueError(f"validation must be a number of images >= 0, got {self.validation!r}")
        checks = [("lr", self.lr > 0), ("beta", self.beta >= 0), ("warmup_epochs", self.warmup_epochs >= 0),
                  ("free_bits", self.free_bits >= 0), ("adam_eps", self.adam_eps >= 0),
                  ("weight_decay", self.weight_decay >= 0), ("gamma", self.gamma > 0),
                  ("clip_grad", self.clip_grad is None or self.clip_grad > 0),
                  ("time_budget", self.time_budget is None or self.time_budget > 0)]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"{name} is out of range: {getattr(self, name)!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        m = self.model
        if m.get("likelihood", "bernoulli") == "bernoulli" and self.binarize == "grey" and not self.bernoulli_on_grey:
            raise ValueError(
                "a Bernoulli likelihood on grey levels (binarize 'grey') is not a normalized likelihood "
                "(docs/data.md): binarize the data (--binarize dynamic), use --likelihood gaussian, or pass "
                "--bernoulli-on-grey to accept the cross-entropy loss as pytorch/examples does")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

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


def load_config(run_dir) -> TrainConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no {CONFIG} (train one with `scratchvae train`)")
    with open(path) as f:
        values = json.load(f)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in values.items() if k in names}
    return TrainConfig(**values).check()


# --------------------------------------------------------------------------------------------------
# data

@dataclass
class Data:
    """Host arrays for one run: ``train`` as stored by the preprocessing (grey levels for 'dynamic',
    binarized once for 'fixed'), ``valid`` and ``test`` ready to evaluate on, and where they came from."""

    train: np.ndarray
    valid: np.ndarray | None
    test: np.ndarray
    test_labels: np.ndarray
    pixel_means: np.ndarray
    source: str
    preprocessing: Preprocessing


def _resolve_source(config: TrainConfig, log) -> str:
    if config.data == "embedded":
        return "embedded"
    if config.data == "mnist" or config.data_dir is not None:
        return "mnist"
    if mnist_available("train") and mnist_available("test"):
        return "mnist"
    log(f"note: the full MNIST files are not in {cache_dir()} and no --data-dir was given, so this run uses "
        "the embedded subset (10,000 training and 2,000 test images); its numbers are not comparable with "
        "full-MNIST results. Pass --data-dir DIR or --data mnist (downloads) for the full set.")
    return "embedded"


def _load_split(source: str, split: str, config: TrainConfig):
    if source == "embedded":
        return load_embedded(split, flatten=True)
    return load_mnist(split, data_dir=config.data_dir, flatten=True, quiet=True)


def _eval_ready(images: np.ndarray, binarize: str, dtype: str) -> np.ndarray:
    """Grey levels, or ONE Bernoulli draw with the fixed evaluation seed (binary modes)."""
    if binarize == "grey":
        return grey_levels(images, dtype)
    return fixed_binarize(images, TEST_BINARIZATION_SEED, dtype)


def load_test_data(config: TrainConfig, source: str | None = None, n_test: int | None = None):
    """The test images ready for evaluation (grey, or the fixed binarization) and their labels."""
    source = source or ("embedded" if config.data == "embedded" else "mnist" if config.data == "mnist" else
                        _resolve_source(config, lambda *_: None))
    images, labels = _load_split(source, "test", config)
    n = n_test if n_test is not None else config.n_test
    if n is not None:
        images, labels = images[:n], labels[:n]
    return _eval_ready(images, config.binarize, config.dtype), labels


def prepare_data(config: TrainConfig, log=print, source: str | None = None) -> Data:
    source = source or _resolve_source(config, log)
    images, _ = _load_split(source, "train", config)
    if config.n_train is not None:
        images = images[: config.n_train]
    train_idx, valid_idx = validation_split(len(images), config.validation)
    train_images = images[train_idx]
    if len(train_images) == 0:
        raise ValueError(f"no training images left after holding out {config.validation} for validation")
    pp = Preprocessing(config.binarize, seed=config.seed, dtype=config.dtype)
    valid = _eval_ready(images[valid_idx], config.binarize, config.dtype) if len(valid_idx) else None
    test, labels = load_test_data(config, source)
    return Data(train=pp.prepare(train_images), valid=valid, test=test, test_labels=labels,
                pixel_means=pixel_means(train_images), source=source, preprocessing=pp)


# --------------------------------------------------------------------------------------------------
# randomness that a checkpoint can restore exactly

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


def _eval_generator(seed: int, epoch: int) -> Generator:
    # Its own stream per epoch, so evaluating never moves the training noise and a resumed run
    # evaluates with the same draws.
    return Generator(int(np.random.default_rng([seed, epoch, 7]).integers(2**63)))


# --------------------------------------------------------------------------------------------------
# building the pieces

def build_model(config: TrainConfig, data: Data | None = None, generator=None) -> VAE:
    m = dict(config.model)
    model = VAE.mlp(input_dim=784, **m, allow_grey=config.grey_bernoulli and config.bernoulli_on_grey,
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


def beta_at(config: TrainConfig, progress: float) -> float:
    """The KL weight after ``progress`` epochs: beta * min(1, progress / warmup_epochs), linear warm-up."""
    if config.warmup_epochs <= 0:
        return config.beta
    return config.beta * min(1.0, progress / config.warmup_epochs)


def batch_loss(model: VAE, x, config: TrainConfig, beta: float, generator=None):
    """(loss, ELBO parts) of one batch: loss = -sum_i objective_i ("sum") or its mean ("mean").

    objective_i = E_q[log p(x_i|z)] - beta * KL_i (free bits applied), one reparameterized z
    (``n_samples`` of them averaged) per image (docs/elbo.md#the-elbo).
    """
    res = model.elbo(x, n_samples=config.n_samples, beta=beta, free_bits=config.free_bits, generator=generator)
    loss = -F.sum(res.objective) if config.loss_reduction == "sum" else -F.mean(res.objective)
    return loss, res


# --------------------------------------------------------------------------------------------------
# the loop

@dataclass
class TrainResult:
    status: str            # "completed" | "interrupted" | "budget"
    run_dir: Path
    epochs_done: int
    global_step: int
    metrics: list
    model: VAE

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / CHECKPOINT


class _StopFlag:
    """Ctrl-C sets a flag the loop reads after each step (a step is never cut in half); a second
    Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self, log):
        self.requested = False
        self.log = log
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("\ninterrupt: finishing this step and saving a checkpoint (press Ctrl-C again to abort without saving)")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _finite(v: float) -> bool:
    return math.isfinite(v)


class Trainer:
    """Runs one training run in ``run_dir`` (docs/training.md#the-run-folder).

    ``callback(trainer, info)`` is called after every step with info = {"step", "epoch", "batch",
    "loss"}; tests use it to inject faults.  ``log`` receives one line per message.
    """

    def __init__(self, config: TrainConfig, run_dir, *, resume: bool = False, progress: bool = True,
                 log=print, callback=None):
        self.config = config.check()
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.log = log
        self.callback = callback
        self.stop = None

    # -- setup -----------------------------------------------------------------------------------
    def _setup(self):
        c = self.config
        ckpt_path = self.run_dir / CHECKPOINT
        if self.resume:
            if not ckpt_path.is_file():
                raise FileNotFoundError(f"cannot resume: {ckpt_path} does not exist (the run never finished an "
                                        "epoch or was not started)")
            state, meta = ckpt.load(ckpt_path, with_metadata=True)
            source = meta.get("data_source")
        else:
            if (self.run_dir / CONFIG).exists():
                raise FileExistsError(f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir} "
                                      "or choose another --out folder")
            state, source = None, None
        self.data = prepare_data(c, self.log, source)
        self.model = build_model(c, self.data, generator=Generator(c.seed))
        self.optimizer = build_optimizer(c, self.model)
        self.scheduler = build_scheduler(c, self.optimizer)
        self.loader = DataLoader(len(self.data.train), c.batch_size, drop_last=c.drop_last, seed=c.seed)
        if len(self.loader) == 0:
            raise ValueError(f"batch_size {c.batch_size} with drop_last leaves no batch of the "
                             f"{len(self.data.train)} training images")
        self.noise = HostNoise([c.seed, 1])
        self.bin_rng = np.random.default_rng([c.seed, 2])
        self.epoch = 0              # epochs completed
        self.global_step = 0        # optimizer steps taken
        self.acc = _zero_acc()      # sums over the current epoch's images so far
        self.elapsed = 0.0          # seconds of training and evaluation, over all sessions
        self.metrics = []
        if state is not None:
            self._restore(state)
            self.metrics = _read_metrics(self.run_dir, upto=self.epoch)
            self.log(f"resuming {self.run_dir} at epoch {self.epoch + 1}, step {self.global_step}")
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _write_json(self.run_dir / CONFIG, {**c.to_dict(), "data_source": self.data.source})
            (self.run_dir / METRICS).write_text("")

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "loader": self.loader.state_dict(),
            "rng": {"noise": self.noise.rng.bit_generator.state, "binarize": self.bin_rng.bit_generator.state},
            "progress": {"epoch": self.epoch, "global_step": self.global_step, "acc": dict(self.acc),
                         "elapsed": self.elapsed},
        }

    def _restore(self, state: dict):
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

    def save(self):
        """Write the checkpoint atomically (a crash mid-write leaves the previous one intact)."""
        meta = {"model_config": self.model.config, "train_config": self.config.to_dict(), "epoch": self.epoch,
                "global_step": self.global_step, "data_source": self.data.source}
        ckpt.save(self._state(), self.run_dir / CHECKPOINT, metadata=meta)

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        prev_backend, prev_dtype = _backend_state["backend"], get_default_dtype()
        set_backend(self.config.backend)
        set_default_dtype(self.config.dtype)
        try:
            self._setup()
            with _StopFlag(self.log) as self.stop:
                status = self._loop()
            if self.config.figures and status in ("completed", "budget"):
                self._figures()
            return TrainResult(status, self.run_dir, self.epoch, self.global_step, self.metrics, self.model)
        finally:
            _backend_state["backend"] = prev_backend
            set_default_dtype(prev_dtype)

    def _loop(self) -> str:
        c = self.config
        backend = get_backend()
        n_batches = len(self.loader)
        while self.epoch < c.epochs:
            e = self.epoch
            bar = self._bar(e, n_batches)
            t0 = time.perf_counter()
            t_last = t0
            try:
                for b, idx in enumerate(self.loader, start=self.loader.position):
                    x_host = self.data.preprocessing.batch(self.data.train[idx], self.bin_rng)
                    x = _tensor(backend.from_numpy(x_host))
                    beta = beta_at(c, e + (b + 1) / n_batches)
                    # NumPy's overflow warnings would only repeat, less clearly, what the finiteness
                    # checks in _step report with the step number.
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        self._step(x, beta, e, b, n_batches)
                    if bar is not None:
                        now = time.perf_counter()
                        bar.update(1)
                        if b % 10 == 0 or b == n_batches - 1:
                            n = self.acc["n"]
                            bar.set_postfix(loss=f"{self.acc['loss'] / n:.2f}", kl=f"{self.acc['kl'] / n:.2f}",
                                            img_s=f"{len(idx) / max(now - t_last, 1e-9):.0f}", refresh=False)
                        t_last = now
                    if self.callback is not None:
                        self.callback(self, {"step": self.global_step, "epoch": e + 1, "batch": b + 1,
                                             "loss": self.acc["last_loss"]})
                    if self.stop.requested:
                        self.elapsed += time.perf_counter() - t0
                        self.save()
                        self.log(f"saved {self.run_dir / CHECKPOINT} at epoch {e + 1}, step {self.global_step}; "
                                 f"continue with: scratchvae train --resume {self.run_dir}")
                        return "interrupted"
            finally:
                if bar is not None:
                    bar.close()
            t_train = time.perf_counter() - t0
            self._end_epoch(e, t_train)
            if self.stop.requested:
                return "interrupted"
            if c.time_budget is not None and self._over_budget():
                self.log(f"time budget of {c.time_budget:g} min reached after epoch {self.epoch} "
                         f"({self.elapsed / 60:.1f} min); stopping (continue with --resume and a larger budget)")
                return "budget"
        return "completed"

    def _bar(self, e, n_batches):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=n_batches, initial=self.loader.position, desc=f"epoch {e + 1}/{self.config.epochs}",
                    unit="batch", leave=False, dynamic_ncols=True)

    def _step(self, x, beta, e, b, n_batches):
        c = self.config
        step = self.global_step + 1
        where = f"step {step} (epoch {e + 1}, batch {b + 1} of {n_batches})"
        try:
            loss, res = batch_loss(self.model, x, c, beta, self.noise)
        except ValidationError as err:
            # A NaN parameter of q(z|x) or p(x|z) is reported here, by the distribution's check.
            self._diverged(f"training stopped at {where}: {err}; this step was not applied", step, e)
        obj = res.objective
        # One device -> host copy per step for everything the log needs.
        xp = namespace(loss.data)
        summary = _to_host(xp.stack([loss.data, xp.sum(res.elbo.data), xp.sum(res.reconstruction.data),
                                             xp.sum(res.kl.data), xp.sum(obj.data)]))
        lv = float(summary[0])
        if not _finite(lv):
            self._diverged(f"training stopped: the loss is {lv} at {where}; this step was not applied", step, e)
        self.optimizer.zero_grad()
        loss.backward()
        if c.clip_grad is not None:
            norm = clip_grad_norm_(self.model.parameters(), c.clip_grad)
            if not _finite(norm):
                self._diverged(f"training stopped: the gradient norm is {norm} at {where}; this step was not "
                               "applied", step, e)
        self.optimizer.step()
        self.global_step = step
        bsz = x.shape[0]
        a = self.acc
        a["n"] += bsz
        a["elbo"] += float(summary[1])
        a["rec"] += float(summary[2])
        a["kl"] += float(summary[3])
        a["loss"] += -float(summary[4])
        a["last_loss"] = lv

    def _diverged(self, message, step, e):
        path = self.run_dir / CHECKPOINT
        if path.is_file():
            where = f"The last good checkpoint is {path} (after epoch {self.epoch_of_checkpoint()}), left unchanged"
        else:
            where = "No checkpoint was written yet (the first epoch did not finish)"
        raise TrainingDiverged(f"{message}. {where}. Try a lower --lr, --clip-grad, or --dtype float64; "
                               "scratchvae.anomaly.detect_anomaly() finds the op that produced the first NaN",
                               step=step, epoch=e + 1, checkpoint=path if path.is_file() else None)

    def epoch_of_checkpoint(self):
        try:
            return ckpt.read_metadata(self.run_dir / CHECKPOINT).get("epoch")
        except (OSError, ValueError):
            return "?"

    def _end_epoch(self, e, t_train):
        c = self.config
        t0 = time.perf_counter()
        a = self.acc
        n = max(a["n"], 1)
        row = {"epoch": e + 1, "step": self.global_step, "lr": self._lr(), "beta": beta_at(c, e + 1),
               "train_loss": a["loss"] / n, "train_elbo": a["elbo"] / n, "train_rec": a["rec"] / n,
               "train_kl": a["kl"] / n}
        if (e + 1) % c.eval_every == 0 or e + 1 == c.epochs:
            gen = _eval_generator(c.seed, e)
            for name, x in (("val", self.data.valid), ("test", self.data.test)):
                if x is None:
                    continue
                s = elbo_stats(self.model, x, batch_size=c.eval_batch_size, generator=gen, details=False)
                if not _finite(s["elbo"]):
                    self._diverged(f"training stopped: the {name} ELBO is {s['elbo']} after epoch {e + 1}",
                                   self.global_step, e)
                row.update({f"{name}_loss": -s["elbo"], f"{name}_elbo": s["elbo"], f"{name}_rec": s["reconstruction"],
                            f"{name}_kl": s["kl"]})
        if self.scheduler is not None:
            self.scheduler.step()
        t_eval = time.perf_counter() - t0
        self.elapsed += t_train + t_eval
        row.update({"train_seconds": t_train, "eval_seconds": t_eval, "elapsed_seconds": self.elapsed})
        self.epoch = e + 1
        self.acc = _zero_acc()
        self.metrics.append(row)
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.save()
        test = f"  test loss {row['test_loss']:.2f}" if "test_loss" in row else ""
        val = f"  val loss {row['val_loss']:.2f}" if "val_loss" in row else ""
        self.log(f"epoch {e + 1}/{c.epochs}  train loss {row['train_loss']:.2f} (rec {-row['train_rec']:.2f}, "
                 f"KL {row['train_kl']:.2f}){val}{test}  lr {row['lr']:.3g}  {t_train:.1f} s")

    def _lr(self):
        return float(self.optimizer.param_groups[0]["lr"])

    def _over_budget(self) -> bool:
        last = self.metrics[-1]
        per_epoch = last["train_seconds"] + last["eval_seconds"]
        return self.elapsed + per_epoch > self.config.time_budget * 60

    def _figures(self):
        try:
            from .plots import make_figures
        except ImportError as e:  # pragma: no cover - matplotlib missing
            self.log(f"note: no figures ({e}); install matplotlib for them")
            return
        paths = make_figures(self.run_dir / FIGURES, self.model, self.data.test, self.data.test_labels,
                             self.metrics, generator=Generator(self.config.seed))
        self.log(f"figures: {', '.join(str(p) for p in paths)}")


def _to_host(a) -> np.ndarray:
    return backend_of(a).to_numpy(a)


def _zero_acc() -> dict:
    return {"n": 0, "elbo": 0.0, "rec": 0.0, "kl": 0.0, "loss": 0.0, "last_loss": float("nan")}


def _write_json(path: Path, obj):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _read_metrics(run_dir: Path, upto: int | None = None) -> list:
    """The metrics rows of the run; with ``upto``, rows after that epoch (written by a session that
    died before its checkpoint) are dropped from the file too."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if upto is not None:
        kept = [r for r in rows if r["epoch"] <= upto]
        if len(kept) != len(rows):
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        rows = kept
    return rows


# --------------------------------------------------------------------------------------------------
# entry points

def default_run_dir(config: TrainConfig, root="runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.preset or 'vae'}-{stamp}"


def train(config: TrainConfig | dict | None = None, run_dir=None, *, resume: bool = False, epochs: int | None = None,
          time_budget: float | None = None, progress: bool = True, log=print, callback=None) -> TrainResult:
    """Train (or, with ``resume=True``, continue) a run; returns a :class:`TrainResult`.

    ``config``: a TrainConfig or a dict of overrides for :func:`make_config` (ignored when resuming:
    the run's own config.json is used, with ``epochs`` / ``time_budget`` changed if given).
    Raises :class:`TrainingDiverged` on a NaN/Inf loss.
    """
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run folder")
        config = load_config(run_dir)
        changed = {}
        if epochs is not None:
            changed["epochs"] = epochs
        if time_budget is not None:
            changed["time_budget"] = time_budget
        if changed:
            config = dataclasses.replace(config, **changed).check()
            _write_json(Path(run_dir) / CONFIG, {**json.loads((Path(run_dir) / CONFIG).read_text()), **changed})
    else:
        if config is None:
            config = make_config()
        elif isinstance(config, dict):
            config = make_config(**config)
        if epochs is not None or time_budget is not None:
            config = dataclasses.replace(config, epochs=epochs or config.epochs,
                                         time_budget=time_budget if time_budget is not None else config.time_budget)
        run_dir = run_dir or default_run_dir(config)
    return Trainer(config, run_dir, resume=resume, progress=progress, log=log, callback=callback).run()


def load_run(path, backend: str | None = None, dtype: str | None = None):
    """(model, config, metadata) from a run folder or a checkpoint file, on ``backend`` (default: the run's).

    Sets the current backend and default dtype to the run's (or the ones given).
    """
    path = Path(path)
    ckpt_path = path / CHECKPOINT if path.is_dir() else path
    if not ckpt_path.is_file():
        hint = "it has no checkpoint.npz yet (no epoch finished)" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"cannot load a model from {path}: {hint}")
    state, meta = ckpt.load(ckpt_path, with_metadata=True)
    if "model_config" not in meta or "train_config" not in meta:
        raise ValueError(f"{ckpt_path} is a checkpoint but not of a training run (no model/train config in it)")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in meta["train_config"].items() if k in names})
    set_backend(backend or config.backend)
    set_default_dtype(dtype or config.dtype)
    model = VAE.from_config(meta["model_config"], validate_args=None if config.validate_args else False,
                            dtype=dtype or config.dtype, backend=get_backend())
    model.load_state_dict(state["model"])
    return model, config, meta
