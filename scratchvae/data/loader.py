"""Minibatches in a shuffled order that depends only on (seed, epoch), so a resumed run sees the same batches.

The order of epoch ``e`` is a permutation drawn from ``np.random.default_rng([seed, e])``: no
generator state has to be saved, and a run resumed at epoch ``e``, batch ``b`` (:meth:`DataLoader.state_dict`)
continues exactly where the interrupted one stopped.  The seed itself, unless given, is drawn once
from ``generator`` or else from scratchvae's default generator, so ``sv.manual_seed`` fixes it.

The data is an int n (batches of indices), arrays (batches of rows), or -- PyTorch's way -- a
dataset (``len`` and ``ds[i]``), whose batches are collated into Tensors: ``(images, labels)`` for
:class:`~scratchvae.data.datasets.MNIST`, which collates a whole batch with one index of its host
array (``dataset.batch(indices)``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..autograd import Tensor, tensor
from ..functional import stack

__all__ = ["DataLoader", "validation_split", "default_collate"]


def _seed_or_draw(seed, generator=None) -> int:
    if seed is None:
        # Drawn from the given or the default generator so sv.manual_seed makes it reproducible too.
        if generator is None:
            from ..random import default_generator

            generator = default_generator()
        host = generator if isinstance(generator, np.random.Generator) else getattr(generator, "numpy", None)
        if host is None:
            raise TypeError(f"generator must be a scratchvae.Generator or a numpy Generator, "
                            f"got {type(generator).__name__}")
        return int((host if isinstance(host, np.random.Generator) else host()).integers(2**63))
    if generator is not None:
        raise ValueError("give the loader a seed or a generator, not both")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


def _is_dataset(data) -> bool:
    return (not isinstance(data, (int, np.integer, tuple, list, np.ndarray))
            and hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "shape"))


def default_collate(items: list):
    """A list of dataset items as one batch: tuples field by field, Tensors stacked (a new axis 0),
    Python ints as an int64 Tensor, floats as a Tensor of the default dtype, NumPy arrays as a
    Tensor of their stacked rows (as ``torch.utils.data.default_collate`` does)."""
    if not items:
        raise ValueError("default_collate: cannot collate an empty batch")
    first = items[0]
    if isinstance(first, (tuple, list)):
        if any(len(it) != len(first) for it in items):
            raise ValueError(f"default_collate: items have different lengths {sorted({len(it) for it in items})}")
        return tuple(default_collate([it[k] for it in items]) for k in range(len(first)))
    if isinstance(first, Tensor):
        return stack(items, axis=0)
    if isinstance(first, (bool, np.bool_)):
        return tensor(np.asarray(items, dtype=bool))
    if isinstance(first, (int, np.integer)):
        return tensor(np.asarray(items, dtype=np.int64))
    if isinstance(first, (float, np.floating)):
        return tensor([float(v) for v in items])
    if isinstance(first, np.ndarray):
        return tensor(np.stack(items))
    if isinstance(first, dict):
        return {k: default_collate([it[k] for it in items]) for k in first}
    raise TypeError(f"default_collate: cannot collate items of type {type(first).__name__}; pass collate_fn=")


class _Rows:
    """A tuple of equal-length arrays seen as one dataset of rows (what ``loader.dataset`` is for them)."""

    def __init__(self, arrays):
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)


class DataLoader:
    """Minibatches over ``data``: an int n (yields index arrays), an array, a tuple of arrays of equal
    length (yields rows), or a dataset with ``len`` and ``ds[i]`` (yields collated Tensors, as
    ``torch.utils.data.DataLoader`` does).

    ``for batch in loader`` runs through the rest of the current epoch and then advances to the next;
    ``loader.epoch`` and ``loader.position`` (batches already yielded in it) say where it stands.
    ``batches(epoch)`` gives the batches of any epoch without touching that position.

    ``shuffle`` defaults to True for an int or arrays (what the training loop uses) and to False for a
    dataset (PyTorch's default).  ``seed=None`` (the default) draws the seed from ``generator`` or,
    without one, from scratchvae's default generator (``sv.manual_seed``).  ``collate_fn`` (datasets
    only) replaces :func:`default_collate`; without it a dataset's own ``batch(indices)`` is used when
    it has one.  ``num_workers`` and ``pin_memory`` are accepted for PyTorch code and change nothing:
    batches are cut from host arrays in this process.
    """

    def __init__(self, data, batch_size: int = 1, shuffle=None, *, drop_last: bool = False, seed=None,
                 generator=None, collate_fn=None, num_workers: int = 0, pin_memory: bool = False):
        self.collate_fn = collate_fn
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            self.arrays, self.n, self.dataset = None, int(data), range(max(int(data), 0))
            kind = "indices"
        elif _is_dataset(data):
            self.arrays, self.n, self.dataset = None, len(data), data
            kind = "dataset"
        else:
            arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
            lengths = {len(a) for a in arrays}
            if len(lengths) != 1:
                raise ValueError(f"arrays must have the same length, got lengths {[len(a) for a in arrays]}")
            self.arrays, self.n = arrays, lengths.pop()
            self._single = not isinstance(data, (tuple, list))
            self.dataset = data if self._single else _Rows(arrays)
            kind = "arrays"
        self.kind = kind
        if collate_fn is not None and kind != "dataset":
            raise ValueError("collate_fn is for datasets; index and array batches are not collated")
        if self.n < 0:
            raise ValueError(f"the number of examples must be >= 0, got {self.n}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int, got {num_workers!r}")
        if shuffle is None:
            shuffle = kind != "dataset"
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.seed = _seed_or_draw(seed, generator)
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
        if self.kind == "dataset":
            if self.collate_fn is not None:
                return self.collate_fn([self.dataset[int(i)] for i in idx])
            if hasattr(self.dataset, "batch"):
                return self.dataset.batch(idx)
            return default_collate([self.dataset[int(i)] for i in idx])
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
        return (f"DataLoader({self.kind}, n={self.n}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
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
