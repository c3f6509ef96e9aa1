"""The training loop: the loss of a batch, one epoch of steps, and the end of an epoch.

Read :func:`train_epoch` first: for each batch it draws the binarization, computes the loss, stops
on a NaN before the step is applied, and takes the step (zero_grad, backward, clip, optimizer step).
:func:`finish_epoch` then evaluates and steps the learning-rate schedule.  Nothing here prints,
saves or reads the clock: the application shell (app.py) does that around these functions.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..autograd.tensor import tensor as _tensor
from ..backend import backend_of, get_backend, namespace
from ..distributions import ValidationError
from ..evaluate import elbo_stats
from ..models.vae import VAE
from ..optim import clip_grad_norm_
from ..random import Generator
from .config import TrainConfig
from .data import Data
from .state import TrainState, zero_acc

__all__ = ["TrainingDiverged", "batch_loss", "beta_at", "finish_epoch", "train_epoch"]


class TrainingDiverged(RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite; ``step``, ``epoch`` and ``checkpoint`` say where."""

    def __init__(self, message, step=None, epoch=None, checkpoint=None):
        super().__init__(message)
        self.step, self.epoch, self.checkpoint = step, epoch, checkpoint


def beta_at(config: TrainConfig, progress: float) -> float:
    """The KL weight after ``progress`` epochs: beta * min(1, progress / warmup_epochs), linear warm-up."""
    if config.warmup_epochs <= 0:
        return config.beta
    return config.beta * min(1.0, progress / config.warmup_epochs)


def batch_loss(model: VAE, x, config: TrainConfig, beta: float, generator=None):
    """(loss, bound parts) of one batch: loss = -sum_i objective_i ("sum") or its mean ("mean").

    objective_i is the ELBO (``n_samples`` reparameterized draws averaged; beta and free bits
    applied: docs/elbo.md#the-elbo) or IWAE_k (k = ``n_samples``), with the gradient of
    ``grad_estimator`` (docs/math.md#gradient-estimators-for-the-elbo-and-iwae).
    """
    res = model.training_objective(x, config.objective, config.n_samples, config.grad_estimator, beta=beta,
                                   free_bits=config.free_bits, generator=generator)
    loss = -F.sum(res.objective) if config.loss_reduction == "sum" else -F.mean(res.objective)
    return loss, res


def train_epoch(s: TrainState, data: Data, config: TrainConfig, after_step=None) -> bool:
    """Train on the rest of the current epoch's batches; True when the epoch is done.

    ``after_step(batch, n_images)`` runs after every step; when it returns True the epoch stops there
    (a checkpoint saved then resumes with the next batch).
    """
    backend = get_backend()
    n_batches = len(s.loader)
    e = s.epoch
    for b, idx in enumerate(s.loader, start=s.loader.position):
        x = _tensor(backend.from_numpy(data.preprocessing.batch(data.train[idx], s.bin_rng)))
        beta = beta_at(config, e + (b + 1) / n_batches)
        step = s.global_step + 1
        where = f"step {step} (epoch {e + 1}, batch {b + 1} of {n_batches})"
        # NumPy's overflow warnings would only repeat, less clearly, what the checks below report.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                loss, res = batch_loss(s.model, x, config, beta, s.noise)
            except ValidationError as err:  # a NaN parameter of q(z|x) or p(x|z), found by its distribution
                raise TrainingDiverged(f"training stopped at {where}: {err}; this step was not applied",
                                       step, e + 1) from err
            # One device -> host copy per step for everything the log needs.
            xp = namespace(loss.data)
            parts = [loss.data, xp.sum(res.elbo.data), xp.sum(res.reconstruction.data), xp.sum(res.kl.data),
                     xp.sum(res.objective.data)]
            # IWAE_k from the step's own draws where the objective computed the log-weights (IWAE_1 is the ELBO)
            iwae = res.iwae if res.iwae is not None else res.elbo if config.n_samples == 1 else None
            sums = _to_host(xp.stack(parts + ([] if iwae is None else [xp.sum(iwae.data)])))
            lv = float(sums[0])
            if not math.isfinite(lv):
                raise TrainingDiverged(f"training stopped: the loss is {lv} at {where}; this step was not "
                                       "applied", step, e + 1)
            s.optimizer.zero_grad()
            loss.backward()
            if config.clip_grad is not None:
                norm = clip_grad_norm_(s.model.parameters(), config.clip_grad)
                if not math.isfinite(norm):
                    raise TrainingDiverged(f"training stopped: the gradient norm is {norm} at {where}; this step "
                                           "was not applied", step, e + 1)
            s.optimizer.step()
        s.global_step = step
        a = s.acc
        a["n"] += x.shape[0]
        a["elbo"] += float(sums[1])
        a["rec"] += float(sums[2])
        a["kl"] += float(sums[3])
        a["loss"] += -float(sums[4])
        if iwae is not None:
            a["iwae"] = a.get("iwae", 0.0) + float(sums[5])
        a["last_loss"] = lv
        if after_step is not None and after_step(b, x.shape[0]):
            return False
    return True


def finish_epoch(s: TrainState, data: Data, config: TrainConfig) -> dict:
    """End the epoch: its metrics row (the train averages; the validation and test ELBO when due),
    then the schedule's step.  The row has no timings: the caller adds them."""
    c, e, a = config, s.epoch, s.acc
    n = max(a["n"], 1)
    row = {"epoch": e + 1, "step": s.global_step, "lr": float(s.optimizer.param_groups[0]["lr"]),
           "beta": beta_at(c, e + 1), "train_loss": a["loss"] / n, "train_elbo": a["elbo"] / n,
           "train_rec": a["rec"] / n, "train_kl": a["kl"] / n, "k": c.n_samples}
    if "iwae" in a:
        row["train_iwae"] = a["iwae"] / n
    if (e + 1) % c.eval_every == 0 or e + 1 == c.epochs:
        gen = _eval_generator(c.seed, e)
        for name, x in (("val", data.valid), ("test", data.test)):
            if x is None:
                continue
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    r = elbo_stats(s.model, x, batch_size=c.eval_batch_size, generator=gen, details=False)
                    iwae = _iwae_mean(s.model, x, c.n_samples, c.eval_batch_size, gen)
            except ValidationError as err:  # a NaN parameter while evaluating: the model has diverged
                raise TrainingDiverged(f"training stopped: evaluating the {name} ELBO after epoch {e + 1}: {err}",
                                       s.global_step, e + 1) from err
            if not math.isfinite(r["elbo"]):
                raise TrainingDiverged(f"training stopped: the {name} ELBO is {r['elbo']} after epoch {e + 1}",
                                       s.global_step, e + 1)
            row.update({f"{name}_loss": -r["elbo"], f"{name}_elbo": r["elbo"], f"{name}_rec": r["reconstruction"],
                        f"{name}_kl": r["kl"], f"{name}_iwae": iwae})
    if s.scheduler is not None:
        s.scheduler.step()
    s.epoch, s.acc = e + 1, zero_acc()
    return row


def _iwae_mean(model, x, k: int, batch_size: int, generator) -> float:
    """Mean over the images ``x`` (host array) of IWAE_k, batch by batch under no_grad."""
    total = 0.0
    with no_grad():
        for a in range(0, len(x), batch_size):
            xb = _tensor(get_backend().from_numpy(x[a:a + batch_size]))
            total += float(_to_host(namespace(xb.data).sum(model.iwae_bound(xb, k, generator=generator).data)))
    return total / max(len(x), 1)


def _eval_generator(seed: int, epoch: int) -> Generator:
    # Its own stream per epoch, so evaluating never moves the training noise and a resumed run
    # evaluates with the same draws.
    return Generator(int(np.random.default_rng([seed, epoch, 7]).integers(2**63)))


def _to_host(a) -> np.ndarray:
    return backend_of(a).to_numpy(a)
