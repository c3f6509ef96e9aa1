"""File-system helpers shared by everything that writes files atomically (checkpoints, downloads)."""

from __future__ import annotations

import os


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


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new one, never a mix.

    The text goes to a temporary name in the same folder, is flushed to disk, and is renamed over
    ``path``; the folder is then fsynced so that the rename itself survives a power cut.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
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
