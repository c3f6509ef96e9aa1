"""Minibatches in a shuffled order that depends only on (seed, epoch), so a resumed run sees the same batches.

The order of epoch ``e`` is a permutation drawn from ``np.random.default_rng([seed, e])``: no
generator state has to be saved, and a run resumed at epoch ``e``, batch ``b`` (:meth:`DataLoader.state_dict`)
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["DataLoader", "validation_split"]


def _seed_or_draw(seed) -> int:
    if seed is None:
        # Drawn from the default generator so sv.manual_seed makes it reproducible too.
        from ..random import default_generator

        return int(default_generator().numpy().integers(2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


class DataLoader:
    """Minibatches over ``data``: an int n (yields index arrays), an array, or a tuple of arrays of equal length.

    ``for batch in loader`` runs through the rest of the current epoch and then advances to the next;
    ``loader.epoch`` and ``loader.position`` (batches already yielded in it) say where it stands.
    ``batches(epoch)`` gives the batches of any epoch without touching that position.
    """

    def __init__(self, data, batch_size: int, *, shuffle: bool = True, drop_last: bool = False, seed=0):
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            self.arrays, self.n = None, int(data)
        else:
            arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
            lengths = {len(a) for a in arrays}
            if len(lengths) != 1:
                raise ValueError(f"arrays must have the same length, got lengths {[len(a) for a in arrays]}")
            self.arrays, self.n = arrays, lengths.pop()
            self._single = not isinstance(data, (tuple, list))
        if self.n < 0:
            raise ValueError(f"the number of examples must be >= 0, got {self.n}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.seed = _seed_or_draw(seed)
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> np.ndarray:
        """The example indices of ``epoch`` in the order they are used."""
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)

    def batches(self, epoch: int, start: int = 0) -> Iterator:
        """The batches of ``epoch`` from batch number ``start`` on."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            yield self._take(order[b * self.batch_size:(b + 1) * self.batch_size])

    def _take(self, idx: np.ndarray):
        if self.arrays is None:
            return idx
        taken = tuple(a[idx] for a in self.arrays)
        return taken[0] if self._single else taken

    def __iter__(self) -> Iterator:
        for batch in self.batches(self.epoch, self.position):
            # Counted before the batch is handed over: a checkpoint taken after the step on this
            # batch then resumes with the next one.
            self.position += 1
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        """Where the loader stands: enough, with the same data, to continue the same sequence of batches."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "n": self.n,
                "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        for key in ("n", "batch_size", "shuffle", "drop_last"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: the saved loader had {key}={state[key]!r}, this one has "
                                 f"{getattr(self, key)!r}; use the same data and batch settings as the saved run")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        if not 0 <= self.position <= len(self):
            raise ValueError(f"saved position {self.position} is outside the epoch's {len(self)} batches")

    def __repr__(self) -> str:
        return (f"DataLoader(n={self.n}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch}, position={self.position})")


def validation_split(n: int, size: int, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` splitting ``range(n)``, with ``size`` examples held out.

    ``seed=None`` holds out the last ``size`` examples (for MNIST, ``size=10_000`` gives the usual
    50,000 / 10,000 split); an int seed holds out a random subset drawn from it.  Both index
    arrays are sorted.
    """
    if not 0 <= size <= n:
        raise ValueError(f"validation size must be between 0 and {n}, got {size}")
    if seed is None:
        return np.arange(n - size), np.arange(n - size, n)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[size:]), np.sort(perm[:size])
