"""Turning uint8 MNIST pixels into model inputs: grey levels, dynamic or fixed binarization.

- ``grey``: x = pixel / 255 in [0, 1].  With a Bernoulli likelihood this is what pytorch/examples
  does; it is not a normalized likelihood for continuous x (``docs/data.md``, eq. D2), so it is an
  explicit choice, never a default.
- ``dynamic``: x ~ Bernoulli(pixel / 255), drawn afresh every time a batch is used, so each epoch sees
  a new binarization -- the standard protocol behind published MNIST NLL numbers.
- ``fixed``: one Bernoulli draw per pixel from a seed, made once for the whole split and then reused.

Everything returns NumPy host arrays; moving a batch to the backend is the trainer's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MODES", "grey_levels", "dynamic_binarize", "fixed_binarize", "pixel_means", "Preprocessing",
           "host_rng"]

MODES = ("grey", "dynamic", "fixed")


def host_rng(rng=None) -> np.random.Generator:
    """A host ``np.random.Generator`` from: one, a ``scratchvae.random.Generator``, an int seed, or None.

    None means the host stream of scratchvae's default generator, so ``sv.manual_seed`` governs it.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        from ..random import default_generator

        return default_generator().numpy()
    if hasattr(rng, "numpy") and callable(rng.numpy):
        return rng.numpy()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"expected a numpy Generator, a scratchvae Generator, an int seed or None, got {type(rng).__name__}")


def _probabilities(images, dtype) -> np.ndarray:
    """Pixels as values in [0, 1]: uint8 divided by 255; floats checked to be in [0, 1] already."""
    a = np.asarray(images)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    if a.dtype == np.uint8:
        return a.astype(dtype) / dtype.type(255)
    if a.dtype.kind == "f":
        if a.size and (np.isnan(a).any() or a.min() < 0 or a.max() > 1):
            raise ValueError("float images must be grey levels in [0, 1]; pass uint8 pixels (0-255) to scale them")
        return a.astype(dtype, copy=False)
    raise TypeError(f"images must be uint8 pixels (0-255) or floats in [0, 1], got {a.dtype}")


def grey_levels(images, dtype="float32") -> np.ndarray:
    """x = pixel / 255 in ``dtype``: grey levels in [0, 1]."""
    return _probabilities(images, dtype)


def dynamic_binarize(images, rng=None, dtype="float32") -> np.ndarray:
    """x ~ Bernoulli(pixel / 255), a fresh draw from ``rng`` on every call (docs/data.md, eq. D1).

    ``rng``: see :func:`host_rng`.
    """
    a = np.asarray(images)
    rng = host_rng(rng)
    out = np.empty(a.shape, dtype=dtype)
    # In row chunks so a whole split never needs float64 temporaries of its full size; the draws
    # come in the same order as one big draw would.  u is in [0, 1), so p = 0 never fires and
    # p = 1 always does.
    flat_in, flat_out = a.reshape(len(a), -1) if a.ndim else a.reshape(1, 1), out.reshape(-1)
    step, pos = max(1, (1 << 20) // max(1, flat_in.shape[1])), 0
    for start in range(0, len(flat_in), step):
        p = _probabilities(flat_in[start:start + step], np.float64)
        flat_out[pos:pos + p.size] = (rng.random(p.shape) < p).reshape(-1)
        pos += p.size
    return out


def fixed_binarize(images, seed: int = 0, dtype="float32") -> np.ndarray:
    """x ~ Bernoulli(pixel / 255) from ``seed`` (docs/data.md, eq. D1, drawn once): the same result for the same seed.

    Apply it once to the whole split, not per batch: per batch, the same seed would give every
    batch the same noise pattern.
    """
    return dynamic_binarize(images, np.random.default_rng(seed), dtype)


def pixel_means(images) -> np.ndarray:
    """The mean grey level of each pixel over the images, float64 in [0, 1] (for initialising output biases)."""
    p = _probabilities(images, np.float64)
    return p.mean(axis=0)


@dataclass
class Preprocessing:
    """One preprocessing mode, split into the part done once per data set and the part done per batch.

    ``stored = pp.prepare(images)`` once; then ``x = pp.batch(stored[idx], rng)`` for each batch.
    ``grey`` and ``fixed`` do all their work in ``prepare``; ``dynamic`` stores the probabilities
    and draws a fresh binarization in ``batch``.
    """

    mode: str = "dynamic"
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown preprocessing {self.mode!r}; use one of {', '.join(MODES)}")

    def prepare(self, images) -> np.ndarray:
        if self.mode == "fixed":
            return fixed_binarize(images, self.seed, self.dtype)
        return grey_levels(images, self.dtype)

    def batch(self, stored, rng=None) -> np.ndarray:
        if self.mode == "dynamic":
            return dynamic_binarize(stored, rng, self.dtype)
        return np.asarray(stored)
