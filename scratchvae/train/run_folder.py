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
import errno
import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's job
    fcntl = None

from .. import checkpoint as ckpt
from .._fileio import remove_stale_temporaries as _remove_stale
from .._fileio import write_text_atomic
from ..backend import get_backend, set_backend, set_default_dtype
from ..models.build import model_from_config
from .config import TrainConfig
from .state import TrainState

__all__ = [
    "CHECKPOINT", "CONFIG", "FIGURES", "LOCK", "METRICS", "CheckpointWriteError", "RunFolderBusy", "append_metrics",
    "check_new", "checkpoint_epoch", "checkpoint_paths", "create", "remove_stale_temporaries", "saved_data_sha256", "default_run_dir", "load_checkpoint", "load_config", "load_run", "lock", "read_metrics", "saved_data_source",
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


def saved_data_sha256(run_dir) -> dict | None:
    """The content sha256 of the run's full-MNIST splits that config.json records (None when none)."""
    return json.loads((Path(run_dir) / CONFIG).read_text()).get("data_sha256")


def create(run_dir, config: TrainConfig, data_source: str, data_sha256: dict | None = None) -> None:
    """Start a run folder: config.json (the config plus where the data came from and, for full
    MNIST, its content sha256) and an empty metrics.jsonl."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = {"data_source": data_source}
    if data_sha256 is not None:
        extra["data_sha256"] = data_sha256
    _write_json(run_dir / CONFIG, {**config.to_dict(), **extra})
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

def checkpoint_paths(run_dir, keep: int | None = None) -> list:
    """The run's checkpoint files, newest first: checkpoint.npz, checkpoint-prev.npz,
    checkpoint-prev2.npz, ... (``keep`` of them; None: those that exist, however many)."""
    run_dir = Path(run_dir)
    if keep is not None:
        return [run_dir / CHECKPOINT] + [run_dir / _older(i) for i in range(1, keep)]
    found = {}
    for p in run_dir.glob("checkpoint-prev*.npz"):
        m = re.fullmatch(r"checkpoint-prev(\d*)\.npz", p.name)
        if m:
            found[int(m.group(1) or 1)] = p
    return [run_dir / CHECKPOINT] + [found[i] for i in sorted(found)]


def _older(i: int) -> str:
    return f"checkpoint-prev{'' if i == 1 else i}.npz"


def _rotate(run_dir: Path, keep: int) -> None:
    """Shift the kept checkpoints one place older (checkpoint-prev -> checkpoint-prev2, ...) and
    make checkpoint-prev.npz the current checkpoint.npz, by a hard link (a copy where links are not
    supported) renamed into place: at every moment checkpoint.npz is whole, and so is each older one."""
    paths = checkpoint_paths(run_dir, keep)
    if keep < 2 or not paths[0].is_file():
        return
    if paths[1].is_file() and os.path.samefile(paths[0], paths[1]):
        # a save killed after its rotation: checkpoint-prev.npz already is this checkpoint (and
        # renaming a link over its twin would do nothing, leaving the temporary behind)
        return
    for i in range(len(paths) - 1, 1, -1):
        if paths[i - 1].is_file():
            os.replace(paths[i - 1], paths[i])
    tmp = run_dir / f".{paths[1].name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(paths[0], tmp)
    except OSError:
        shutil.copyfile(paths[0], tmp)
    os.replace(tmp, paths[1])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # still there only if tmp and paths[1] were one file (rename does nothing then)


class CheckpointWriteError(OSError):
    """Writing the run folder failed (out of disk space, ...); the message names the file and says
    which checkpoint is intact.  ``errno`` is the underlying error's."""


def _write_failed(run_dir: Path, what: Path, e: OSError) -> CheckpointWriteError:
    path = run_dir / CHECKPOINT
    if path.is_file():
        intact = (f"the last checkpoint {path} (after epoch {checkpoint_epoch(run_dir)}) is intact, and "
                  f"no temporary file was left behind; free some space, then continue with: scratchvae train "
                  f"--resume {run_dir}")
    else:
        intact = "no checkpoint had been written yet (the first epoch had not finished)"
    cause = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    err = CheckpointWriteError(e.errno, f"could not write {what}: {cause} ({e}); {intact}")
    return err


def save_checkpoint(run_dir, state: TrainState, config: TrainConfig, data_source: str,
                    last_metrics: dict | None = None, *, data_sha256: dict | None = None,
                    rotate: bool = True) -> None:
    """Write the checkpoint (scratchvae.checkpoint writes it atomically): the state and, as metadata,
    what ``load_run`` needs to rebuild the model without the config.json, and the metrics row of the
    last finished epoch (``last_metrics``), which a resume puts back if metrics.jsonl lost it.

    The previous checkpoints are kept (``config.keep_checkpoints`` in all, checkpoint_paths) unless
    ``rotate`` is False.  A failed write (a full disk) raises :class:`CheckpointWriteError`, naming
    the file and saying that the last checkpoint is intact."""
    run_dir = Path(run_dir)
    meta = {"model_config": state.model.config, "train_config": config.to_dict(), "epoch": state.epoch,
            "global_step": state.global_step, "data_source": data_source}
    if data_sha256 is not None:
        meta["data_sha256"] = data_sha256
    if last_metrics is not None:
        meta["last_metrics"] = last_metrics
    path = run_dir / CHECKPOINT
    try:
        if rotate:
            _rotate(run_dir, config.keep_checkpoints)
        ckpt.save(state.state_dict(), path, metadata=meta)
    except RunFolderBusy:
        raise
    except OSError as e:
        raise _write_failed(run_dir, path, e) from e


def load_checkpoint(run_dir, log=None) -> tuple[dict, dict]:
    """(state, metadata) of the run's newest checkpoint that loads, to resume from.

    A checkpoint.npz that cannot be read is passed over for the newest older one that can
    (checkpoint-prev.npz, ...), saying so through ``log`` (default: a warning); the metadata then
    has ``"fallback": True``.  Only when none loads is it an error, naming each file and its fault."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {path} does not exist (the run never finished an "
                                "epoch or was not started)")
    say = log or (lambda msg: warnings.warn(msg, stacklevel=3))
    faults = []
    for p in checkpoint_paths(run_dir):
        try:
            state, meta = ckpt.load(p, with_metadata=True)
        except (ValueError, OSError) as e:
            faults.append((p, e))
            continue
        if faults:
            bad = "; ".join(f"{q.name}: {e}" for q, e in faults)
            say(f"warning: {bad}; resuming from the older checkpoint {p} (after epoch {meta.get('epoch')}) instead")
            meta["fallback"] = True
        return state, meta
    if len(faults) == 1:
        raise faults[0][1]
    raise ValueError(f"cannot resume {run_dir}: none of its checkpoints loads: "
                     + "; ".join(f"{q.name}: {e}" for q, e in faults))


def remove_stale_temporaries(run_dir, log=None) -> list:
    """Delete the temporaries that writers killed mid-save (``kill -9``) left in the run folder."""
    removed = _remove_stale(run_dir)
    if removed and log is not None:
        log(f"note: removed {len(removed)} temporary file(s) left by a process that died while writing: "
            + ", ".join(os.path.basename(p) for p in removed))
    return removed


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
    try:
        state, meta = ckpt.load(ckpt_path, with_metadata=True)
    except ValueError as e:
        older = [p for p in checkpoint_paths(path)[1:] if p.is_file()] if path.is_dir() else []
        if not older:
            raise
        raise ValueError(f"{e} (the run keeps earlier checkpoints: pass one as RUN, e.g. {older[0]}; "
                         f"`scratchvae train --resume {path}` falls back to it by itself)") from e
    if "model_config" not in meta or "train_config" not in meta:
        raise ValueError(f"{ckpt_path} is a checkpoint but not of a training run (no model/train config in it)")
    config = TrainConfig.from_dict(meta["train_config"])
    set_backend(backend or config.backend)
    set_default_dtype(dtype or config.dtype)
    model = model_from_config(meta["model_config"], validate_args=None if config.validate_args else False,
                            dtype=dtype or config.dtype, backend=get_backend())
    model.load_state_dict(state["model"])
    return model, config, meta
