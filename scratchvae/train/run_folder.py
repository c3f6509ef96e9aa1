"""The run folder: every file a run reads and writes, each written atomically (docs/training.md#the-run-folder)::

    run_dir/config.json       the full configuration (what --resume and `evaluate` rebuild from)
    run_dir/metrics.jsonl     one JSON object per epoch: train / validation / test ELBO parts, lr, times
    run_dir/checkpoint.npz    model, optimizer, scheduler, data-loader and random-generator state
    run_dir/figures/*.png     reconstructions, samples, latent space, training curves (app.py draws them)

    run_dir/.lock             held (``fcntl.flock``) by the one process writing the folder; holds its PID

A file is written to a temporary name and then renamed over the old one, so a crash mid-write
leaves the previous version intact.  Every command that writes the folder holds :func:`lock` while
it does; a second one is refused with :class:`RunFolderBusy`, naming the holder's PID.  The OS
releases the lock when its process exits, however it exits, so a lock is never stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's job
    fcntl = None

from .. import checkpoint as ckpt
from .._fileio import write_text_atomic
from ..backend import get_backend, set_backend, set_default_dtype
from ..models.vae import VAE
from .config import TrainConfig
from .state import TrainState

__all__ = [
    "CHECKPOINT", "CONFIG", "FIGURES", "LOCK", "METRICS", "RunFolderBusy", "append_metrics", "check_new", "checkpoint_epoch",
    "create", "default_run_dir", "load_checkpoint", "load_config", "load_run", "lock", "read_metrics", "saved_data_source",
    "save_checkpoint", "update_config",
]

CONFIG, METRICS, CHECKPOINT, FIGURES = "config.json", "metrics.jsonl", "checkpoint.npz", "figures"
LOCK = ".lock"


class RunFolderBusy(OSError):
    """Another process holds the run folder's lock (``pid``: its process id, None when unknown)."""

    def __init__(self, message, pid=None):
        super().__init__(message)
        self.pid = pid


@contextlib.contextmanager
def lock(run_dir):
    """Hold the run folder's exclusive lock (``run_dir/.lock``, created if needed; ``run_dir`` must exist).

    Raises :class:`RunFolderBusy` at once, naming the holder's PID, when another process (or another
    :func:`lock` in this one) holds it.  The lock file stays behind; only the lock on it counts.
    """
    path = Path(run_dir) / LOCK
    f = open(path, "a+")
    held = False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                text = f.read().strip()
                pid = int(text) if text.isdigit() else None
                who = f"process {pid}" if pid is not None else "another process"
                raise RunFolderBusy(f"{run_dir} is in use by {who} (it holds {path}); wait for it to finish or "
                                    f"stop it, or choose another folder", pid) from None
        held = True
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield path
    finally:
        if held:  # emptied while still held: a PID in the file is always that of the holder
            f.seek(0)
            f.truncate()
        f.close()  # closing the file releases the lock


def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def _write_json(path: Path, obj) -> None:
    _write_text(path, json.dumps(obj, indent=2) + "\n")


def default_run_dir(config: TrainConfig, root="runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.preset or 'vae'}-{stamp}"


# -- config.json ---------------------------------------------------------------------------------

def check_new(run_dir, runs_too: bool = True) -> bool:
    """Raise FileExistsError unless a new run may be written to ``run_dir``: a folder that does not
    exist yet or is empty (a new run never overwrites a run, nor the files of a folder that is not one),
    or one whose run never finished an epoch (a config.json but no checkpoint.npz: nothing to lose);
    True in that last case, when the run is started afresh.

    ``runs_too=False`` only refuses what is not a run folder (checked before the lock file is made,
    so that such a folder is left exactly as it was); a run folder is then checked under the lock.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"--out {run_dir} is not a folder; choose a new (or empty) folder for the run")
    if not run_dir.exists():
        return False
    if not (run_dir / CONFIG).exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise FileExistsError(f"{run_dir} is not empty ({shown}) and is not a run folder (it has no {CONFIG}); "
                                  "nothing was written to it: choose a new or empty --out folder")
        return False
    if not (run_dir / CHECKPOINT).exists():
        return True
    if runs_too:
        raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                              "or choose another --out folder")
    return False


def saved_data_source(run_dir) -> str | None:
    """The data source config.json records ("embedded" or "mnist"; None when it has none)."""
    return json.loads((Path(run_dir) / CONFIG).read_text()).get("data_source")


def create(run_dir, config: TrainConfig, data_source: str) -> None:
    """Start a run folder: config.json (the config plus where the data came from) and an empty metrics.jsonl."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG, {**config.to_dict(), "data_source": data_source})
    _write_text(run_dir / METRICS, "")


def load_config(run_dir) -> TrainConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no {CONFIG} (train one with `scratchvae train`)")
    with open(path) as f:
        values = json.load(f)
    return TrainConfig.from_dict(values).check()


def update_config(run_dir, changed: dict) -> None:
    """Change some fields of config.json (a resume with a new --epochs or --time-budget); the file
    is left as it is (not even rewritten) when they already have these values."""
    path = Path(run_dir) / CONFIG
    old = json.loads(path.read_text())
    new = {**old, **changed}
    if new != old:
        _write_json(path, new)


# -- metrics.jsonl -------------------------------------------------------------------------------

def append_metrics(run_dir, row: dict) -> None:
    path = Path(run_dir) / METRICS
    _write_text(path, path.read_text() + json.dumps(row) + "\n")


def read_metrics(run_dir, upto: int | None = None, *, log=None, restore: dict | None = None) -> list:
    """The metrics rows of the run.

    A torn last line (a write cut short: the file was truncated, or a copy is incomplete) is dropped,
    saying so through ``log`` (default: a Python warning); any other line that is not a JSON object
    with an ``epoch`` is a ValueError naming the file and the line.  With ``upto`` (the checkpoint's
    epoch, when resuming) the file is also repaired, atomically: rows after that epoch (written by
    a session that died before its checkpoint) and a torn line are dropped, and ``restore`` (the
    checkpoint's copy of its epoch's row) puts back that row when it was the one torn.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    raw = path.read_text()
    lines = raw.splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows, torn = [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and isinstance(row.get("epoch"), int)
        except ValueError:
            ok = False
        if ok:
            rows.append(row)
        elif i == last and not raw.endswith("\n"):
            torn = True
            say = log or (lambda msg: warnings.warn(msg, stacklevel=3))
            say(f"warning: {path}, line {i + 1} is torn (cut short, {len(line)} characters, no newline); "
                "dropping it" + ("" if upto is None else f" (the checkpoint is at epoch {upto})"))
        else:
            raise ValueError(f"{path}, line {i + 1} is not a metrics row (a JSON object with an epoch): "
                             f"{line[:60]!r}; repair or delete that line")
    if upto is not None:
        kept = [r for r in rows if r["epoch"] <= upto]
        if restore is not None and restore.get("epoch") == upto and (not kept or kept[-1]["epoch"] < upto):
            kept.append(restore)
            (log or warnings.warn)(f"note: restored the metrics of epoch {upto} from the checkpoint")
        if len(kept) != len(rows) or torn:
            _write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
        rows = kept
    return rows


# -- checkpoint.npz ------------------------------------------------------------------------------

def save_checkpoint(run_dir, state: TrainState, config: TrainConfig, data_source: str,
                    last_metrics: dict | None = None) -> None:
    """Write the checkpoint (scratchvae.checkpoint writes it atomically): the state and, as metadata,
    what ``load_run`` needs to rebuild the model without the config.json, and the metrics row of the
    last finished epoch (``last_metrics``), which a resume puts back if metrics.jsonl lost it."""
    meta = {"model_config": state.model.config, "train_config": config.to_dict(), "epoch": state.epoch,
            "global_step": state.global_step, "data_source": data_source}
    if last_metrics is not None:
        meta["last_metrics"] = last_metrics
    ckpt.save(state.state_dict(), Path(run_dir) / CHECKPOINT, metadata=meta)


def load_checkpoint(run_dir) -> tuple[dict, dict]:
    """(state, metadata) of the run's checkpoint, to resume from."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {path} does not exist (the run never finished an "
                                "epoch or was not started)")
    return ckpt.load(path, with_metadata=True)


def checkpoint_epoch(run_dir):
    """The epoch the run's checkpoint was saved after ("?" when it cannot be read)."""
    try:
        return ckpt.read_metadata(Path(run_dir) / CHECKPOINT).get("epoch")
    except (OSError, ValueError):
        return "?"


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
    config = TrainConfig.from_dict(meta["train_config"])
    set_backend(backend or config.backend)
    set_default_dtype(dtype or config.dtype)
    model = VAE.from_config(meta["model_config"], validate_args=None if config.validate_args else False,
                            dtype=dtype or config.dtype, backend=get_backend())
    model.load_state_dict(state["model"])
    return model, config, meta
