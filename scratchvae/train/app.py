"""The application around the loop: :func:`train`, and the :class:`Trainer` that runs one run folder.

Everything the loop (loop.py) leaves out lives here: the run's backend and dtype, Ctrl-C, the
progress bar, the per-step callback, the clock and the time budget, the run folder written after
every epoch (a resume continues bit for bit), the message that names the last good checkpoint when
the loss turns NaN (that checkpoint is left as it was), and the figures at the end.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..backend import using_backend
from ..models.vae import VAE
from ..random import Generator
from . import run_folder
from .config import TrainConfig, make_config
from .data import prepare_data
from .loop import TrainingDiverged, finish_epoch, train_epoch
from .run_folder import CHECKPOINT, FIGURES
from .state import build_state

__all__ = ["RESUME_OPTIONS", "TrainResult", "Trainer", "train"]

#: What a resume may change: none of them changes the numbers a run computes.
RESUME_OPTIONS = ("epochs", "time_budget", "data_dir", "verify_data", "keep_checkpoints")


@dataclass
class TrainResult:
    status: str            # "completed" | "interrupted" | "budget"
    run_dir: Path
    epochs_done: int
    global_step: int
    metrics: list
    model: VAE
    signal: int | None = None  # the signal (SIGINT, SIGTERM) that interrupted the run


    @property
    def checkpoint(self) -> Path:
        return self.run_dir / CHECKPOINT


class _StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM sets a flag the loop reads after each step (a step is never cut in
    half); a second one raises KeyboardInterrupt at once.  ``signum`` is the signal that asked."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log):
        self.requested = False
        self.signum = None
        self.log = log
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum
        name = signal.Signals(signum).name
        again = "press Ctrl-C" if signum == signal.SIGINT else "send it"
        self.log(f"\ninterrupt ({name}): finishing this step and saving a checkpoint ({again} again to abort "
                 "without saving)")

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class _Bar:
    """One epoch's tqdm bar: the running loss and KL, and images per second."""

    def __init__(self, epoch: int, epochs: int, n_batches: int, done: int):
        from tqdm import tqdm

        self.n_batches = n_batches
        self.tqdm = tqdm(total=n_batches, initial=done, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                         leave=False, dynamic_ncols=True)
        self.t_last = time.perf_counter()

    def update(self, b: int, n_images: int, acc: dict):
        now = time.perf_counter()
        self.tqdm.update(1)
        if b % 10 == 0 or b == self.n_batches - 1:
            n = acc["n"]
            self.tqdm.set_postfix(loss=f"{acc['loss'] / n:.2f}", kl=f"{acc['kl'] / n:.2f}",
                                  img_s=f"{n_images / max(now - self.t_last, 1e-9):.0f}", refresh=False)
        self.t_last = now


class Trainer:
    """Runs one training run in ``run_dir`` (docs/training.md#the-run-folder).

    ``callback(trainer, info)`` is called after every step with info = {"step", "epoch", "batch",
    "loss"}; tests use it to inject faults (``trainer.model``, ``trainer.state``).  ``log`` receives one
    line per message.
    """

    def __init__(self, config: TrainConfig, run_dir, *, resume: bool = False, progress: bool = True,
                 log=print, callback=None):
        if config.data_dir is not None:  # absolute in config.json: the run survives a change of directory
            config = dataclasses.replace(config, data_dir=str(Path(config.data_dir).expanduser().resolve()))
        self.config = config.check()
        self.run_dir = Path(run_dir)
        self._rotate_next = True
        self.resume = resume
        self.progress = progress
        self.log = log
        self.callback = callback
        self.stop = None
        self.bar = None

    @property
    def model(self) -> VAE:
        return self.state.model

    def run(self) -> TrainResult:
        with using_backend(self.config.backend, self.config.dtype), self._lock():
            self._setup()
            with _StopFlag(self.log) as self.stop:
                try:
                    status = self._epochs()
                except TrainingDiverged as err:
                    raise self._diverged(err) from err
            if self.config.figures and status in ("completed", "budget"):
                self._figures()
            s = self.state
            return TrainResult(status, self.run_dir, s.epoch, s.global_step, self.metrics, s.model,
                               signal=self.stop.signum)

    def _lock(self):
        """The run folder's lock, held from before the first read until the figures are drawn."""
        if not self.resume:
            run_folder.check_new(self.run_dir, runs_too=False)  # before the lock file: a refused folder is left as it was
            self.run_dir.mkdir(parents=True, exist_ok=True)
        return run_folder.lock(self.run_dir)

    def _setup(self):
        c = self.config
        # under the lock: no other writer is alive, so temporaries of dead PIDs are garbage (kill -9 mid-save)
        run_folder.remove_stale_temporaries(self.run_dir, self.log)
        afresh = "{} holds a run whose first epoch never finished (no {}): starting it afresh"
        sha = None
        if self.resume and not (self.run_dir / CHECKPOINT).is_file():
            self.log(afresh.format(self.run_dir, CHECKPOINT) + f" from its {run_folder.CONFIG}")
            saved, source = None, run_folder.saved_data_source(self.run_dir)
        elif self.resume:
            saved, meta = run_folder.load_checkpoint(self.run_dir, log=self.log)
            source = meta.get("data_source")
            sha = meta.get("data_sha256") or run_folder.saved_data_sha256(self.run_dir)
            # after a fallback, checkpoint.npz is the damaged one: the next save replaces it, and the
            # older checkpoint that loaded stays where it is
            self._rotate_next = not meta.get("fallback")
        else:
            # again, under the lock: a run started meanwhile is not overwritten
            if run_folder.check_new(self.run_dir):
                self.log(afresh.format(self.run_dir, CHECKPOINT))
            saved, source = None, None
        self.data = prepare_data(c, self.log, source, expect_sha256=sha)
        self.state = build_state(c, self.data)
        if saved is not None:
            self.state.load_state_dict(saved)
            self.metrics = run_folder.read_metrics(self.run_dir, upto=self.state.epoch, log=self.log,
                                                   restore=meta.get("last_metrics"))
            # only now, with the checkpoint and the metrics read, may a new --epochs / --time-budget
            # reach config.json (a resume that fails changes nothing)
            run_folder.update_config(self.run_dir, {k: getattr(c, k) for k in RESUME_OPTIONS})
            self.log(f"resuming {self.run_dir} at epoch {self.state.epoch + 1}, step {self.state.global_step}")
        else:
            self.metrics = []
            run_folder.create(self.run_dir, c, self.data.source, self.data.sha256)

    def _epochs(self) -> str:
        c, s = self.config, self.state
        while s.epoch < c.epochs:
            e = s.epoch
            self.bar = _Bar(e, c.epochs, len(s.loader), s.loader.position) if self.progress else None
            t0, cpu0 = time.perf_counter(), time.process_time()
            try:
                finished = train_epoch(s, self.data, c, self._after_step)
            finally:
                if self.bar is not None:
                    self.bar.tqdm.close()
            t_train = time.perf_counter() - t0
            if not finished:
                s.elapsed += t_train
                self.save()
                self._say_saved(e + 1)
                return "interrupted"
            t0 = time.perf_counter()
            row = finish_epoch(s, self.data, c)
            t_eval = time.perf_counter() - t0
            s.elapsed += t_train + t_eval
            row.update({"train_seconds": t_train, "eval_seconds": t_eval, "elapsed_seconds": s.elapsed,
                        "cpu_seconds": time.process_time() - cpu0})
            self.metrics.append(row)
            try:
                run_folder.append_metrics(self.run_dir, row)
            except OSError as e:
                raise run_folder._write_failed(self.run_dir, self.run_dir / run_folder.METRICS, e) from e
            self.save()
            test = f"  test loss {row['test_loss']:.2f}" if "test_loss" in row else ""
            val = f"  val loss {row['val_loss']:.2f}" if "val_loss" in row else ""
            self.log(f"epoch {e + 1}/{c.epochs}  train loss {row['train_loss']:.2f} (rec {-row['train_rec']:.2f}, "
                     f"KL {row['train_kl']:.2f}){val}{test}  lr {row['lr']:.3g}  {t_train:.1f} s")
            if self.stop.requested:
                self._say_saved(e + 1)
                return "interrupted"
            if c.time_budget is not None and self._over_budget():
                self.log(f"time budget of {c.time_budget:g} min reached after epoch {s.epoch} "
                         f"({s.elapsed / 60:.1f} min); stopping (continue with --resume and a larger budget)")
                return "budget"
        return "completed"

    def _say_saved(self, epoch: int):
        self.log(f"saved {self.run_dir / CHECKPOINT} at epoch {epoch}, step {self.state.global_step}; "
                 f"continue with: scratchvae train --resume {self.run_dir}")

    def _after_step(self, b: int, n_images: int) -> bool:
        """The progress bar, the callback, and whether Ctrl-C asks the epoch to stop here."""
        s = self.state
        if self.bar is not None:
            self.bar.update(b, n_images, s.acc)
        if self.callback is not None:
            self.callback(self, {"step": s.global_step, "epoch": s.epoch + 1, "batch": b + 1,
                                 "loss": s.acc["last_loss"]})
        return self.stop.requested

    def save(self):
        """Write the checkpoint atomically (a crash mid-write leaves the previous one intact)."""
        last = self.metrics[-1] if self.metrics else None
        run_folder.save_checkpoint(self.run_dir, self.state, self.config, self.data.source, last_metrics=last,
                                   data_sha256=self.data.sha256, rotate=self._rotate_next)
        self._rotate_next = True

    def epoch_of_checkpoint(self):
        return run_folder.checkpoint_epoch(self.run_dir)

    def _diverged(self, err: TrainingDiverged) -> TrainingDiverged:
        path = self.run_dir / CHECKPOINT
        if path.is_file():
            where = f"The last good checkpoint is {path} (after epoch {self.epoch_of_checkpoint()}), left unchanged"
        else:
            where = "No checkpoint was written yet (the first epoch did not finish)"
        return TrainingDiverged(f"{err}. {where}. Try a lower --lr, --clip-grad, or --dtype float64; "
                                "scratchvae.anomaly.detect_anomaly() finds the op that produced the first NaN",
                                step=err.step, epoch=err.epoch, checkpoint=path if path.is_file() else None)

    def _over_budget(self) -> bool:
        last = self.metrics[-1]
        if self.config.budget_clock == "cpu":  # CPU seconds: runs sharing a machine are budgeted alike
            return sum(r.get("cpu_seconds", 0.0) for r in self.metrics) + last["cpu_seconds"] > \
                self.config.time_budget * 60
        per_epoch = last["train_seconds"] + last["eval_seconds"]
        return self.state.elapsed + per_epoch > self.config.time_budget * 60

    def _figures(self):
        try:
            from ..plots import make_figures
        except ImportError as e:  # pragma: no cover - matplotlib missing
            self.log(f"note: no figures ({e}); install matplotlib for them")
            return
        paths = make_figures(self.run_dir / FIGURES, self.model, self.data.test, self.data.test_labels,
                             self.metrics, generator=Generator(self.config.seed))
        self.log(f"figures: {', '.join(str(p) for p in paths)}")


def train(config: TrainConfig | dict | None = None, run_dir=None, *, resume: bool = False, epochs: int | None = None,
          time_budget: float | None = None, progress: bool = True, log=print, callback=None,
          data_dir=None, verify_data: bool | None = None, keep_checkpoints: int | None = None) -> TrainResult:
    """Train (or, with ``resume=True``, continue) a run; returns a :class:`TrainResult`.

    ``config``: a TrainConfig or a dict of overrides for :func:`make_config` (ignored when resuming:
    the run's own config.json is used, with ``epochs`` / ``time_budget`` changed if given, and
    ``data_dir`` (checked against the data sha256 the run recorded), ``verify_data`` and
    ``keep_checkpoints``).
    Raises :class:`TrainingDiverged` on a NaN/Inf loss.
    """
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run folder")
        config = run_folder.load_config(run_dir)
        changed = {}
        if epochs is not None:
            changed["epochs"] = epochs
        if time_budget is not None:
            changed["time_budget"] = time_budget
        if data_dir is not None:
            if run_folder.saved_data_source(run_dir) == "embedded":
                raise ValueError(f"{run_dir} was trained on the embedded subset; --data-dir does not apply to it")
            changed["data_dir"] = str(data_dir)
        if verify_data is not None:
            changed["verify_data"] = verify_data
        if keep_checkpoints is not None:
            changed["keep_checkpoints"] = keep_checkpoints
        if changed:  # written to config.json by the Trainer, once the checkpoint has loaded
            config = dataclasses.replace(config, **changed).check()
    else:
        if config is None:
            config = make_config()
        elif isinstance(config, dict):
            config = make_config(**config)
        if epochs is not None or time_budget is not None:
            config = dataclasses.replace(config, epochs=epochs or config.epochs,
                                         time_budget=time_budget if time_budget is not None else config.time_budget)
        given = {k: v for k, v in {"data_dir": data_dir, "verify_data": verify_data,
                                     "keep_checkpoints": keep_checkpoints}.items() if v is not None}
        if given:
            config = dataclasses.replace(config, **given).check()
        run_dir = run_dir or run_folder.default_run_dir(config)
    return Trainer(config, run_dir, resume=resume, progress=progress, log=log, callback=callback).run()
