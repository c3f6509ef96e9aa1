"""File-system helpers shared by everything that writes files atomically (checkpoints, downloads)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets


def fsync_dir(folder) -> None:
    """fsync a folder so that a rename inside it is durable.

    Not possible on every platform (Windows cannot open a folder), hence best effort.
    """
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """A file opened for writing whose content replaces ``path`` only when the block succeeds, so a
    reader (or a crash) sees the old file or the new one, never a mix.

    It is a temporary ``.NAME.PID.HEX.tmp`` in the same folder (created exclusively: never another
    writer's), flushed to disk, renamed over ``path``, and the folder fsynced so that the rename
    itself survives a power cut; on any failure the temporary is removed and the old file stays.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never clobber another writer's temp file; mode 0o666 lets the umask decide, as open() does.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see atomic_write)."""
    with atomic_write(path, "w") as f:
        f.write(text)


# The temporaries this package writes: ".NAME.PID.HEX.tmp" (atomic_write: checkpoints, text files,
# images) and ".NAME.PID.RANDOM.part" (downloads).
_TEMPORARY = re.compile(r"^\..+?\.(\d+)(?:\.[A-Za-z0-9_]+)?\.(?:tmp|part)$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (``os.kill(pid, 0)``; one we may not signal counts as alive)."""
    if pid <= 0:
        return True  # not a PID we would ever write: leave its file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(folder) -> list:
    """Delete the temporaries in ``folder`` left by processes that died mid-write (``kill -9``, a
    power cut): the files named like ours whose writer's PID is no longer alive.  Returns the
    paths removed; a file that cannot be removed is left (best effort, never an error)."""
    removed = []
    try:
        names = os.listdir(os.fspath(folder))
    except OSError:
        return removed
    for name in names:
        m = _TEMPORARY.match(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        path = os.path.join(os.fspath(folder), name)
        try:
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
    return removed
