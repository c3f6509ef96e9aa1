"""``save_image``: a batch of images as one PNG grid, by torchvision.utils.save_image's name and
arguments (``nrow`` images per row, ``padding`` pixels between them, ``normalize`` to stretch
``value_range`` onto [0, 1]).  The pixels are written exactly (no figure, no axes)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._fileio import atomic_write
from .backend import to_numpy

__all__ = ["make_grid", "save_image"]


def _as_nchw(images) -> np.ndarray:
    """(B, C, H, W), (B, H, W), (C, H, W) or (B, 784) (MNIST rows) as a float (B, C, H, W) host array."""
    a = np.asarray(to_numpy(images), dtype=np.float64)
    if a.ndim == 2:
        side = math.isqrt(a.shape[1])
        if side * side != a.shape[1]:
            raise ValueError(f"save_image: rows of {a.shape[1]} pixels are not square images; pass (B, C, H, W)")
        a = a.reshape(a.shape[0], 1, side, side)
    elif a.ndim == 3:
        a = a[:, None] if a.shape[0] not in (1, 3) else a[None]
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(f"save_image: expected (B, C, H, W) with C = 1 or 3, got shape {a.shape}")
    return a


def make_grid(images, nrow: int = 8, padding: int = 2, normalize: bool = False, value_range=None,
              pad_value: float = 0.0) -> np.ndarray:
    """The grid save_image writes, as an (H, W, C) host array in [0, 1]."""
    a = _as_nchw(images)
    if normalize:
        lo, hi = value_range if value_range is not None else (float(a.min()), float(a.max()))
        a = (a - lo) / max(hi - lo, 1e-12)
    a = np.clip(a, 0.0, 1.0)
    b, c, h, w = a.shape
    ncol = min(nrow, b)
    nrows = -(-b // ncol)
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), float(pad_value))
    for i in range(b):
        r, k = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        grid[y:y + h, x:x + w] = a[i].transpose(1, 2, 0)
    return grid


def save_image(images, fp, nrow: int = 8, padding: int = 2, normalize: bool = False, value_range=None,
               pad_value: float = 0.0) -> Path:
    """Write ``images`` (a Tensor or array of any backend: copied to the host) as one PNG grid,
    atomically (a temporary file renamed into place)."""
    from matplotlib.image import imsave

    grid = make_grid(images, nrow, padding, normalize, value_range, pad_value)
    path = Path(fp)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = grid[..., 0] if grid.shape[-1] == 1 else grid
    with atomic_write(path, "wb") as f:
        imsave(f, pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0.0, vmax=1.0, format="png")
    return path
