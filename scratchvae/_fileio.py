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
